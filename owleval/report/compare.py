"""Models compared on the same questions: pairwise wins/ties/losses with paired tests, and a Bradley-Terry
leaderboard fitted to those paired outcomes, both with image-level bootstrap CIs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from owleval.report.ranks import as_int_column, rank_intervals
from owleval.stats import (
    bootstrap_counts,
    bradley_terry,
    holm,
    percentile_ci,
    ratio_bootstrap,
    sign_test_pvalues,
    signed_rank_pvalues,
)

PAIRWISE_COLUMNS = (
    "model_a", "model_b", "n", "wins", "ties", "losses", "mean_diff", "mean_diff_ci_low", "mean_diff_ci_high",
    "sign_test_p", "sign_test_p_holm", "wilcoxon_p",
)  # fmt: skip
LEADERBOARD_COLUMNS = ("rank", "rank_low", "rank_high", "model", "strength", "strength_ci_low", "strength_ci_high", "win_rate", "n_comparisons", "note")
#: virtual tied games added to every pair of the Bradley-Terry fit
BT_PRIOR = 1.0
#: a model compared on fewer answers than this (against all others together) is shown but not ranked: its
#: strength is mostly the prior's virtual ties
MIN_COMPARISONS = 5
#: accuracy of each bootstrap replicate's fit: Newton stops once a step is below sqrt(1e-4) = 0.01, leaving an
#: error near 1e-5 (its error squares each step), 100x below the Monte Carlo error of 2,000 replicates' 2.5%
#: percentile (about 0.06 bootstrap SDs, ~0.006 here) and far below the 2 decimals shown; it saves a step in three
BT_BOOTSTRAP_TOL = 1e-4


def score_matrix(scores: pd.DataFrame, models: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(question ids, matrix questions x models of per-answer scores, NaN where a model has no answer)."""
    wide = scores.pivot(index="question_id", columns="model_id", values="score").reindex(columns=list(models))
    return wide.index.to_numpy(), wide.to_numpy(dtype=np.float64)


def _image_onehot(qids: np.ndarray, info: pd.DataFrame) -> np.ndarray:
    codes, names = pd.factorize(info.loc[qids, "image"].to_numpy())
    onehot = np.zeros((len(names), len(qids)))
    onehot[codes, np.arange(len(qids))] = 1.0
    return onehot


def pairwise_table(scores: pd.DataFrame, info: pd.DataFrame, models: Sequence[str], *, n_boot: int, seed: int) -> pd.DataFrame:
    """Every pair of models (in ``models`` order) on the questions both answered."""
    qids, x = score_matrix(scores, models)
    pairs = [(i, j) for i in range(len(models)) for j in range(i + 1, len(models))]
    if not pairs or len(qids) == 0:
        return pd.DataFrame(columns=list(PAIRWISE_COLUMNS))
    a_idx = np.array([i for i, _ in pairs])
    b_idx = np.array([j for _, j in pairs])
    diff = x[:, a_idx] - x[:, b_idx]  # (questions, pairs)
    valid = ~np.isnan(diff)
    onehot = _image_onehot(qids, info)
    counts = bootstrap_counts(onehot.shape[0], n_boot, np.random.default_rng([seed, 100]))
    boot = ratio_bootstrap(counts, onehot @ np.where(valid, diff, 0.0), onehot @ valid.astype(float))
    low, high = percentile_ci(boot)
    wins = (valid & (diff > 0)).sum(axis=0)
    losses = (valid & (diff < 0)).sum(axis=0)
    n = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_diff = np.where(n > 0, np.where(valid, diff, 0.0).sum(axis=0) / np.maximum(n, 1), np.nan)
    sign_p = sign_test_pvalues(wins, losses)
    table = pd.DataFrame(
        {
            "model_a": [models[i] for i in a_idx],
            "model_b": [models[j] for j in b_idx],
            "n": n,
            "wins": wins,
            "ties": n - wins - losses,
            "losses": losses,
            "mean_diff": mean_diff,
            "mean_diff_ci_low": low,
            "mean_diff_ci_high": high,
            "sign_test_p": sign_p,
            "sign_test_p_holm": holm(sign_p),
            "wilcoxon_p": signed_rank_pvalues(diff),
        }
    )
    return table[list(PAIRWISE_COLUMNS)]


def win_matrices(x: np.ndarray) -> np.ndarray:
    """(questions, m, m): 1 where model i's answer beat model j's, 0.5 on a tie, 0 otherwise or when missing."""
    a = x[:, :, None]
    b = x[:, None, :]
    both = ~(np.isnan(a) | np.isnan(b))
    out = np.where(both & (a > b), 1.0, 0.0) + np.where(both & (a == b), 0.5, 0.0)
    idx = np.arange(x.shape[1])
    out[:, idx, idx] = 0.0
    return out


def leaderboard_table(scores: pd.DataFrame, info: pd.DataFrame, models: Sequence[str], *, n_boot: int, seed: int) -> pd.DataFrame:
    """Bradley-Terry strengths (log scale, mean 0) with bootstrap CIs over images, best first.

    A model with no comparison at all (no question shared with another graded model) is left out of the fit:
    it would only add virtual ties. It and any model with fewer than :data:`MIN_COMPARISONS` comparisons get
    no rank and a note; the ranked models come first, numbered 1, 2, ... by strength.
    """
    qids, x = score_matrix(scores, models)
    m = len(models)
    if m < 2 or len(qids) == 0:
        return pd.DataFrame(columns=list(LEADERBOARD_COLUMNS))
    per_q = win_matrices(x).reshape(len(qids), m * m)
    onehot = _image_onehot(qids, info)
    per_img = onehot @ per_q  # (images, m*m)
    wins = per_img.sum(axis=0).reshape(m, m)
    games = wins + wins.T
    n_comparisons = games.sum(axis=1).round().astype(np.int64)
    fitted = np.flatnonzero(n_comparisons > 0)
    strength = np.full(m, np.nan)
    low = np.full(m, np.nan)
    high = np.full(m, np.nan)
    draws = np.full((n_boot, m), np.nan)
    if fitted.size >= 2:
        keep = (fitted[:, None] * m + fitted[None, :]).ravel()  # the fitted models' cells of the m*m layout
        k = fitted.size
        strength[fitted] = bradley_terry(wins[np.ix_(fitted, fitted)], prior=BT_PRIOR)
        counts = bootstrap_counts(onehot.shape[0], n_boot, np.random.default_rng([seed, 101]))
        replicates = bradley_terry((counts @ per_img[:, keep]).reshape(n_boot, k, k), prior=BT_PRIOR, start=strength[fitted], tol=BT_BOOTSTRAP_TOL)
        low[fitted], high[fitted] = percentile_ci(replicates)
        draws[:, fitted] = replicates
    with np.errstate(invalid="ignore", divide="ignore"):
        win_rate = wins.sum(axis=1) / games.sum(axis=1)
    ranked = ~np.isnan(strength) & (n_comparisons >= MIN_COMPARISONS)
    rank_low, rank_high = rank_intervals(draws, ranked)
    note = np.where(
        n_comparisons == 0,
        "no comparisons: not ranked",
        np.where(ranked, "", f"too few comparisons (fewer than {MIN_COMPARISONS}): not ranked"),
    )
    table = pd.DataFrame(
        {
            "model": list(models),
            "strength": strength,
            "strength_ci_low": low,
            "strength_ci_high": high,
            "win_rate": win_rate,
            "n_comparisons": n_comparisons,
            "note": note,
            "rank_low": rank_low,
            "rank_high": rank_high,
            "_ranked": ranked,
        }
    ).sort_values(["_ranked", "strength", "model"], ascending=[False, False, True], kind="stable", na_position="last")
    rank = pd.array(np.arange(1, m + 1), dtype="Int64")
    rank[~table["_ranked"].to_numpy()] = pd.NA
    table.insert(0, "rank", rank)
    for column in ("rank_low", "rank_high"):
        table[column] = as_int_column(table[column].to_numpy(dtype=float))
    return table[list(LEADERBOARD_COLUMNS)].reset_index(drop=True)


#: up to this many pairs (every pair of 8 models) report.md/html list them all; beyond, only the ones that matter
MAX_LISTED_PAIRS = 28
#: family-wise level of the Holm-adjusted sign tests that call a pair's difference significant
SIGNIFICANCE_LEVEL = 0.05


def listed_pairs(pairwise: pd.DataFrame, leaderboard: pd.DataFrame) -> tuple[pd.DataFrame, dict | None]:
    """The pairwise rows report.md/html show, and (with many models) what they leave out.

    With at most :data:`MAX_LISTED_PAIRS` pairs: every row as in pairwise.csv, and no summary. With more: the
    pairs of adjacent ranks on the leaderboard, the better-ranked model as model A, and a summary with the count
    of significant pairs and, per ranked model, how many models it is significantly better / worse than
    (Holm-adjusted sign test at :data:`SIGNIFICANCE_LEVEL`). pairwise.csv keeps every pair either way.
    """
    if len(pairwise) <= MAX_LISTED_PAIRS:
        return pairwise, None
    significant = pairwise["sign_test_p_holm"].to_numpy() < SIGNIFICANCE_LEVEL
    a_better = pairwise["wins"].to_numpy() > pairwise["losses"].to_numpy()
    better = pd.concat([pairwise.loc[significant & a_better, "model_a"], pairwise.loc[significant & ~a_better, "model_b"]]).value_counts()
    worse = pd.concat([pairwise.loc[significant & a_better, "model_b"], pairwise.loc[significant & ~a_better, "model_a"]]).value_counts()
    ranked = leaderboard[leaderboard["rank"].notna()]
    by_pair = {(r["model_a"], r["model_b"]): r for r in pairwise.to_dict("records")}
    rows = []
    for upper, lower in zip(ranked["model"].iloc[:-1], ranked["model"].iloc[1:], strict=True):
        if (upper, lower) in by_pair:
            rows.append(by_pair[(upper, lower)])
        elif (lower, upper) in by_pair:
            rows.append(_flipped(by_pair[(lower, upper)]))
    per_model = [
        {"rank": r["rank"], "model": r["model"], "better_than": int(better.get(r["model"], 0)), "worse_than": int(worse.get(r["model"], 0))}
        for r in ranked.to_dict("records")
    ]
    summary = {
        "n_pairs": int(len(pairwise)),
        "n_significant": int(significant.sum()),
        "n_adjacent_significant": int(sum(r["sign_test_p_holm"] < SIGNIFICANCE_LEVEL for r in rows)),
        "level": SIGNIFICANCE_LEVEL,
        "per_model": per_model,
    }
    return pd.DataFrame(rows, columns=pairwise.columns), summary


def _flipped(row: dict) -> dict:
    """A pairwise row seen from model B's side (p-values are symmetric)."""
    return {
        **row,
        "model_a": row["model_b"],
        "model_b": row["model_a"],
        "wins": row["losses"],
        "losses": row["wins"],
        "mean_diff": -row["mean_diff"],
        "mean_diff_ci_low": -row["mean_diff_ci_high"],
        "mean_diff_ci_high": -row["mean_diff_ci_low"],
    }
