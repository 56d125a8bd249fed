"""Statistics for the report, vectorised with numpy so 2,000 bootstrap resamples take milliseconds.

The bootstrap resamples *clusters* (images): questions about one image share it and are not independent.
A resample is represented by how many times each cluster was drawn (a multinomial count vector), so any
statistic that is a ratio of per-cluster sums becomes two matrix products instead of a Python loop.
"""

from __future__ import annotations

import warnings

import numpy as np

CI_LEVEL = 0.95


def bootstrap_counts(n_clusters: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_clusters) draw counts: row b says how often each cluster appears in resample b.

    Drawing ``n_clusters`` clusters with replacement is exactly a multinomial draw with equal probabilities.
    """
    if n_clusters == 0 or n_boot == 0:
        return np.zeros((n_boot, n_clusters))
    return rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=n_boot).astype(np.float64)


def percentile_ci(samples: np.ndarray, level: float = CI_LEVEL, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of bootstrap ``samples`` along ``axis`` (NaN resamples ignored).

    With no resamples at all (``--bootstrap 0``) both ends are NaN: no interval, rather than numpy's oddly shaped
    answer for an empty axis.
    """
    samples = np.asarray(samples, dtype=np.float64)
    if samples.shape[axis] == 0:
        shape = samples.shape[:axis % samples.ndim] + samples.shape[axis % samples.ndim + 1 :]
        return np.full(shape, np.nan), np.full(shape, np.nan)
    tail = (1.0 - level) / 2.0 * 100.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN, which is what we want
        low, high = np.nanpercentile(samples, [tail, 100.0 - tail], axis=axis)
    return low, high


def ratio_bootstrap(counts: np.ndarray, numer: np.ndarray, denom: np.ndarray) -> np.ndarray:
    """Bootstrap replicates of sum(numer)/sum(denom) for per-cluster sums (n_clusters, k) -> (n_boot, k)."""
    top = counts @ numer
    bottom = counts @ denom
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1.0), np.nan)


def cluster_sums(cluster: np.ndarray, columns: np.ndarray, values: np.ndarray, n_clusters: int, n_columns: int) -> np.ndarray:
    """Sum ``values`` into a (n_clusters, n_columns) matrix at (cluster, column)."""
    out = np.zeros((n_clusters, n_columns))
    np.add.at(out, (cluster, columns), values)
    return out


def sign_test_p(wins: int, losses: int) -> float:
    """Two-sided exact sign test (ties dropped); 1.0 when nothing differs."""
    from scipy.stats import binomtest

    if wins + losses == 0:
        return 1.0
    return float(binomtest(wins, wins + losses, 0.5, alternative="two-sided").pvalue)


def wilcoxon_p(differences: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank test on paired differences (zeros dropped); 1.0 when all are zero."""
    from scipy.stats import wilcoxon

    nonzero = differences[differences != 0]
    if nonzero.size == 0:
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(wilcoxon(nonzero, zero_method="wilcox", alternative="two-sided").pvalue)


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (family-wise error over all pairs)."""
    p = np.asarray(pvalues, dtype=float)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def bradley_terry(wins: np.ndarray, prior: float = 1.0, max_iter: int = 5000, tol: float = 1e-9) -> np.ndarray:
    """Bradley-Terry log-strengths (mean 0) from win matrices ``wins[..., i, j]`` (i beat j; ties as 0.5 each).

    Fitted with Hunter's (2004) MM updates on every leading index at once, so all bootstrap replicates are
    fitted together. ``prior`` adds that many virtual tied games to every pair, which keeps a model that never
    won (or never lost) at a finite strength.
    """
    w = np.asarray(wins, dtype=float)
    m = w.shape[-1]
    off = 1.0 - np.eye(m)
    w = w + prior / 2.0 * off
    games = w + np.swapaxes(w, -1, -2)
    total_wins = w.sum(axis=-1)
    log_p = np.zeros(w.shape[:-1])
    for _ in range(max_iter):
        p = np.exp(log_p)
        denom = (games / (p[..., :, None] + p[..., None, :])).sum(axis=-1)
        new = np.log(total_wins) - np.log(denom)
        new -= new.mean(axis=-1, keepdims=True)
        if np.max(np.abs(new - log_p), initial=0.0) < tol:  # initial: an empty stack (no resamples) is done
            log_p = new
            break
        log_p = new
    return log_p


def weighted_midranks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mid-ranks of ``values`` in the sample where item i appears ``weights[..., i]`` times.

    Equals scipy's ``rankdata`` of the expanded sample (every copy of an item gets the same rank).
    """
    order = np.argsort(values, kind="stable")
    sorted_vals = values[order]
    group_start = np.r_[True, sorted_vals[1:] != sorted_vals[:-1]]
    group_id = np.cumsum(group_start) - 1
    w_sorted = weights[..., order]
    group_w = _group_totals(group_id, w_sorted)
    before = np.cumsum(group_w, axis=-1) - group_w
    group_rank = before + (group_w + 1.0) / 2.0
    ranks = np.empty_like(w_sorted)
    ranks[..., order] = group_rank[..., group_id]
    return ranks


def _group_totals(group_id: np.ndarray, w_sorted: np.ndarray) -> np.ndarray:
    """Total weight of each run of equal (sorted) group ids, along the last axis."""
    csum = np.cumsum(w_sorted, axis=-1)
    ends = np.r_[np.nonzero(np.diff(group_id))[0], group_id.size - 1]
    return np.diff(csum[..., ends], axis=-1, prepend=0.0)


def weighted_spearman(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Spearman's rho of the sample with item i repeated ``weights[..., i]`` times (vectorised over rows)."""
    rx = weighted_midranks(x, weights)
    ry = weighted_midranks(y, weights)
    total = weights.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = (weights * rx).sum(-1, keepdims=True) / total
        my = (weights * ry).sum(-1, keepdims=True) / total
        dx, dy = rx - mx, ry - my
        cov = (weights * dx * dy).sum(-1)
        var = np.sqrt((weights * dx * dx).sum(-1) * (weights * dy * dy).sum(-1))
        return np.where(var > 0, cov / np.where(var > 0, var, 1.0), np.nan)


def _tie_mass(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Sum over groups of equal values of (group weight)^2, per row of ``weights``."""
    _, inverse = np.unique(values, return_inverse=True)
    onehot = np.zeros((values.size, inverse.max() + 1 if values.size else 0))
    onehot[np.arange(values.size), inverse] = 1.0
    return ((weights @ onehot) ** 2).sum(axis=-1)


def weighted_kendall_tau_b(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of the sample with item i repeated ``weights[..., i]`` times (vectorised over rows).

    Copies of one item are tied on both variables, as they are in the expanded sample.
    """
    sx = np.sign(x[:, None] - x[None, :])
    sy = np.sign(y[:, None] - y[None, :])
    concord = sx * sy
    w2 = np.atleast_2d(weights)
    numer = 0.5 * np.einsum("bi,bi->b", w2 @ concord, w2)
    total = w2.sum(axis=-1)
    pairs_x = 0.5 * (total**2 - _tie_mass(x, w2))
    pairs_y = 0.5 * (total**2 - _tie_mass(y, w2))
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = np.sqrt(pairs_x * pairs_y)
        tau = np.where(denom > 0, numer / np.where(denom > 0, denom, 1.0), np.nan)
    return tau if weights.ndim > 1 else tau[0]


#: a mean over fewer observations than this gets its value and "too few", not an interval
MIN_N_MEAN_INTERVAL = 5


def wilson_interval(successes: np.ndarray, n: np.ndarray, level: float = CI_LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Wilson's score interval for a share: inside [0, 1] by construction and never of zero width when n > 0.

    ``n`` may be an effective sample size (n / design effect), so it need not be whole. NaN where n is 0.
    """
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.asarray(successes, dtype=np.float64) / n
        centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n)
        half = z / (1.0 + z * z / n) * np.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n))
        low, high = np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)
    bad = ~(n > 0)
    return np.where(bad, np.nan, low), np.where(bad, np.nan, high)


def few_clusters_factor(n_clusters: np.ndarray, level: float = CI_LEVEL) -> np.ndarray:
    """How much wider a cluster-bootstrap interval is made for having only G clusters (images):
    t_{G-1} / z * sqrt(G / (G - 1)), the usual small-G correction of a cluster-robust variance (the bootstrap's
    variance is biased low by (G - 1) / G, and G - 1 degrees of freedom call for a t quantile). 1.04 at G = 50
    (the whole data set); NaN below 2 clusters."""
    from statistics import NormalDist

    from scipy.stats import t

    g = np.asarray(n_clusters, dtype=np.float64)
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(g >= 2, t.ppf(0.5 + level / 2.0, np.maximum(g - 1, 1)) / z * np.sqrt(g / np.maximum(g - 1, 1)), np.nan)


def boot_variance(replicates: np.ndarray) -> np.ndarray:
    """Variance of bootstrap replicates along axis 0 (NaN replicates ignored; NaN with fewer than two)."""
    replicates = np.asarray(replicates, dtype=np.float64)
    if replicates.shape[0] < 2:
        return np.full(replicates.shape[1:], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanvar(replicates, axis=0, ddof=1)


def bounded_score_interval(
    estimate: np.ndarray, variance: np.ndarray, lowest: float, highest: float, level: float = CI_LEVEL
) -> tuple[np.ndarray, np.ndarray]:
    """A score-type (Wilson) interval for a mean of values in [lowest, highest] with the given variance.

    On the scale mapped to [0, 1], a mean p with variance v is treated as a share at the effective sample size
    p(1 - p) / v: the interval has the normal width where p is central and leans away from the end of the scale
    where p is near it, as Wilson's does for a share -- which a symmetric interval does not, and under-covers for
    (a model whose grades are mostly A). NaN where p is at an end or the variance is not positive.
    """
    span = highest - lowest
    p = (np.asarray(estimate, dtype=np.float64) - lowest) / span
    v = np.asarray(variance, dtype=np.float64) / span**2
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = (p > 0.0) & (p < 1.0) & (v > 0.0)
        n_eff = np.where(ok, p * (1.0 - p) / np.where(ok, v, 1.0), np.nan)
        low, high = wilson_interval(np.clip(p, 0.0, 1.0) * n_eff, n_eff, level)
    return np.where(ok, lowest + span * low, np.nan), np.where(ok, lowest + span * high, np.nan)


def clustered_wilson(
    share: np.ndarray, n: np.ndarray, boot_replicates: np.ndarray, level: float = CI_LEVEL, var_factor: np.ndarray | float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson's interval for shares of clustered observations, at the effective sample size n / design effect.

    The design effect is the image bootstrap's variance of the share over the binomial one p(1 - p)/n, at least 1
    (clustering never makes a share more precise than independent answers would). Where the share is 0 or 1 the
    bootstrap varies not at all and the design effect is taken as 1: plain Wilson, e.g. 0 of 7 -> [0%, 35%].
    ``boot_replicates``: (n_boot, k) replicates of the share; with none there is no interval (NaN). ``var_factor``
    multiplies the bootstrap variance (the square of :func:`few_clusters_factor`).
    """
    share, n = np.asarray(share, dtype=np.float64), np.asarray(n, dtype=np.float64)
    if boot_replicates.shape[0] == 0:
        return np.full(share.shape, np.nan), np.full(share.shape, np.nan)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        boot_var = np.nanvar(boot_replicates, axis=0, ddof=1) * var_factor
        binomial = share * (1.0 - share) / n
        deff = np.where(binomial > 0, np.maximum(boot_var / np.where(binomial > 0, binomial, 1.0), 1.0), 1.0)
    deff = np.where(np.isfinite(deff), deff, 1.0)
    n_eff = n / deff
    return wilson_interval(share * n_eff, n_eff, level)
