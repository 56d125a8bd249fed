"""Human-anchored scores: prediction-powered inference (PPI) for a model's mean grade.

People grade a random sample of a model's answers (the labelled set: human value Y, judge value Yhat on the same
answers); the judge grades the rest too (the unlabelled set: judge values Yhat_u). The PPI estimate is the judge's
mean on the unlabelled answers, corrected by how far the judge is from the humans on the labelled ones:

    theta(lam) = lam * mean(Yhat_u) + mean(Y - lam * Yhat)

With lam = 0 it is the plain human mean; with lam = 1 it is PPI (Angelopoulos, Bates, Fannjiang, Jordan, Zrnic,
"Prediction-powered inference", Science 2023). PPI++ (Angelopoulos, Duchi, Zrnic, arXiv 2311.01453) picks the lam
that minimises the estimate's variance, clipped to [0, 1], so a poor judge can never make the interval worse than
the human-only one by much. The interval is the CLT (normal) interval of theta(lam).

This is exactly what ``ppi_py.ppi_mean_pointestimate`` / ``ppi_py.ppi_mean_ci`` compute for a one-dimensional
mean with their defaults (``lam=None``, ``lam_optim_mode="overall"``, no weights); the tests check it against
``ppi_py`` itself. Written out here with numpy so the report does not pull numba and statsmodels in.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class MeanEstimate:
    """A point estimate with its two-sided confidence interval (NaN ends when there is none)."""

    estimate: float
    ci_low: float
    ci_high: float
    lam: float = float("nan")


def _z(alpha: float) -> float:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return NormalDist().inv_cdf(1.0 - alpha / 2.0)


def power_tuning_lambda(y: np.ndarray, yhat: np.ndarray, yhat_unlabeled: np.ndarray) -> float:
    """PPI++'s variance-minimising lam for the mean, clipped to [0, 1].

    lam = Cov(Y, Yhat) / ((1 + n/N) Var(Yhat over both sets)), with the covariance over the n labelled answers
    (divided by n) and the variance over all n + N judge values (divided by n + N - 1), as ``ppi_py`` computes it.
    When the judge gives one grade to everything (variance 0) it carries no information and lam is 0, where
    ``ppi_py`` returns NaN.
    """
    n, big_n = y.size, yhat_unlabeled.size
    cov = float(np.mean((y - y.mean()) * (yhat - yhat.mean())))
    var = float(np.var(np.concatenate([yhat, yhat_unlabeled]), ddof=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        lam = np.float64(cov) / np.float64((1.0 + n / big_n) * var)
    return float(np.clip(lam, 0.0, 1.0)) if np.isfinite(lam) else 0.0


def ppi_mean(y: np.ndarray, yhat: np.ndarray, yhat_unlabeled: np.ndarray, *, alpha: float = 0.05, lam: float | None = None) -> MeanEstimate:
    """The PPI++ estimate of the mean of Y and its (1 - alpha) CLT interval.

    ``lam=None`` tunes lam from the data (PPI++); a number fixes it (0: human only, 1: plain PPI). Needs at least
    one labelled and one unlabelled answer.
    """
    y, yhat, yu = (np.asarray(a, dtype=np.float64).ravel() for a in (y, yhat, yhat_unlabeled))
    if y.size != yhat.size:
        raise ValueError(f"Y has {y.size} values but Yhat has {yhat.size}")
    if y.size == 0 or yu.size == 0:
        raise ValueError("PPI needs at least one labelled and one unlabelled value")
    if lam is None:
        lam = power_tuning_lambda(y, yhat, yu)
    estimate = lam * yu.mean() + (y - lam * yhat).mean()
    # population standard deviations (ddof=0), as ppi_py
    se = np.sqrt((lam * yu).std() ** 2 / yu.size + (y - lam * yhat).std() ** 2 / y.size)
    z = _z(alpha)
    return MeanEstimate(float(estimate), float(estimate - z * se), float(estimate + z * se), float(lam))


def _ppi_py_lambda(y2: np.ndarray, yhat2: np.ndarray, yu2: np.ndarray, start: np.ndarray) -> float:
    """ppi_py's ``_calc_lam_glm`` for the mean (one coordinate, clipped), from its starting estimate."""
    n, big_n = y2.shape[0], yu2.shape[0]
    w, wu = np.ones((n, 1)), np.ones((big_n, 1))
    grads, grads_hat, grads_hat_u = w * (y2 - start), w * (yhat2 - start), wu * (yu2 - start)
    grads_cent, hat_cent = grads - grads.mean(axis=0), grads_hat - grads_hat.mean(axis=0)
    cov = (1 / n) * (grads_cent.T @ hat_cent + hat_cent.T @ grads_cent)
    var = np.cov(np.concatenate([grads_hat, grads_hat_u], axis=0).T).reshape(1, 1)
    eye = np.eye(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.clip((np.trace(eye @ cov @ eye) / (2 * (1 + (n / big_n)) * np.trace(eye @ var @ eye))).item(), 0, 1))


def ppi_py_mean(y: np.ndarray, yhat: np.ndarray, yhat_unlabeled: np.ndarray, *, alpha: float = 0.05) -> MeanEstimate:
    """What ``ppi_py.ppi_mean_pointestimate`` and ``ppi_mean_ci`` (lam=None) return, NaN included, computed in their
    array shapes and operation order: where the judge gives one value to every answer their power-tuning lam is
    0/0 and the result NaN -- or, when rounding leaves a variance of 1e-31, some lam -- which :func:`ppi_mean`
    replaces by lam = 0. The two ppi_py functions start from last-bit different estimates, so they can disagree
    (a NaN estimate with a finite interval); each is reproduced. For the ``ppi_py_*`` columns, which must be
    ppi_py's own result; ``lam`` is the interval's."""
    y2, yhat2, yu2 = (np.asarray(a, dtype=np.float64).reshape(-1, 1) for a in (y, yhat, yhat_unlabeled))
    n, big_n = y2.shape[0], yu2.shape[0]
    w, wu = np.ones((n, 1)), np.ones((big_n, 1))

    def given(weights: np.ndarray) -> np.ndarray:  # ppi_py's construct_weight_vector on weights passed in
        return weights / weights.sum() * weights.shape[0]

    def estimate_at(lam: float, w_in: np.ndarray, wu_in: np.ndarray) -> np.ndarray:  # ppi_mean_pointestimate(lam=...)
        w_at, wu_at = given(w_in), given(wu_in)
        return (wu_at * lam * yu2).mean(axis=0) + (w_at * (y2 - lam * yhat2)).mean(axis=0).squeeze()

    with np.errstate(invalid="ignore"):
        lam_point = _ppi_py_lambda(y2, yhat2, yu2, (wu * yu2).mean(0) + (w * (y2 - yhat2)).mean(0))
        estimate = float(estimate_at(lam_point, w, wu)[0])
        lam_ci = _ppi_py_lambda(y2, yhat2, yu2, estimate_at(1, w, wu))
        w1, wu1 = given(w), given(wu)  # the inner ppi_mean_ci call gets the weights passed in
        centre = float(estimate_at(lam_ci, w1, wu1)[0])
        se = float(np.sqrt(((wu1 * (lam_ci * yu2)).std(0) / np.sqrt(big_n)) ** 2 + ((w1 * (y2 - lam_ci * yhat2)).std(0) / np.sqrt(n)) ** 2)[0])
    half = _z(alpha) * se
    return MeanEstimate(estimate, centre - half, centre + half, lam_ci)


def classical_mean(y: np.ndarray, *, alpha: float = 0.05) -> MeanEstimate:
    """The sample mean and its CLT interval (population sd / sqrt(n), as ``ppi_py.classical_mean_ci``).

    Equal to :func:`ppi_mean` with ``lam=0``. With fewer than two values there is no interval.
    """
    y = np.asarray(y, dtype=np.float64).ravel()
    if y.size == 0:
        return MeanEstimate(float("nan"), float("nan"), float("nan"), 0.0)
    mean = float(y.mean())
    if y.size < 2:
        return MeanEstimate(mean, float("nan"), float("nan"), 0.0)
    half = _z(alpha) * float(y.std()) / float(np.sqrt(y.size))
    return MeanEstimate(mean, mean - half, mean + half, 0.0)


PPI_METRICS = ("mean_score", "acceptable")
PPI_ALPHA = 0.05
HUMAN_VALUE_RULES = {
    "median": "Y = per answer, the lower-median human grade (its score, or 1 when A or B)",
    "all": "Y = per answer, the mean over its human ratings (of the score, or of 1 for A or B)",
    "ds": "Y = per answer, the Dawid-Skene posterior mean score (or posterior P(A or B))",
}


def human_values(grades: pd.DataFrame, rule: str) -> pd.DataFrame:
    """One row per human-graded answer: model_id, question_id, mean_score, acceptable.

    ``median``: the answer's lower-median grade (score, and 1/0 for A or B); ``all``: the mean over its ratings.
    """
    from owleval.report.combine import lower_median_scores
    from owleval.records.grades import ACCEPTABLE_MIN_SCORE

    if rule == "ds":
        from owleval.report.combine import ds_posterior

        post = ds_posterior(grades)
        return post.assign(mean_score=post["score"].astype(float), acceptable=post["acceptable"].astype(float))[
            ["model_id", "question_id", "mean_score", "acceptable"]
        ]
    if rule == "median":
        per = lower_median_scores(grades)[["model_id", "question_id", "score"]]
        return per.assign(mean_score=per["score"].astype(float), acceptable=(per["score"] >= ACCEPTABLE_MIN_SCORE).astype(float)).drop(columns="score")
    rated = grades.assign(acceptable=(grades["score"] >= ACCEPTABLE_MIN_SCORE).astype(float), mean_score=grades["score"].astype(float))
    return rated.groupby(["model_id", "question_id"], as_index=False)[["mean_score", "acceptable"]].mean()


def judge_values(judge: pd.DataFrame) -> pd.DataFrame:
    """The judge's value per answer: model_id, question_id, mean_score, acceptable.

    Soft scores win where the judge's grades.csv has them: ``judge_score`` (expected score under its grade
    distribution) for mean_score, ``p_acceptable`` for acceptable; the letter stands where they are empty.
    """
    from owleval.records.grades import ACCEPTABLE_MIN_SCORE

    out = judge[["model_id", "question_id"]].copy()
    out["mean_score"] = judge["score"].astype(float).to_numpy()
    out["acceptable"] = (judge["score"] >= ACCEPTABLE_MIN_SCORE).astype(float).to_numpy()
    for column, metric in (("judge_score", "mean_score"), ("p_acceptable", "acceptable")):
        if column in judge.columns:
            soft = judge[column].astype(float).to_numpy()
            out[metric] = np.where(np.isnan(soft), out[metric].to_numpy(), soft)
    return out


