"""Score tables: per model the A/B/C/D counts and shares, the acceptable share (A+B) and the mean score
(A=3 ... D=0), each with a 95% CI that accounts for questions on one image not being independent.

Both use the image bootstrap's variance, times the few-clusters factor (t_{G-1}/z)^2 * G/(G-1) for G images
(1.04^2 for the whole set). The mean score's CI is a score-type interval at the matching effective sample size
(:func:`stats.bounded_score_interval`: normal width in mid-scale, leaning away from an end of the scale near it). The acceptable share's CI is Wilson's score interval
at the effective sample size (n over the image bootstrap's design effect), so it lies in [0, 1] and is never of zero
width: 0 of 7 is about [0%, 35%], not [0%, 0%]. A mean over fewer than 5 observations, or over equal grades only,
gets its value and the note "too few" instead of an interval.

One function builds one table; the same columns serve the whole set, the single-turn and multi-turn sets and
each ability, so every table reads the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from owleval.questions import ABILITIES, Question
from owleval.records.grades import ACCEPTABLE_MIN_SCORE, GRADE_LETTERS, GRADE_SCORES
from owleval.stats import (
    MIN_N_MEAN_INTERVAL,
    boot_variance as _boot_var,
    bounded_score_interval,
    bootstrap_counts,
    cluster_sums,
    clustered_wilson,
    few_clusters_factor,
    ratio_bootstrap,
)

#: acceptable = grade A or B
TABLE_COLUMNS = (
    ["model", "n", *GRADE_LETTERS]
    + [f"share_{g}" for g in GRADE_LETTERS]
    + ["acceptable", "acceptable_ci_low", "acceptable_ci_high", "mean_score", "mean_score_ci_low", "mean_score_ci_high"]
    + ["n_answers", "n_images", "note"]
)
#: the note of a mean score without an interval
TOO_FEW = "too few"
_LETTER_INDEX = {GRADE_SCORES[g]: j for j, g in enumerate(GRADE_LETTERS)}  # score -> column of its letter
#: table name -> category a question must hold (None: all questions)
SUBSETS: dict[str, str | None] = {"summary": None, "summary_single_turn": "single_turn", "summary_multi_turn": "multi_turn"}


def question_info(questions: Sequence[Question]) -> pd.DataFrame:
    """Per question id: its image (the bootstrap cluster), set membership and abilities."""
    columns: dict[str, list] = {
        "question_id": [q.question_id for q in questions],
        "image": [q.image for q in questions],
        "single_turn": ["single_turn" in q.categories for q in questions],
        "multi_turn": ["multi_turn" in q.categories for q in questions],
        "abilities": [q.abilities for q in questions],
    }
    for ability in ABILITIES:
        columns[f"ability_{ability}"] = [ability in q.abilities for q in questions]
    return pd.DataFrame(columns).set_index("question_id")


def _cluster_arrays(units: pd.DataFrame, info: pd.DataFrame, models: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray, int, np.ndarray, np.ndarray, np.ndarray]:
    """The units of ``models``, their model column, the number of images and per image x model: count, acceptable, score sums."""
    index = {m: i for i, m in enumerate(models)}
    units = units[units["model_id"].isin(index)]
    col = units["model_id"].map(index).to_numpy(dtype=np.int64)
    img_codes, img_names = pd.factorize(info.loc[units["question_id"], "image"].to_numpy())
    n_img, n_mod = len(img_names), len(models)
    score = units["score"].to_numpy(dtype=np.float64)
    count_m = cluster_sums(img_codes, col, np.ones_like(score), n_img, n_mod)
    accept_m = cluster_sums(img_codes, col, _acceptable(units), n_img, n_mod)
    score_m = cluster_sums(img_codes, col, score, n_img, n_mod)
    return units, col, n_img, count_m, accept_m, score_m


def score_replicates(units: pd.DataFrame, questions: Sequence[Question], models: Sequence[str], *, n_boot: int, seed: int) -> dict[str, np.ndarray]:
    """The summary table's image-bootstrap resamples of each model's acceptable share and mean score, (n_boot, models)
    per metric: the same resamples as its intervals (same generator), for rank intervals."""
    info = question_info(questions)
    _, _, n_img, count_m, accept_m, score_m = _cluster_arrays(units, info, models)
    counts = bootstrap_counts(n_img, n_boot, np.random.default_rng([seed, list(SUBSETS).index("summary")]))
    return {"acceptable": ratio_bootstrap(counts, accept_m, count_m), "mean_score": ratio_bootstrap(counts, score_m, count_m)}


def score_table(units: pd.DataFrame, info: pd.DataFrame, models: Sequence[str], n_boot: int, rng: np.random.Generator) -> pd.DataFrame:
    """One row per model in ``models`` (those without observations get n=0 and empty statistics).

    ``units``: the observations (model_id, question_id, score), as made by :func:`combine.combine_grades`.
    """
    units, col, n_img, count_m, accept_m, score_m = _cluster_arrays(units, info, models)
    n_mod = len(models)
    letter_counts = _letter_counts(units, col, n_mod)
    n = count_m.sum(axis=0)
    counts = bootstrap_counts(n_img, n_boot, rng)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = accept_m.sum(axis=0) / n
    factor = few_clusters_factor((count_m > 0).sum(axis=0))
    acc_lo, acc_hi = clustered_wilson(share, n, ratio_bootstrap(counts, accept_m, count_m), var_factor=factor**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = score_m.sum(axis=0) / n
    mean_lo, mean_hi = bounded_score_interval(mean, _boot_var(ratio_bootstrap(counts, score_m, count_m)) * factor**2, 0.0, 3.0)
    constant = np.isclose(letter_counts, n[:, None]).any(axis=1)  # every observation has one grade: no spread to measure
    too_few = (n > 0) & ((n < MIN_N_MEAN_INTERVAL) | constant)
    mean_lo, mean_hi = np.where(too_few, np.nan, mean_lo), np.where(too_few, np.nan, mean_hi)
    notes = [
        f"mean score: {TOO_FEW} (n={k}{', all one grade' if c and k >= MIN_N_MEAN_INTERVAL else ''})" if t else ""
        for k, c, t in zip(n.astype(int), constant, too_few, strict=True)
    ]
    answers = units.drop_duplicates(["model_id", "question_id"]).groupby("model_id").size()
    with np.errstate(invalid="ignore", divide="ignore"):
        table = pd.DataFrame(
            {
                "model": list(models),
                "n": n.astype(np.int64),
                **{g: letter_counts[:, j] for j, g in enumerate(GRADE_LETTERS)},
                **{f"share_{g}": letter_counts[:, j] / n for j, g in enumerate(GRADE_LETTERS)},
                "acceptable": accept_m.sum(axis=0) / n,
                "acceptable_ci_low": acc_lo,
                "acceptable_ci_high": acc_hi,
                "mean_score": score_m.sum(axis=0) / n,
                "mean_score_ci_low": mean_lo,
                "mean_score_ci_high": mean_hi,
                "n_answers": answers.reindex(list(models), fill_value=0).to_numpy(dtype=np.int64),
                "n_images": (count_m > 0).sum(axis=0).astype(np.int64),
                "note": notes,
            }
        )
    return table[list(TABLE_COLUMNS)]


def _acceptable(units: pd.DataFrame) -> np.ndarray:
    """1 per observation graded A or B (0 otherwise), or its probability when the units carry one (``--combine ds``)."""
    if "acceptable" in units.columns:
        return units["acceptable"].to_numpy(dtype=np.float64)
    return (units["score"].to_numpy(dtype=np.float64) >= ACCEPTABLE_MIN_SCORE).astype(np.float64)


def _letter_counts(units: pd.DataFrame, col: np.ndarray, n_mod: int) -> np.ndarray:
    """(models, A-D) counts: whole counts of letters, or expected counts from p_A..p_D (``--combine ds``)."""
    probability = [f"p_{g}" for g in GRADE_LETTERS]
    if all(c in units.columns for c in probability):
        out = np.zeros((n_mod, len(GRADE_LETTERS)))
        np.add.at(out, col, units[probability].to_numpy(dtype=np.float64))
        return out
    letter = units["score"].map(_LETTER_INDEX).to_numpy(dtype=np.int64)
    return cluster_sums(col, letter, np.ones(len(units)), n_mod, len(GRADE_LETTERS)).astype(np.int64)


def model_order(units: pd.DataFrame) -> list[str]:
    """Models best first (acceptable share, then mean score, then name): the order of every table and chart."""
    acc = units.assign(ok=_acceptable(units)).groupby("model_id").agg(ok=("ok", "mean"), mean=("score", "mean"))
    acc = acc.reset_index().sort_values(["ok", "mean", "model_id"], ascending=[False, False, True])
    return acc["model_id"].tolist()


def build_score_tables(
    units: pd.DataFrame, questions: Sequence[Question], *, n_boot: int = 2000, seed: int = 0, models: Sequence[str] | None = None
) -> dict[str, pd.DataFrame]:
    """summary, summary_single_turn, summary_multi_turn and by_ability (column ``ability`` first)."""
    info = question_info(questions)
    models = list(models) if models is not None else model_order(units)
    tables: dict[str, pd.DataFrame] = {}
    for k, (name, category) in enumerate(SUBSETS.items()):
        subset = units if category is None else units[units["question_id"].map(info[category]).to_numpy(dtype=bool)]
        tables[name] = score_table(subset, info, models, n_boot, np.random.default_rng([seed, k]))
    parts = []
    for k, ability in enumerate(ABILITIES, start=len(SUBSETS)):
        has = units["question_id"].map(info[f"ability_{ability}"]).to_numpy(dtype=bool)
        part = score_table(units[has], info, models, n_boot, np.random.default_rng([seed, k]))
        part.insert(0, "ability", ability)
        parts.append(part)
    tables["by_ability"] = pd.concat(parts, ignore_index=True)
    return tables
