"""Rank intervals: where each model's rank lies over resamples, as arena leaderboards show it.

The report's ``rank`` column is conservative and simple: 1 + the number of models whose interval lies wholly above.
It can give every model rank 1 when intervals overlap, and per-model intervals do not hold all together. A rank
interval says more: in each bootstrap resample (or draw from an estimate's sampling distribution) every model gets a
rank, 1 + the number of ranked models strictly above it in that resample, and ``rank_low`` / ``rank_high`` are the
2.5% and 97.5% points of that model's ranks (taken outwards: the lower end rounds down, the upper end up).
"""

from __future__ import annotations

import numpy as np

from owleval.stats import CI_LEVEL

#: how rank intervals are drawn, by table source (report_meta.json states these)
RANK_INTERVAL_RULES = {
    "bootstrap": "the ranks of the image-bootstrap resamples of the estimates (the same resamples as the intervals); "
    "in each resample a model's rank is 1 + the number of ranked models strictly above it; rank_low / rank_high are the "
    "2.5% and 97.5% points of those ranks, rounded outwards",
    "normal": "PPI rows have no image bootstrap: their rank intervals come from independent normal draws of each model's "
    "estimate with the standard error its 95% interval implies ((high - low) / (2 x 1.96)); models graded on different "
    "answers are independent, and estimates that share questions are positively correlated, which such draws ignore "
    "in the direction of wider rank intervals",
    "normal_joint": "the PPI Bradley-Terry strengths have no image bootstrap: their rank intervals come from joint normal "
    "draws with the fit's covariance (the sandwich covariance of the PPI++ estimate, centred to mean 0)",
}


def resample_ranks(replicates: np.ndarray, ranked: np.ndarray) -> np.ndarray:
    """(B, m) ranks per resample: 1 + how many ranked models are strictly above; NaN for unranked models or a NaN value."""
    values = np.asarray(replicates, dtype=np.float64)
    ranked = np.asarray(ranked, dtype=bool)
    usable = np.isfinite(values) & ranked[None, :]
    above = (values[:, None, :] > values[:, :, None]) & usable[:, None, :]
    ranks = 1.0 + above.sum(axis=2)
    return np.where(usable, ranks, np.nan)


def rank_intervals(replicates: np.ndarray, ranked: np.ndarray, level: float = CI_LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Per model, the central ``level`` interval of its rank over the resamples (NaN where unranked or none)."""
    ranks = resample_ranks(replicates, ranked)
    m = ranks.shape[1] if ranks.ndim == 2 else 0
    low, high = np.full(m, np.nan), np.full(m, np.nan)
    tail = (1.0 - level) / 2.0
    for j in range(m):
        col = ranks[:, j]
        col = col[np.isfinite(col)]
        if col.size:
            low[j] = np.quantile(col, tail, method="lower")
            high[j] = np.quantile(col, 1.0 - tail, method="higher")
    return low, high


def normal_draws(estimate: np.ndarray, se: np.ndarray, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """(n_draws, m) independent normal draws around each estimate (NaN where the estimate or its SE is missing)."""
    estimate = np.asarray(estimate, dtype=np.float64)
    se = np.asarray(se, dtype=np.float64)
    z = rng.standard_normal((n_draws, estimate.size))
    return estimate[None, :] + z * se[None, :]


def as_int_column(values: np.ndarray) -> "np.ndarray":
    """Integer ranks with missing values, for a pandas column (``Int64``)."""
    import pandas as pd

    return pd.array([None if not np.isfinite(v) else int(v) for v in values], dtype="Int64")
