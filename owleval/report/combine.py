"""How several annotators' grades of one answer become the numbers in the tables.

``median`` (default): each answer counts once, with the median of its grades; with an even number of grades the
lower (worse) of the two middle grades, so the result is always a letter and ties never flatter a model.
``all``: every rating counts as one observation (an answer graded by three people counts three times).
``ds``: each answer counts once, with its posterior under a Dawid-Skene rater model fitted on all the grades
(:mod:`owleval.quality.dawid_skene`): the score is the posterior mean, ``acceptable`` the posterior P(A or B), and the
A-D counts are expected counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from owleval.records.grades import SCORE_GRADES

if TYPE_CHECKING:
    import pandas as pd

COMBINE_RULES: dict[str, str] = {
    "median": (
        "Each answer counts once, with the median of the grades it received "
        "(with an even number of grades, the lower of the two middle grades)."
    ),
    "all": "Every rating counts as one observation: an answer graded by k annotators counts k times.",
    "ds": (
        "Each answer counts once, with its posterior under a Dawid-Skene model of the annotators (EM, per-annotator "
        "confusion matrices{ordinal}): score = posterior mean score, acceptable = posterior P(A or B), A-D counts = "
        "expected counts."
    ),
}
#: how per-answer scores for paired comparisons and correlations are made under each rule
PAIRING_RULES: dict[str, str] = {
    "median": "per-answer median grade (lower middle grade on ties)",
    "all": "per-answer mean score over its ratings",
    "ds": "per-answer posterior mean score under the Dawid-Skene model",
}
#: --combine ds fits the classic Dawid-Skene model: bench/bench_annotator_qc.py measured the ordinal constraint worse
#: (it cannot represent an annotator who inverts the scale; per-model error and interval coverage both suffered)
DS_ORDINAL = False
COMBINE_RULES["ds"] = COMBINE_RULES["ds"].format(ordinal=", ordinal: a discretised normal around the true grade plus the annotator's bias" if DS_ORDINAL else "")


def check_rule(rule: str) -> str:
    from owleval.errors import OwlEvalError

    if rule not in COMBINE_RULES:
        raise OwlEvalError(f"unknown combine rule {rule!r}; choose one of {', '.join(COMBINE_RULES)}")
    return rule


def lower_median_scores(grades: pd.DataFrame) -> pd.DataFrame:
    """One row per answer (model_id, question_id) with the lower-median score, its grade and n_ratings."""
    ordered = grades.sort_values(["model_id", "question_id", "score"], kind="stable")
    keys = ["model_id", "question_id"]
    group = ordered.groupby(keys, sort=False)
    size = group["score"].transform("size")
    pos = group.cumcount()
    picked = ordered[pos == (size - 1) // 2][keys + ["score"]].copy()
    picked["n_ratings"] = size[pos == (size - 1) // 2].to_numpy()
    picked["grade"] = picked["score"].map(SCORE_GRADES)
    return picked.reset_index(drop=True)


def combine_grades(grades: pd.DataFrame, rule: str = "median") -> pd.DataFrame:
    """The observations the score tables count: columns model_id, question_id, grade, score, n_ratings."""
    check_rule(rule)
    if rule == "median":
        return lower_median_scores(grades)
    if rule == "ds":
        post = ds_posterior(grades)
        units = post[["model_id", "question_id", "score", "acceptable", *PROBABILITY_COLUMNS]].copy()
        units["grade"] = post[list(PROBABILITY_COLUMNS)].to_numpy().argmax(axis=1)
        units["grade"] = units["grade"].map(dict(enumerate(g[-1] for g in PROBABILITY_COLUMNS)))
        units["n_ratings"] = post["n_ratings"].to_numpy()
        return units
    units = grades[["model_id", "question_id", "grade", "score"]].copy()
    units["n_ratings"] = grades.groupby(["model_id", "question_id"])["score"].transform("size").to_numpy()
    return units.reset_index(drop=True)


def answer_scores(grades: pd.DataFrame, rule: str = "median") -> pd.DataFrame:
    """One score per answer for pairing models and correlating metrics: columns model_id, question_id, score."""
    check_rule(rule)
    if rule == "median":
        return lower_median_scores(grades)[["model_id", "question_id", "score"]].astype({"score": "float64"})
    if rule == "ds":
        return ds_posterior(grades)[["model_id", "question_id", "score"]].astype({"score": "float64"})
    return grades.groupby(["model_id", "question_id"], as_index=False)["score"].mean().astype({"score": "float64"})


#: the posterior columns of a ``ds`` observation, A first
PROBABILITY_COLUMNS = ("p_A", "p_B", "p_C", "p_D")


def ds_posterior(grades: pd.DataFrame) -> pd.DataFrame:
    """Per answer: model_id, question_id, p_A..p_D, score (posterior mean), acceptable (P(A or B)), n_ratings."""
    from owleval.quality.dawid_skene import fit_dawid_skene, posterior_scores

    post = posterior_scores(fit_dawid_skene(grades, ordinal=DS_ORDINAL)).rename(columns={"mean_score": "score"})
    sizes = grades.groupby(["model_id", "question_id"]).size().rename("n_ratings").reset_index()
    return post.merge(sizes, on=["model_id", "question_id"], how="left")
