"""How far the captioning metrics are from human judgement: rank correlation (Spearman, Kendall tau-b) between
each metric's per-answer scores (legacy.csv) and the per-answer human score, with image-level bootstrap CIs.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from owleval.csvio import unquote_frame
from owleval.errors import InputFileError, OwlEvalError, Problem
from owleval.report.legacy import METRIC_COLUMNS
from owleval.stats import bootstrap_counts, percentile_ci, weighted_kendall_tau_b, weighted_spearman

CORRELATION_COLUMNS = (
    "metric", "n", "spearman", "spearman_ci_low", "spearman_ci_high", "spearman_p",
    "kendall", "kendall_ci_low", "kendall_ci_high", "kendall_p",
)  # fmt: skip


def read_legacy_csv(path: Path) -> pd.DataFrame:
    """Every row of a legacy.csv written by ``owleval legacy`` (corpus and answer rows), numbers checked.

    Read once: :func:`answer_rows` and :func:`legacy_corpus` split it. Only empty cells are missing values, so a
    model named ``NA`` or ``null`` stays a name.
    """
    try:
        frame = unquote_frame(pd.read_csv(path, dtype={"model": str, "scope": str}, keep_default_na=False, na_values=[""]))
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
    problems = []
    is_answer = frame["scope"] == "answer"
    for col in ["question_id", *metrics]:
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna() & (is_answer | frame[col].notna())  # corpus rows may leave a cell empty, answers may not
        problems += [Problem(path, int(i) + 2, col, _not_a_number(frame.at[i, col])) for i in frame.index[bad]]
        frame[col] = values
    if problems:
        raise InputFileError(problems)
    return frame


def _not_a_number(value: object) -> str:
    return "empty; an answer row needs a number" if pd.isna(value) else f"{value!r} is not a number"


def answer_rows(legacy: pd.DataFrame) -> pd.DataFrame:
    """The per-answer scores of a legacy.csv: model_id, question_id and the metric columns."""
    metrics = [c for c in METRIC_COLUMNS if c in legacy.columns]
    answers = legacy[legacy["scope"] == "answer"]
    out = answers[["model", "question_id", *metrics]].astype({"question_id": "int64"})
    return out.rename(columns={"model": "model_id"}).reset_index(drop=True)


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
        n = int(keep.sum())
        if n <= 2:  # no correlation to speak of
            rows.append((metric, n, *[np.nan] * (len(CORRELATION_COLUMNS) - 2)))
            continue
        xk, yk, wk = x[keep], y[keep], weights[:, keep]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a constant metric: scipy warns and gives NaN, which we report
            rho, rho_p = spearmanr(xk, yk)
            tau, tau_p = kendalltau(xk, yk)
        rho_lo, rho_hi = percentile_ci(weighted_spearman(xk, yk, wk))
        tau_lo, tau_hi = percentile_ci(weighted_kendall_tau_b(xk, yk, wk))
        rows.append((metric, n, rho, rho_lo, rho_hi, rho_p, tau, tau_lo, tau_hi, tau_p))
    return pd.DataFrame(rows, columns=list(CORRELATION_COLUMNS)).astype({c: "float64" for c in CORRELATION_COLUMNS[2:]})


def legacy_corpus(legacy: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """The corpus rows of a legacy.csv for ``models`` (for the report's side-by-side table)."""
    corpus = legacy[(legacy["scope"] == "corpus") & legacy["model"].isin(list(models))]
    return corpus.drop(columns=["scope", "question_id"]).reset_index(drop=True)
