"""*These answers*: the finite-population interval of the difference estimator, for many samples at once.

Each row of ``y`` / ``f`` is one simple random sample of n of a model's N answers (human value, judge value);
``f_mean`` is the judge's mean over all N. The report calls these functions with one row; the coverage bench
(bench/bench_ppi_coverage.py) with thousands, so what it measures is the report's own code.

Why a pseudo-count: with a good judge most residuals Y - lam f are equal and the disagreements are rare; a sample
that missed them has a residual variance near 0 exactly when its estimate is furthest off (a Wald failure that
neither a t quantile nor a floor of one grade step over n + 1 repairs: 0.87 coverage on fixed populations). The
sum of squares gets ``PSEUDO_COUNT / (1 - n/N)`` pseudo-observations one grade step from the mean (Agresti-Coull
adds z^2/2 ~ 2 observations to a share; dividing by the finite-population factor gives them the weight the
unsampled answers have, where a missed disagreement lives). The interval is score-type on the scale mapped to
[0, 1] (Wilson's at the effective sample size p(1 - p) / variance, with the t_{n-2} quantile); at an end of the
scale, Wilson's at n / (1 - n/N), which covers the exact hypergeometric bound of an all-acceptable sample
(n = 15 of 82: 0.797 vs 0.805). Measured in bench/bench_ppi_coverage.py --fixed.
"""

from __future__ import annotations

import functools
from statistics import NormalDist

import numpy as np

#: metric -> (lowest, highest) value of its scale; intervals are clipped to it
SCALES = {"mean_score": (0.0, 3.0), "acceptable": (0.0, 1.0)}
#: the size of one disagreement (one grade step, or acceptable vs not), per metric
STEP = {"mean_score": 1.0, "acceptable": 1.0}
#: pseudo-observations added to the residuals' sum of squares, before dividing by 1 - n/N (measured, see above)
PSEUDO_COUNT = 2.0
VARIANCE_RULE = (
    "residual variance (sum of squares + k step^2) / (n - 2 + k) with k = 2 / (1 - n/N) pseudo-observations one grade "
    "step off (so a sample that missed the judge's rare disagreements is not taken as certain), times (1 - n/N) / n, "
    "and never below the delete-one jackknife variance; score-type (Wilson) interval with the t_{n-2} quantile"
)


@functools.lru_cache(maxsize=256)
def t_quantile(alpha: float, dof: int) -> float:
    from scipy.special import stdtrit  # Student's t quantile (= scipy.stats.t.ppf) without importing scipy.stats

    return float(stdtrit(max(dof, 1), 1.0 - alpha / 2.0))


def z_quantile(alpha: float) -> float:
    return NormalDist().inv_cdf(1.0 - alpha / 2.0)


def lambdas(y: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Cov(Y, f) / Var(f) per row, clipped to [0, 1]; 0 where f does not vary (or fewer than 2 values)."""
    if y.shape[-1] < 2:
        return np.zeros(y.shape[:-1])
    fm, ym = f.mean(axis=-1, keepdims=True), y.mean(axis=-1, keepdims=True)
    var = ((f - fm) ** 2).mean(axis=-1)
    cov = ((y - ym) * (f - fm)).mean(axis=-1)
    ok = var > 1e-15
    return np.where(ok, np.clip(cov / np.where(ok, var, 1.0), 0.0, 1.0), 0.0)


def estimates(y: np.ndarray, f: np.ndarray, f_mean: np.ndarray, lam: np.ndarray) -> np.ndarray:
    return lam * f_mean + (y - lam[..., None] * f).mean(axis=-1)


def jackknife_variances(y: np.ndarray, f: np.ndarray, f_mean: np.ndarray, big_n: int) -> np.ndarray:
    """Delete-one jackknife variance of the estimator (lam re-fitted each time) per row, times 1 - n/N."""
    n = y.shape[-1]
    if n < 3 or n >= big_n:
        return np.zeros(y.shape[:-1])
    keep = ~np.eye(n, dtype=bool)
    ys, fs = np.where(keep, y[..., None, :], 0.0), np.where(keep, f[..., None, :], 0.0)
    my, mf = ys.sum(axis=-1) / (n - 1), fs.sum(axis=-1) / (n - 1)
    cov = (ys * fs).sum(axis=-1) / (n - 1) - my * mf
    var = (fs * fs).sum(axis=-1) / (n - 1) - mf * mf
    ok = var > 1e-12
    lam = np.where(ok, np.clip(cov / np.where(ok, var, 1.0), 0.0, 1.0), 0.0)
    theta = lam * np.asarray(f_mean)[..., None] + my - lam * mf
    return (1.0 - n / big_n) * (n - 1) / n * ((theta - theta.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)


def residual_sum_of_squares(y: np.ndarray, f: np.ndarray, lam: np.ndarray) -> np.ndarray:
    r = y - lam[..., None] * f
    return ((r - r.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)


def pseudo_count(n: float, big_n: int) -> float:
    return PSEUDO_COUNT / max(1.0 - n / big_n, 1e-12)


def sampling_variances(y: np.ndarray, f: np.ndarray, f_mean: np.ndarray, lam: np.ndarray, big_n: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(raw, honest) sampling variances per row: raw = (1 - n/N) s_r^2 / n with s_r^2 = SS / (n - 2); honest with
    the pseudo-count and the jackknife (see the module docstring). Both 0 when every answer is graded."""
    n = y.shape[-1]
    fpc = 1.0 - n / big_n
    if n >= big_n or n < 3:
        zero = np.zeros(y.shape[:-1])
        return zero, zero if n >= big_n else np.full(y.shape[:-1], np.nan)
    ss = residual_sum_of_squares(y, f, lam)
    k = pseudo_count(n, big_n)
    raw = fpc * ss / (n - 2) / n
    honest = fpc * (ss + k * STEP[metric] ** 2) / (n - 2 + k) / n
    return raw, np.maximum(honest, jackknife_variances(y, f, f_mean, big_n))


def score_intervals(estimate: np.ndarray, variance: np.ndarray, n: float, big_n: int, metric: str, quantile: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson-type interval on the scale mapped to [0, 1]: at the effective sample size p(1 - p) / variance inside
    the scale, at n / (1 - n/N) where the estimate sits at (or beyond) an end of it."""
    low_end, high_end = SCALES[metric]
    span = high_end - low_end
    p = np.clip((np.asarray(estimate, dtype=np.float64) - low_end) / span, 0.0, 1.0)
    v = np.asarray(variance, dtype=np.float64) / span**2
    at_end_size = n / max(1.0 - n / big_n, 1e-12)
    with np.errstate(invalid="ignore", divide="ignore"):
        inner = (p > 0.0) & (p < 1.0) & (v > 0.0)
        m = np.where(inner, p * (1.0 - p) / np.where(inner, v, 1.0), at_end_size)
        q2 = quantile * quantile
        centre = (p + q2 / (2.0 * m)) / (1.0 + q2 / m)
        half = quantile / (1.0 + q2 / m) * np.sqrt(p * (1.0 - p) / m + q2 / (4.0 * m * m))
    low, high = np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)
    low, high = np.where(p == 0.0, 0.0, low), np.where(p == 1.0, 1.0, high)  # Wilson's end exactly (no rounding)
    return low_end + span * low, low_end + span * high


def sample_intervals(
    y: np.ndarray, f: np.ndarray, f_mean: np.ndarray, big_n: int, metric: str, alpha: float, lam: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(estimate, low, high, lam) of the "these answers" interval per row (lam tuned per row unless given).

    Every answer graded: the estimate is the human mean and the interval has zero width."""
    y, f = np.atleast_2d(np.asarray(y, dtype=np.float64)), np.atleast_2d(np.asarray(f, dtype=np.float64))
    f_mean = np.broadcast_to(np.asarray(f_mean, dtype=np.float64), y.shape[:-1])
    lam = lambdas(y, f) if lam is None else np.broadcast_to(np.asarray(lam, dtype=np.float64), y.shape[:-1])
    est = estimates(y, f, f_mean, lam)
    n = y.shape[-1]
    if n >= big_n:
        return est, est.copy(), est.copy(), lam
    _, variance = sampling_variances(y, f, f_mean, lam, big_n, metric)
    low, high = score_intervals(est, variance, n, big_n, metric, t_quantile(alpha, n - 2))
    return est, low, high, lam
