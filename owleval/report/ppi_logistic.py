"""Prediction-powered logistic regression (PPI++), for a human-anchored Bradley-Terry ranking.

Labelled rows carry a person's outcome Y and the judge's prediction Yhat on the same row; unlabelled rows carry the
judge's prediction only. The estimate minimises the rectified logistic loss

    L(theta) = lam * Lu(theta; Yhat_u) - lam * Ll(theta; Yhat) + Ll(theta; Y)

(Angelopoulos, Duchi, Zrnic, "PPI++", arXiv 2311.01453), where lam is tuned to minimise the total variance over
the coefficients and clipped to [0, 1]; the interval is the sandwich CLT interval. This follows
``ppi_py.ppi_logistic_pointestimate`` and ``ppi_py.ppi_logistic_ci`` step by step (including their weight
normalisation, their Hessian over both sets, and the CI's second lam update), so the tests can check it against
``ppi_py`` itself; it is written with numpy (Newton steps instead of L-BFGS) so the report does not need numba.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


@dataclass(frozen=True)
class LogisticEstimate:
    """PPI++ logistic coefficients, their (1 - alpha) intervals and the covariance behind them."""

    coef: np.ndarray  # the point estimate, as ppi_logistic_pointestimate
    ci_low: np.ndarray  # as ppi_logistic_ci
    ci_high: np.ndarray
    cov: np.ndarray  # covariance of the estimate (Sigma / n) at the interval's fit
    lam: float  # the interval's lam
    converged: bool  # False: no finite optimum (e.g. a model that never lost), coefficients unreliable


#: a coefficient beyond FINITE log-odds means no finite optimum (separable rows); beyond DIVERGED the fit stops
FINITE = 25.0
DIVERGED = 60.0


def _expit(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))


def _norm_weights(w: np.ndarray | None, n: int) -> np.ndarray:
    return np.ones(n) if w is None else np.asarray(w, dtype=np.float64) / np.sum(w) * n


def _loss(theta: np.ndarray, data: tuple[np.ndarray, ...], lam: float) -> float:
    x, y, yhat, xu, yhu, w, wu = data
    n, big_n = y.size, yhu.size
    eta, eta_u = x @ theta, xu @ theta
    soft, soft_u = np.logaddexp(0.0, eta), np.logaddexp(0.0, eta_u)
    return float(lam / big_n * np.sum(wu * (soft_u - yhu * eta_u)) - lam / n * np.sum(w * (soft - yhat * eta)) + np.sum(w * (soft - y * eta)) / n)


def _fit(data: tuple[np.ndarray, ...], lam: float, start: np.ndarray, max_iter: int = 200) -> tuple[np.ndarray, bool]:
    """Minimise the rectified loss by damped Newton steps (it is convex for lam in [0, 1])."""
    x, y, yhat, xu, yhu, w, wu = data
    n, big_n = y.size, yhu.size
    theta = start.copy()
    loss = _loss(theta, data, lam)
    for _ in range(max_iter):
        mu, mu_u = _expit(x @ theta), _expit(xu @ theta)
        grad = lam / big_n * xu.T @ (wu * (mu_u - yhu)) - lam / n * x.T @ (w * (mu - yhat)) + x.T @ (w * (mu - y)) / n
        hess = lam / big_n * (xu.T * (wu * mu_u * (1 - mu_u))) @ xu + (1.0 - lam) / n * (x.T * (w * mu * (1 - mu))) @ x
        try:
            step = np.linalg.solve(hess + 1e-12 * np.eye(theta.size), grad)
        except np.linalg.LinAlgError:
            return theta, False
        t = 1.0
        while t > 1e-8:
            candidate = theta - t * step
            new_loss = _loss(candidate, data, lam)
            if new_loss <= loss + 1e-15:
                break
            t /= 2.0
        theta, loss = candidate, new_loss
        if np.max(np.abs(theta), initial=0.0) > DIVERGED:
            return theta, False
        if np.max(np.abs(t * step)) < 1e-10:
            return theta, bool(np.all(np.abs(theta) < FINITE))
    return theta, False


def _stats(theta: np.ndarray, data: tuple[np.ndarray, ...], use_unlabeled: bool) -> tuple[np.ndarray, ...]:
    """Per-row gradients on Y, on Yhat, on the unlabelled Yhat, and the inverse Hessian (as ppi_py's)."""
    x, y, yhat, xu, yhu, w, wu = data
    n, big_n = y.size, yhu.size
    mu, mu_u = _expit(x @ theta), _expit(xu @ theta)
    if use_unlabeled:
        hess = ((xu.T * (wu * mu_u * (1 - mu_u))) @ xu + (x.T * (w * mu * (1 - mu))) @ x) / (big_n + n)
        grads_u = (wu * (mu_u - yhu))[:, None] * xu
    else:
        hess = (x.T * (w * mu * (1 - mu))) @ x / n
        grads_u = np.zeros_like(xu)
    grads = (w * (mu - y))[:, None] * x
    grads_hat = (w * (mu - yhat))[:, None] * x
    return grads, grads_hat, grads_u, np.linalg.inv(hess)


def _cov(a: np.ndarray) -> np.ndarray:
    d = a.shape[1]
    return np.cov(a.T).reshape(d, d)


def _tuned_lambda(grads: np.ndarray, grads_hat: np.ndarray, grads_u: np.ndarray, inv_hess: np.ndarray) -> float:
    """PPI++'s lam minimising the trace of the covariance, clipped to [0, 1]."""
    n, big_n = grads.shape[0], grads_u.shape[0]
    gc, hc = grads - grads.mean(axis=0), grads_hat - grads_hat.mean(axis=0)
    cross = (gc.T @ hc + hc.T @ gc) / n
    var_hat = _cov(np.concatenate([grads_hat, grads_u], axis=0))
    num = np.trace(inv_hess @ cross @ inv_hess)
    den = 2.0 * (1.0 + n / big_n) * np.trace(inv_hess @ var_hat @ inv_hess)
    with np.errstate(invalid="ignore", divide="ignore"):
        lam = num / den
    return float(np.clip(lam, 0.0, 1.0)) if np.isfinite(lam) else 0.0


def ppi_logistic(
    x: np.ndarray, y: np.ndarray, yhat: np.ndarray, x_unlabeled: np.ndarray, yhat_unlabeled: np.ndarray, *,
    w: np.ndarray | None = None, w_unlabeled: np.ndarray | None = None, alpha: float = 0.05,
) -> LogisticEstimate:  # fmt: skip
    """PPI++ logistic regression (no intercept: add a column of ones to ``x`` for one) with power tuning."""
    x, xu = np.asarray(x, dtype=np.float64), np.asarray(x_unlabeled, dtype=np.float64)
    y, yhat, yhu = (np.asarray(a, dtype=np.float64).ravel() for a in (y, yhat, yhat_unlabeled))
    n, big_n = y.size, yhu.size
    if n < 2 or big_n < 2:
        raise ValueError("PPI logistic regression needs at least two labelled and two unlabelled rows")
    data = (x, y, yhat, xu, yhu, _norm_weights(w, n), _norm_weights(w_unlabeled, big_n))
    start = np.zeros(x.shape[1])
    theta1, ok1 = _fit(data, 1.0, start)
    lam1 = _tuned_lambda(*_stats(theta1, data, True))
    coef, ok2 = _fit(data, lam1, theta1)
    lam2 = _tuned_lambda(*_stats(coef, data, True))
    theta3, ok3 = _fit(data, lam2, coef)
    grads, grads_hat, grads_u, inv_hess = _stats(theta3, data, lam2 != 0)
    middle = n / big_n * _cov(lam2 * grads_u) + _cov(grads - lam2 * grads_hat)
    cov = inv_hess @ middle @ inv_hess / n
    half = NormalDist().inv_cdf(1.0 - alpha / 2.0) * np.sqrt(np.diag(cov))
    return LogisticEstimate(coef, theta3 - half, theta3 + half, cov, lam2, ok1 and ok2 and ok3)
