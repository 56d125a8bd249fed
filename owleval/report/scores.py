"""scores.csv: the one table to quote, leading the report.

One row per model and metric (``mean_score`` 0-3 and ``acceptable``, the A+B share): the estimate and its 95% CI,
where it comes from and on how many answers, and a rank. ``source`` is ``human`` without a judge (the summary
table's estimate and interval), ``ppi`` when a judge's grades are combined with the human ones (ppi.csv's headline,
"questions like these"), ``judge`` for a model people have not graded (the judge's mean, no interval, no rank: nothing
anchors it). Rank per metric: 1 + the number of models whose interval lies strictly above this one's; rows without
an interval are unranked and not counted. ``rank_low`` / ``rank_high``: the 95% interval of the model's rank over
resamples (:mod:`owleval.report.ranks`): image-bootstrap resamples for human rows, normal draws for PPI rows. Rows come
by metric (mean_score, then acceptable), then estimate, best first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from owleval.report.ranks import as_int_column, normal_draws, rank_intervals

SCORE_COLUMNS = ("model", "metric", "estimate", "ci_low", "ci_high", "source", "n_human", "n_judge", "rank", "rank_low", "rank_high", "note")
METRICS = ("mean_score", "acceptable")
JUDGE_ONLY_NOTE = "no human grade: the judge's own mean, which nothing anchors to people; no interval, no rank"


def rank_rows(low: np.ndarray, high: np.ndarray) -> list[int | None]:
    """1 + how many intervals lie strictly above each one; None where there is no interval."""
    has = ~(np.isnan(low) | np.isnan(high))
    ranks: list[int | None] = []
    for i in range(low.size):
        ranks.append(int(1 + np.sum(has & (low > high[i]))) if has[i] else None)
    return ranks


def scores_table(
    summary: pd.DataFrame,
    ppi: pd.DataFrame | None = None,
    judge_only: pd.DataFrame | None = None,
    *,
    replicates: dict[str, np.ndarray] | None = None,
    n_draws: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """``summary``: the summary score table; ``ppi``: ppi.csv's table (with a judge); ``judge_only``: model_id and
    mean_score/acceptable judge values of answers of models people did not grade; ``replicates``: per metric the
    summary's bootstrap resamples (:func:`tables.score_replicates`, columns in ``summary`` order) for the human rows'
    rank intervals; PPI rows use ``n_draws`` normal draws (none with 0)."""
    rows: list[dict] = []
    for metric in METRICS:
        part: list[dict] = []
        if ppi is None:
            for r in summary.to_dict("records"):
                part.append({"model": r["model"], "metric": metric, "estimate": r[metric], "ci_low": r[f"{metric}_ci_low"],
                             "ci_high": r[f"{metric}_ci_high"], "source": "human", "n_human": int(r["n_answers"]), "n_judge": pd.NA,
                             "note": r["note"] if metric == "mean_score" else ""})  # fmt: skip
        else:
            for r in ppi[ppi["metric"] == metric].to_dict("records"):
                part.append({"model": r["model"], "metric": metric, "estimate": r["estimate"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                             "source": "ppi", "n_human": int(r["n_human"]), "n_judge": int(r["n_judge"]), "note": r["note"]})  # fmt: skip
        if judge_only is not None and len(judge_only):
            for model, values in judge_only.groupby("model_id", sort=True):
                part.append({"model": model, "metric": metric, "estimate": float(values[metric].mean()), "ci_low": np.nan, "ci_high": np.nan,
                             "source": "judge", "n_human": 0, "n_judge": int(len(values)), "note": JUDGE_ONLY_NOTE})  # fmt: skip
        low = np.array([p["ci_low"] for p in part], dtype=float)
        high = np.array([p["ci_high"] for p in part], dtype=float)
        rank_low, rank_high = _rank_interval(part, low, high, metric, replicates, n_draws, seed)
        for p, rank, r_low, r_high in zip(part, rank_rows(low, high), rank_low, rank_high, strict=True):
            p.update(rank=rank, rank_low=r_low, rank_high=r_high)
        part.sort(key=lambda p: (-p["estimate"] if p["estimate"] == p["estimate"] else np.inf, p["model"]))
        rows.extend(part)
    table = pd.DataFrame(rows, columns=list(SCORE_COLUMNS))
    for column in ("rank", "n_judge"):
        table[column] = table[column].astype("Int64")
    for column in ("rank_low", "rank_high"):
        table[column] = as_int_column(table[column].to_numpy(dtype=float))
    return table


def _rank_interval(part: list[dict], low: np.ndarray, high: np.ndarray, metric: str, replicates: dict[str, np.ndarray] | None,
                   n_draws: int, seed: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """rank_low / rank_high of one metric's rows: among the rows with an interval (as ``rank``), over resamples."""
    ranked = np.isfinite(low) & np.isfinite(high)
    m = len(part)
    sources = {p["source"] for p in part if p["source"] != "judge"}
    if sources == {"human"} and replicates is not None and replicates[metric].shape[0]:
        human_models = [p["model"] for p in part if p["source"] == "human"]
        draws = np.full((replicates[metric].shape[0], m), np.nan)
        draws[:, : len(human_models)] = replicates[metric]  # human rows come first, in summary order
    elif sources == {"ppi"} and n_draws > 0:
        estimate = np.array([p["estimate"] for p in part], dtype=float)
        se = np.where(ranked, (high - low) / (2.0 * 1.959963984540054), np.nan)
        draws = normal_draws(estimate, se, n_draws, np.random.default_rng([seed, 700, METRICS.index(metric)]))
    else:
        return np.full(m, np.nan), np.full(m, np.nan)
    return rank_intervals(draws, ranked)


def judge_only_models(judge_values: pd.DataFrame, human_models: Sequence[str]) -> pd.DataFrame:
    """The judge's per-answer values of the models no person graded."""
    return judge_values[~judge_values["model_id"].isin(set(human_models))]
