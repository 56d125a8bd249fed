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
    if not np.isnan(samples).any():  # np.nanpercentile works column by column in Python; thousands of columns add up
        low, high = np.percentile(samples, [tail, 100.0 - tail], axis=axis)
        return low, high
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


def sign_test_pvalues(wins: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """Two-sided exact sign tests, one per pair (ties dropped): ``scipy.stats.binomtest(w, w + l).pvalue``.

    Under p = 1/2 the binomial is symmetric, so the two-sided p (every outcome no likelier than the one seen)
    is twice the smaller tail, capped at 1; 1.0 where nothing differs.
    """
    from scipy.special import bdtr

    w = np.asarray(wins, dtype=np.int64)
    n = w + np.asarray(losses, dtype=np.int64)
    smaller = np.minimum(w, n - w)
    tail = bdtr(smaller, n, 0.5)
    return np.where(2 * smaller == n, 1.0, np.minimum(2.0 * tail, 1.0))


#: up to this many non-zero differences the signed-rank p is exact (every sign flip counted); above, the normal
#: approximation with tie and continuity corrections, whose error there is well under what the p-value is used for
SIGNED_RANK_EXACT_MAX = 25


def signed_rank_pvalues(differences: np.ndarray) -> np.ndarray:
    """Two-sided Wilcoxon signed-rank tests on the columns of ``differences`` (rows: questions; NaN: not paired).

    Zeros are dropped (Wilcoxon's rule) and tied magnitudes get mid-ranks. With at most
    :data:`SIGNED_RANK_EXACT_MAX` non-zero differences the p-value comes from the exact sign-flip distribution
    of the statistic (what ``scipy.stats.wilcoxon`` computes with an exhaustive permutation test); otherwise
    from the normal approximation with tie and continuity corrections (``wilcoxon(method="asymptotic",
    correction=True)``). Every column at once; 1.0 for a column with no non-zero difference.
    """
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim == 1:
        return signed_rank_pvalues(d[:, None])
    used = ~np.isnan(d) & (d != 0)
    ranks, tie_term = _column_midranks(np.where(used, np.abs(d), np.nan), used)
    n = used.sum(axis=0).astype(np.float64)
    r_plus = np.where(used & (d > 0), ranks, 0.0).sum(axis=0)
    out = np.ones(d.shape[1])
    big = n > SIGNED_RANK_EXACT_MAX
    if big.any():
        out[big] = _signed_rank_normal_p(r_plus[big], n[big], tie_term[big])
    small = ~big & (n > 0)
    if small.any():
        out[small] = _signed_rank_exact_p(np.where(used, ranks, 0.0)[:, small], r_plus[small])
    return out


def _column_midranks(values: np.ndarray, used: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mid-ranks within each column among the ``used`` entries (NaN elsewhere), and per column the tie term
    sum over groups of equal values of (t^3 - t)."""
    rows = values.shape[0]
    order = np.argsort(values, axis=0, kind="stable")  # NaN last
    s = np.take_along_axis(values, order, axis=0)
    position = np.broadcast_to(np.arange(rows)[:, None], s.shape)
    starts = np.ones(s.shape, dtype=bool)
    starts[1:] = s[1:] != s[:-1]
    ends = np.ones(s.shape, dtype=bool)
    ends[:-1] = s[:-1] != s[1:]
    first = np.maximum.accumulate(np.where(starts, position, 0), axis=0)
    last = np.flip(np.minimum.accumulate(np.flip(np.where(ends, position, rows), axis=0), axis=0), axis=0)
    midrank = (first + last) / 2.0 + 1.0
    size = (last - first + 1).astype(np.float64)
    ranks = np.empty_like(values)
    np.put_along_axis(ranks, order, midrank, axis=0)
    sizes = np.empty_like(values)
    np.put_along_axis(sizes, order, size, axis=0)
    tie_term = np.where(used, sizes**2 - 1.0, 0.0).sum(axis=0)  # each of t tied entries adds t^2 - 1
    return np.where(used, ranks, np.nan), tie_term


def _signed_rank_normal_p(r_plus: np.ndarray, n: np.ndarray, tie_term: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    mean = n * (n + 1.0) / 4.0
    se = np.sqrt((n * (n + 1.0) * (2.0 * n + 1.0) - tie_term / 2.0) / 24.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (r_plus - mean) / se
        z = z - np.sign(z) * 0.5 / se
        p = np.where(se > 0, 2.0 * ndtr(-np.abs(z)), 1.0)
    return np.minimum(p, 1.0)


def _signed_rank_exact_p(ranks: np.ndarray, r_plus: np.ndarray) -> np.ndarray:
    """Exact two-sided p of R+ under random signs, per column of ``ranks`` (0 where a row is not used).

    Mid-ranks are multiples of 1/2, so twice the ranks are integers and the null distribution of 2 R+ is built
    by convolving one rank at a time (a rank of 0 leaves it unchanged).
    """
    doubled = np.rint(2.0 * ranks).astype(np.int64)
    doubled = -np.sort(-doubled, axis=0)  # used rows first
    doubled = doubled[: int((doubled > 0).sum(axis=0).max())]
    k = doubled.shape[1]
    top = int(doubled.sum(axis=0).max())
    dist = np.zeros((k, top + 1))
    dist[:, 0] = 1.0
    grid = np.arange(top + 1)
    for shift in doubled:
        src = grid[None, :] - shift[:, None]
        moved = np.where(src >= 0, np.take_along_axis(dist, np.maximum(src, 0), axis=1), 0.0)
        dist = 0.5 * (dist + moved)
    observed = np.rint(2.0 * r_plus).astype(np.int64)
    cdf = np.cumsum(dist, axis=1)
    at_most = cdf[np.arange(k), observed]
    at_least = 1.0 - np.where(observed > 0, cdf[np.arange(k), observed - 1], 0.0)
    return np.minimum(2.0 * np.minimum(at_most, at_least), 1.0)


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


def bradley_terry(
    wins: np.ndarray, prior: float = 1.0, *, start: np.ndarray | None = None, max_iter: int = 100, tol: float = 1e-9
) -> np.ndarray:
    """Bradley-Terry log-strengths (mean 0) from win matrices ``wins[..., i, j]`` (i beat j; ties as 0.5 each).

    Maximum likelihood by Newton's method on every leading index at once (one batched m x m solve per step), so
    all bootstrap replicates are fitted together; ``start`` (e.g. the full-data fit for the replicates) saves
    most of the steps. ``prior`` adds that many virtual tied games to every pair, which keeps a model that never
    won (or never lost) at a finite strength.
    """
    from scipy.special import expit

    w = np.asarray(wins, dtype=float)
    m = w.shape[-1]
    batch = w.shape[:-2]
    a, b = np.triu_indices(m, k=1)  # each pair once: P(b beats a) = 1 - P(a beats b)
    games = (w[..., a, b] + w[..., b, a] + prior).reshape(-1, a.size)
    total_wins = (w.sum(axis=-1) + prior / 2.0 * (m - 1)).reshape(-1, m)
    signed = np.zeros((a.size, m))  # pair -> +1 at its first model, -1 at its second
    signed[np.arange(a.size), a] = 1.0
    signed[np.arange(a.size), b] = -1.0
    both = np.abs(signed)
    # expected wins = games @ (second model's column) + (games * P(a beats b)) @ signed
    base = games @ np.maximum(-signed, 0.0)
    theta = np.zeros((games.shape[0], m)) if start is None else np.broadcast_to(np.asarray(start, dtype=float), (*batch, m)).reshape(-1, m).copy()
    theta -= theta.mean(axis=-1, keepdims=True)
    if theta.size == 0:
        return theta.reshape(*batch, m)
    layout = np.empty(m * m, dtype=np.int64)  # Hessian cell -> column of [-weight, diagonal] (one gather per step)
    layout[a * m + b] = layout[b * m + a] = np.arange(a.size)
    layout[np.arange(m) * (m + 1)] = a.size + np.arange(m)
    for _ in range(max_iter):
        p = expit(theta[:, a] - theta[:, b])
        gradient = total_wins - base - (games * p) @ signed
        weight = games * p * (1.0 - p)
        # the negative Hessian is the Laplacian of the pair weights (null space: a common shift); adding 1/m to
        # every entry fixes the shift, and the step sums to 0 because the gradient does
        hessian = np.take(np.concatenate([-weight, weight @ both], axis=1), layout, axis=1).reshape(-1, m, m)
        hessian += 1.0 / m
        step = np.linalg.solve(hessian, gradient[..., None])[..., 0]
        size = np.abs(step).max(axis=-1, keepdims=True)
        theta += step * np.minimum(1.0, MAX_NEWTON_STEP / np.maximum(size, 1e-300))  # a far start cannot overshoot
        theta -= theta.mean(axis=-1, keepdims=True)
        if size.max() < np.sqrt(tol):  # Newton's error squares each step: the next step would be about tol
            break
    return theta.reshape(*batch, m)


#: largest change of any log-strength in one Newton step (the likelihood is concave; this only tames far starts)
MAX_NEWTON_STEP = 2.0


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

    from scipy.special import stdtrit  # Student's t quantile (= scipy.stats.t.ppf) without importing scipy.stats

    g = np.asarray(n_clusters, dtype=np.float64)
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(g >= 2, stdtrit(np.maximum(g - 1, 1), 0.5 + level / 2.0) / z * np.sqrt(g / np.maximum(g - 1, 1)), np.nan)


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


def kappa_weights(k: int, kind: str | None = None) -> np.ndarray:
    """Disagreement weights of Cohen's kappa over k ordered categories: None (any disagreement 1), "linear" |i - j|,
    "quadratic" (i - j)^2 — scikit-learn's ``cohen_kappa_score(weights=...)``."""
    i, j = np.arange(k)[:, None], np.arange(k)[None, :]
    if kind is None:
        return 1.0 - np.eye(k)
    if kind == "linear":
        return np.abs(i - j).astype(np.float64)
    if kind == "quadratic":
        return ((i - j) ** 2).astype(np.float64)
    raise ValueError(f"unknown kappa weighting {kind!r}")


def kappa_from_confusion(conf: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Cohen's kappa from (..., k, k) confusion counts, for every leading index at once (bootstrap replicates), as
    scikit-learn computes it: 1 - sum(W * observed) / sum(W * expected); NaN where nothing is expected to disagree."""
    conf = np.asarray(conf, dtype=np.float64)
    total = conf.sum(axis=(-2, -1), keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = conf.sum(axis=-1, keepdims=True) * conf.sum(axis=-2, keepdims=True) / total
        observed_w = (weights * conf).sum(axis=(-2, -1))
        expected_w = (weights * expected).sum(axis=(-2, -1))
        return np.where(expected_w > 0, 1.0 - observed_w / np.where(expected_w > 0, expected_w, 1.0), np.nan)


def cohen_kappa(a: np.ndarray, b: np.ndarray, k: int, kind: str | None = None) -> float:
    """Cohen's kappa of two raters' category codes 0..k-1 (equal to scikit-learn's ``cohen_kappa_score`` with
    ``labels=range(k)``, which the tests check; written out because importing scikit-learn costs a report ~2 s)."""
    conf = np.zeros((k, k))
    np.add.at(conf, (np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)), 1.0)
    return float(kappa_from_confusion(conf, kappa_weights(k, kind)))
