"""How several annotators' grades of one answer become the numbers in the tables.

``median`` (default): each answer counts once, with the median of its grades; with an even number of grades the
lower (worse) of the two middle grades, so the result is always a letter and ties never flatter a model.
``all``: every rating counts as one observation (an answer graded by three people counts three times).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from owleval.report.grades import SCORE_GRADES

if TYPE_CHECKING:
    import pandas as pd

COMBINE_RULES: dict[str, str] = {
    "median": (
        "Each answer counts once, with the median of the grades it received "
        "(with an even number of grades, the lower of the two middle grades)."
    ),
    "all": "Every rating counts as one observation: an answer graded by k annotators counts k times.",
}
#: how per-answer scores for paired comparisons and correlations are made under each rule
PAIRING_RULES: dict[str, str] = {
    "median": "per-answer median grade (lower middle grade on ties)",
    "all": "per-answer mean score over its ratings",
}


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
    units = grades[["model_id", "question_id", "grade", "score"]].copy()
    units["n_ratings"] = grades.groupby(["model_id", "question_id"])["score"].transform("size").to_numpy()
    return units.reset_index(drop=True)


def answer_scores(grades: pd.DataFrame, rule: str = "median") -> pd.DataFrame:
    """One score per answer for pairing models and correlating metrics: columns model_id, question_id, score."""
    check_rule(rule)
    if rule == "median":
        return lower_median_scores(grades)[["model_id", "question_id", "score"]].astype({"score": "float64"})
    return grades.groupby(["model_id", "question_id"], as_index=False)["score"].mean().astype({"score": "float64"})
