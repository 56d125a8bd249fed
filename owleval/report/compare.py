"""Models compared on the same questions: pairwise wins/ties/losses with paired tests, and a Bradley-Terry
leaderboard fitted to those paired outcomes, both with image-level bootstrap CIs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from owleval.report.stats import bootstrap_counts, bradley_terry, holm, percentile_ci, ratio_bootstrap, sign_test_p, wilcoxon_p

PAIRWISE_COLUMNS = (
    "model_a", "model_b", "n", "wins", "ties", "losses", "mean_diff", "mean_diff_ci_low", "mean_diff_ci_high",
    "sign_test_p", "sign_test_p_holm", "wilcoxon_p",
)  # fmt: skip
LEADERBOARD_COLUMNS = ("rank", "model", "strength", "strength_ci_low", "strength_ci_high", "win_rate", "n_comparisons")
#: virtual tied games added to every pair of the Bradley-Terry fit
BT_PRIOR = 1.0


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
    rows = []
    for k, (i, j) in enumerate(pairs):
        d = diff[valid[:, k], k]
        wins, losses = int((d > 0).sum()), int((d < 0).sum())
        rows.append(
            {
                "model_a": models[i],
                "model_b": models[j],
                "n": int(d.size),
                "wins": wins,
                "ties": int(d.size - wins - losses),
                "losses": losses,
                "mean_diff": float(d.mean()) if d.size else np.nan,
                "mean_diff_ci_low": low[k],
                "mean_diff_ci_high": high[k],
                "sign_test_p": sign_test_p(wins, losses),
                "wilcoxon_p": wilcoxon_p(d),
            }
        )
    table = pd.DataFrame(rows)
    table["sign_test_p_holm"] = holm(table["sign_test_p"].to_numpy())
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
    """Bradley-Terry strengths (log scale, mean 0) with bootstrap CIs over images, best first."""
    qids, x = score_matrix(scores, models)
    m = len(models)
    if m < 2 or len(qids) == 0:
        return pd.DataFrame(columns=list(LEADERBOARD_COLUMNS))
    per_q = win_matrices(x).reshape(len(qids), m * m)
    onehot = _image_onehot(qids, info)
    per_img = onehot @ per_q  # (images, m*m)
    wins = per_img.sum(axis=0).reshape(m, m)
    strength = bradley_terry(wins, prior=BT_PRIOR)
    counts = bootstrap_counts(onehot.shape[0], n_boot, np.random.default_rng([seed, 101]))
    low, high = percentile_ci(bradley_terry((counts @ per_img).reshape(n_boot, m, m), prior=BT_PRIOR))
    games = wins + wins.T
    with np.errstate(invalid="ignore", divide="ignore"):
        win_rate = wins.sum(axis=1) / games.sum(axis=1)
    table = pd.DataFrame(
        {
            "model": list(models),
            "strength": strength,
            "strength_ci_low": low,
            "strength_ci_high": high,
            "win_rate": win_rate,
            "n_comparisons": games.sum(axis=1).round().astype(np.int64),
        }
    ).sort_values(["strength", "model"], ascending=[False, True], kind="stable")
    table.insert(0, "rank", np.arange(1, m + 1))
    return table[list(LEADERBOARD_COLUMNS)].reset_index(drop=True)
