"""Several judges as predictors of the human value: one combined judge value per answer, which the univariate
difference estimator (estimands.py) then anchors to the human sample with its own lam.

``mean`` (the report's rule): the plain mean of the judges' values on an answer (over the judges that graded it;
the stand-in where none did). Nothing is fitted on the human sample, so the estimator, its intervals and the
bootstrap stay exactly those of one judge; with independent errors the mean's error variance falls with the
number of judges. ``crossfit``: a least-squares calibration Y ~ 1 + judges fitted on the human sample with K-fold
cross-fitting (each graded answer predicted by the fit that did not see it; the others by the mean of the K fits),
which can down-weight a poor judge but spends degrees of freedom: bench/bench_ppi_coverage.py --two-judges measures
both at n = 20 and the report uses the narrower one that covers (see COMBINATION_RULE).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from owleval.report.judge import JudgeInput

COMBINATIONS = ("mean", "crossfit")
COMBINATION_RULE = (
    "mean: each answer's combined judge value is the mean of the judges' values on it (their expected score / P(A or B) "
    "where they give one, else the letter's), over the judges that graded it; an answer no judge graded keeps the stand-in "
    "value. The combined value is then used as one judge (lam = Cov(Y, f) / Var(f) on the human-graded answers). Chosen over "
    "a cross-fitted least-squares calibration on the human sample, which was wider at n = 20 "
    "(bench/bench_ppi_coverage.py --two-judges)"
)
FOLDS = 5
RIDGE = 1e-6


def mean_of_judges(values: np.ndarray) -> np.ndarray:
    """(N, k) judge values (NaN where a judge did not grade) -> (N,) their mean over the judges that graded (NaN: none)."""
    with np.errstate(invalid="ignore"):
        counts = (~np.isnan(values)).sum(axis=1)
        return np.where(counts > 0, np.nansum(values, axis=1) / np.maximum(counts, 1), np.nan)


def crossfit(values: np.ndarray, y: np.ndarray, lowest: float, highest: float, folds: int = FOLDS) -> np.ndarray:
    """Cross-fitted least-squares calibration of the human value on the judges' values (no NaN in ``values``;
    ``y`` NaN where ungraded), clipped to the scale."""
    graded = np.flatnonzero(~np.isnan(y))
    design = np.c_[np.ones(values.shape[0]), values]
    if graded.size < folds * 2:
        return np.clip(mean_of_judges(values), lowest, highest)
    fold = np.arange(graded.size) % folds
    out = np.zeros(values.shape[0])
    rest = np.isnan(y)
    for k in range(folds):
        train = graded[fold != k]
        xtx = design[train].T @ design[train] + RIDGE * np.eye(design.shape[1])
        beta = np.linalg.solve(xtx, design[train].T @ y[train])
        pred = np.clip(design @ beta, lowest, highest)
        out[graded[fold == k]] = pred[graded[fold == k]]
        out[rest] += pred[rest] / folds
    return out


def judge_names(paths: Sequence[Path]) -> list[str]:
    """Each judge named by its folder (the folder holding grades.csv); two judges of one name are refused."""
    from owleval.errors import OwlEvalError

    names = [Path(p).resolve().parent.name for p in paths]
    seen = {}
    for name, path in zip(names, paths, strict=True):
        if name in seen:
            raise OwlEvalError(f"--judge {path}: two judges are both named {name!r} (a judge is named by its folder); give each its own folder")
        if name == COMBINED:
            raise OwlEvalError(f"--judge {path}: the folder name {COMBINED!r} is kept for the judges' combination; rename the folder")
        seen[name] = path
    return names


COMBINED = "combined"


def combined_input(judges: Sequence[JudgeInput], names: Sequence[str]) -> JudgeInput:
    """One judge whose value on an answer is the mean of the judges' values (``judge_score`` and ``p_acceptable``,
    so the PPI estimator sees the mean) and whose letter is that mean score rounded (halves down), for the
    agreement tables. An answer is missing when every judge that lists it failed and none graded it."""
    from owleval.records.grades import SCORE_GRADES
    from owleval.report.judge import JudgeInput
    from owleval.report.ppi import judge_values

    keys = ["model_id", "question_id"]
    parts = []
    for name, judge in zip(names, judges, strict=True):
        values = judge_values(judge.grades).assign(letter=judge.grades["grade"].to_numpy(), judge=name)
        parts.append(values)
    every = pd.concat(parts, ignore_index=True)
    grouped = every.groupby(keys, sort=True)
    out = grouped[["mean_score", "acceptable"]].mean().reset_index()
    letters = grouped.apply(lambda g: ", ".join(f"{j}={x}" for j, x in zip(g["judge"], g["letter"], strict=True)), include_groups=False)
    score = np.ceil(out["mean_score"].to_numpy() - 0.5).astype(int)
    grades = pd.DataFrame({
        "annotator": COMBINED, "model_id": out["model_id"], "question_id": out["question_id"].astype(int),
        "grade": [SCORE_GRADES[int(s)] for s in score], "score": score, "comment": ("mean of " + letters).to_numpy(),
        "graded_at": "", "source_line": 0, "judge_score": out["mean_score"], "p_acceptable": out["acceptable"],
    })  # fmt: skip
    missing = None
    listed = [j.missing for j in judges if j.missing is not None and len(j.missing)]
    if all(j.missing is not None for j in judges):
        missing = pd.concat(listed, ignore_index=True).drop_duplicates(keys) if listed else judges[0].missing.iloc[:0]
        graded = pd.MultiIndex.from_frame(grades[keys])
        missing = missing[~pd.MultiIndex.from_frame(missing[keys]).isin(graded)].reset_index(drop=True)
    counts = None
    if missing is not None:
        counts = {"judged": int(len(grades)), "unparsed": int((missing["kind"] == "unparsed").sum()), "failed": int((missing["kind"] == "failed").sum())}
    return JudgeInput(judges[0].path, grades, COMBINED, None, counts, missing, {"judges": list(names), "combination": "mean"})
