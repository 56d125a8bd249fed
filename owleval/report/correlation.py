"""How far the captioning metrics are from human judgement: rank correlation (Spearman, Kendall tau-b) between
each metric's per-answer scores (legacy.csv) and the per-answer human score, with image-level bootstrap CIs.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from owleval.errors import InputFileError, OwlEvalError, Problem
from owleval.report.legacy import METRIC_COLUMNS
from owleval.report.stats import bootstrap_counts, percentile_ci, weighted_kendall_tau_b, weighted_spearman

CORRELATION_COLUMNS = (
    "metric", "n", "spearman", "spearman_ci_low", "spearman_ci_high", "spearman_p",
    "kendall", "kendall_ci_low", "kendall_ci_high", "kendall_p",
)  # fmt: skip


def read_legacy_csv(path: Path) -> pd.DataFrame:
    """The per-answer rows of a legacy.csv written by ``owleval legacy`` (model, question_id, metric columns)."""
    try:
        frame = pd.read_csv(path, dtype={"model": str, "scope": str})
    except FileNotFoundError:
        raise OwlEvalError(f"{path}: no such file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputFileError([Problem(path, None, None, f"not a readable CSV ({exc})")]) from None
    missing = [c for c in ("model", "scope", "question_id") if c not in frame.columns]
    if missing:
        raise InputFileError([Problem(path, 1, c, "missing column (is this a legacy.csv from `owleval legacy`?)") for c in missing])
    metrics = [c for c in METRIC_COLUMNS if c in frame.columns]
    if not metrics:
        raise InputFileError([Problem(path, 1, None, f"no metric column; expected some of {', '.join(METRIC_COLUMNS)}")])
    answers = frame[frame["scope"] == "answer"]
    problems = []
    for col in ["question_id", *metrics]:
        values = pd.to_numeric(answers[col], errors="coerce")
        for idx in answers.index[values.isna()]:
            problems.append(Problem(path, int(idx) + 2, col, f"{answers.at[idx, col]!r} is not a number"))
    if problems:
        raise InputFileError(problems)
    out = answers[["model", "question_id", *metrics]].astype({c: "float64" for c in metrics})
    return out.astype({"question_id": "int64"}).rename(columns={"model": "model_id"}).reset_index(drop=True)


def correlation_table(
    legacy: pd.DataFrame, human: pd.DataFrame, info: pd.DataFrame, *, n_boot: int, seed: int, source: str = "legacy.csv"
) -> pd.DataFrame:
    """One row per metric: Spearman and Kendall tau-b with 95% CIs (images resampled) and the scipy p-values.

    ``human``: per-answer human scores (model_id, question_id, score), see :func:`combine.answer_scores`.
    """
    from scipy.stats import kendalltau, spearmanr

    joined = legacy.merge(human, on=["model_id", "question_id"], how="inner")
    if joined.empty:
        raise OwlEvalError(f"{source} and the grades have no (model, question) in common: check the model names")
    codes, images = pd.factorize(info.loc[joined["question_id"], "image"].to_numpy())
    counts = bootstrap_counts(len(images), n_boot, np.random.default_rng([seed, 200]))
    weights = counts[:, codes]  # (n_boot, items): how often each answer appears in each resample
    y = joined["score"].to_numpy(dtype=np.float64)
    rows = []
    for metric in [c for c in METRIC_COLUMNS if c in legacy.columns]:
        x = joined[metric].to_numpy(dtype=np.float64)
        keep = ~np.isnan(x)
        xk, yk, wk = x[keep], y[keep], weights[:, keep]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rho, rho_p = spearmanr(xk, yk) if keep.sum() > 2 else (np.nan, np.nan)
            tau, tau_p = kendalltau(xk, yk) if keep.sum() > 2 else (np.nan, np.nan)
        if n_boot and keep.sum() > 2:
            rho_lo, rho_hi = percentile_ci(weighted_spearman(xk, yk, wk))
            tau_lo, tau_hi = percentile_ci(weighted_kendall_tau_b(xk, yk, wk))
        else:
            rho_lo = rho_hi = tau_lo = tau_hi = np.nan
        rows.append((metric, int(keep.sum()), rho, rho_lo, rho_hi, rho_p, tau, tau_lo, tau_hi, tau_p))
    return pd.DataFrame(rows, columns=list(CORRELATION_COLUMNS)).astype({c: "float64" for c in CORRELATION_COLUMNS[2:]})


def legacy_corpus(path: Path, models: Sequence[str]) -> pd.DataFrame:
    """The corpus rows of legacy.csv for ``models`` (for the report's side-by-side table)."""
    frame = pd.read_csv(path)
    corpus = frame[(frame["scope"] == "corpus") & frame["model"].isin(list(models))]
    return corpus.drop(columns=["scope", "question_id"]).reset_index(drop=True)
