"""Human-anchored scores with two named estimands, from a judge that grades every answer and people who grade a
random sample of them.

Per model, the population is its N answers (every answer the judge graded, failed to grade, or people graded); the
judge value f_i is its grade (or, where its reply could not be parsed or failed, a fixed stand-in: the scale's
midpoint, so those answers stay in the human sample and the estimator stays unbiased); Y_i is the human value on
the n answers people graded. The estimate is the difference (regression) estimator

    theta = lam * mean over all N of f + mean over the n graded of (Y - lam * f),

with lam = Cov(Y, f) / Var(f) on the graded answers, clipped to [0, 1]: the lam that minimises this estimator's
variance (not PPI++'s lam, which carries a (1 + n/N) factor for an unlabelled set disjoint from the labelled one).

*These answers* (``sample_ci_*``): the uncertainty that comes only from grading a simple random sample of the N
answers: variance (1 - n/N) s_r^2 / n with s_r^2 the residuals' (Y - lam * f) sum of squares plus 2 / (1 - n/N)
pseudo-observations one grade step off, over n - 2 (lam is fitted on the same answers) plus those, never below the
delete-one jackknife variance, as a score-type interval with the t_{n-2} quantile (:mod:`finite`, which says why:
a sample that missed the judge's rare disagreements would otherwise claim certainty). Zero when every answer is
graded.

*Questions like these* (``ci_*``, the headline): also the uncertainty of having these 82 questions rather than
others: the image bootstrap of the whole estimator (questions on one image are resampled together, lam re-tuned in
every replicate, the summary table's draws; its spread moved out by the few-clusters factor t_{G-1}/z sqrt(G/(G-1))
for G images, as the summary table does), plus what the t quantile, the pseudo-count and the jackknife add to the
sampling part at small n, as a score-type interval at the effective sample size p(1 - p) / variance on the scale
mapped to [0, 1] (Wilson's, for a share). With every answer graded it is the summary table's interval.

*The judge only where it helps* (:func:`row_intervals`): where lam is 0, or the judge-based "these answers" interval
would be wider than the human-only one (lam = 0) or its headline wider than the human-only interval of the summary
table, the row is the human-only estimate and intervals: the headline is never wider than ``human_only`` and equal
to it where lam = 0.

*Active sampling* (``study create --design active``: Poisson sampling, answer i drawn independently with stored
probability pi_i): the inverse-probability-weighted PPI estimator of active statistical inference (Zrnic & Candes,
ICML 2024), in its ratio (Hajek) form: every mean over the graded answers above (lam's covariance and variance, the
mean residual) becomes a mean weighted by 1 / pi_i, so

    theta = lam * mean over all N of f + sum_s (Y - lam f) / pi / sum_s 1 / pi,

which equals the uniform estimator when all pi are equal. Its sampling variance is the Poisson-design variance of
this generalised regression estimator, sum over the graded of (1 - pi_i) / pi_i^2 * e_i^2 / N^2 with e_i the
residuals Y - lam f minus their weighted mean, times n / (n - 2) (lam fitted on the same answers) -- with all pi equal
to n/N exactly the uniform (1 - n/N) s_r^2 / n; the pseudo-count adds k step^2 at the mean factor and the jackknife
deletes one graded answer at a time with the weights kept, each squared deviation times that answer's 1 - pi_i. The image bootstrap
multiplies each answer's draw count by its weight 1 / pi_i.

Below ``MIN_N_INTERVAL`` graded answers neither interval holds its level (measured by bench/bench_ppi_coverage.py):
the row keeps its estimate, gets a note and no interval.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from owleval.report import finite
from owleval.report.ppi import PPI_ALPHA, PPI_METRICS, ppi_py_mean
from owleval.stats import (
    MIN_N_MEAN_INTERVAL,
    boot_variance,
    bounded_score_interval,
    bootstrap_counts,
    clustered_wilson,
    few_clusters_factor,
    wilson_interval,
)

#: fewest human-graded answers for which a model gets an interval (bench/bench_ppi_coverage.py measures why)
MIN_N_INTERVAL = 10
#: metric -> (lowest, highest) value of its scale; intervals are clipped to it
SCALES = finite.SCALES
#: the judge value of an answer the judge could not grade: the scale's midpoint
STAND_IN = {metric: (low + high) / 2.0 for metric, (low, high) in SCALES.items()}
ALL_GRADED = "all graded"
PPI_COLUMNS = (
    "model", "metric", "estimate", "ci_low", "ci_high", "sample_ci_low", "sample_ci_high", "n_human", "n_judge", "n_answers",
    "n_stand_in", "lambda", "human_only_estimate", "human_only_ci_low", "human_only_ci_high", "judge_only_estimate",
    "ppi_py_estimate", "ppi_py_ci_low", "ppi_py_ci_high", "ppi_py_lambda", "ppi_py_rows", "note",
)  # fmt: skip
ESTIMANDS = {
    "headline": "questions like these: the mean grade this study's people would give the model's answers to questions like "
    "OwlEval's; image bootstrap of the whole estimator (lam re-tuned per replicate) plus the uncertainty of grading only a sample",
    "sample": "these answers: the mean grade people would give these N answers of the model; only the uncertainty of grading a "
    "simple random sample of them (finite-population difference estimator, factor 1 - n/N)",
    "ppi_py": "ppi_py's i.i.d. PPI++ (ppi_mean_ci, alpha 0.05, power tuning) on the human-graded answers the judge graded vs "
    "the judge-only ones, kept so the reference implementation stays checkable",
}
LAMBDA_RULE = "λ = Cov(Y, f) / Var(f) on the human-graded answers, clipped to [0, 1]: the variance-minimising λ of the difference estimator"
STAND_IN_RULE = "an answer the judge could not grade keeps the midpoint of the scale as its judge value (1.5 for mean_score, 0.5 for acceptable)"


@dataclass(frozen=True)
class Population:
    """One model's answers: judge value f (stand-ins included), human value y (NaN where ungraded), image code."""

    f: np.ndarray
    y: np.ndarray
    image: np.ndarray
    pi: np.ndarray | None = None  # inclusion probabilities of an active (Poisson) design; None: a simple random sample

    @property
    def graded(self) -> np.ndarray:
        return ~np.isnan(self.y)

    @property
    def weights(self) -> np.ndarray:
        """1 / pi over the graded answers (ones for a simple random sample)."""
        graded = self.graded
        return np.ones(int(graded.sum())) if self.pi is None else 1.0 / self.pi[graded]


def tuned_lambda(y: np.ndarray, f: np.ndarray, w: np.ndarray | None = None) -> float:
    """Cov(Y, f) / Var(f) over the graded answers (weighted by ``w`` = 1 / pi under an active design), clipped to
    [0, 1]; 0 when f does not vary."""
    if y.size < 2:
        return 0.0
    if w is None:
        return float(finite.lambdas(y, f))
    fm, ym = np.average(f, weights=w), np.average(y, weights=w)
    var = float(np.average((f - fm) ** 2, weights=w))
    if var <= 1e-15:
        return 0.0
    return float(np.clip(np.average((y - ym) * (f - fm), weights=w) / var, 0.0, 1.0))


def pop_lambda(pop: Population) -> float:
    graded = pop.graded
    return tuned_lambda(pop.y[graded], pop.f[graded], None if pop.pi is None else pop.weights)


def difference_estimate(pop: Population, lam: float) -> float:
    graded = pop.graded
    resid = pop.y[graded] - lam * pop.f[graded]
    return float(lam * pop.f.mean() + (np.mean(resid) if pop.pi is None else np.average(resid, weights=pop.weights)))


def sampling_variance(pop: Population, lam: float, metric: str, *, floor: bool = True) -> float:
    """The "these answers" sampling variance (:func:`finite.sampling_variances`; the Poisson-design one under an
    active design); ``floor=False``: the raw residual formula, without the pseudo-count and the jackknife."""
    graded = pop.graded
    if pop.pi is not None:
        return _poisson_variance(pop, pop.y[graded] - lam * pop.f[graded], metric, floor=floor)
    y, f = pop.y[graded][None, :], pop.f[graded][None, :]
    raw, honest = finite.sampling_variances(y, f, np.array([pop.f.mean()]), np.array([lam]), pop.f.size, metric)
    return float((honest if floor else raw)[0])


def _poisson_variance(pop: Population, resid: np.ndarray, metric: str, *, floor: bool) -> float:
    """The active (Poisson) design's variance of the weighted estimator (see the module docstring), with the
    uniform design's pseudo-count (at the mean factor) and jackknife."""
    pi, big_n = pop.pi[pop.graded], pop.f.size
    n = resid.size
    if n < 3:
        return 0.0
    w = 1.0 / pi
    e = resid - np.average(resid, weights=w)
    factor = (1.0 - pi) / pi**2 / big_n**2
    if not floor:
        return float(np.sum(factor * e**2)) * n / (n - 2)
    k = finite.pseudo_count(n, big_n)
    honest = (float(np.sum(factor * e**2)) + float(np.mean(factor)) * k * finite.STEP[metric] ** 2) * n / (n - 2 + k)
    return max(honest, jackknife_variance(pop))


def _weighted_jackknife(pop: Population) -> float:
    graded = np.flatnonzero(pop.graded)
    n = graded.size
    y, f, w = pop.y[graded], pop.f[graded], pop.weights
    mean_f = pop.f.mean()
    theta = np.empty(n)
    for j in range(n):
        keep = np.arange(n) != j
        lam = tuned_lambda(y[keep], f[keep], w[keep])
        theta[j] = lam * mean_f + np.average(y[keep] - lam * f[keep], weights=w[keep])
    # each deletion weighted by its answer's own 1 - pi (an answer sure to be drawn adds no sampling variance)
    return float((n - 1) / n * np.sum((1.0 - pop.pi[graded]) * (theta - theta.mean()) ** 2))


def jackknife_variance(pop: Population) -> float:
    """Delete-one jackknife variance of the estimator over the graded answers, lam re-fitted each time, times 1 - n/N.

    It counts what fitting lam on the same answers adds, which the residual formula leaves out; the larger of the
    two is used (measured in bench/bench_ppi_coverage.py)."""
    graded = np.flatnonzero(pop.graded)
    n, big_n = graded.size, pop.f.size
    if n < 3 or n == big_n:
        return 0.0
    if pop.pi is not None:
        return _weighted_jackknife(pop)
    return float(finite.jackknife_variances(pop.y[graded][None, :], pop.f[graded][None, :], np.array([pop.f.mean()]), big_n)[0])


def _t(alpha: float, dof: int) -> float:
    return finite.t_quantile(alpha, dof)


def sample_interval(pop: Population, lam: float, metric: str, alpha: float = PPI_ALPHA) -> tuple[float, float, float]:
    """(estimate, low, high) of the "these answers" interval (:func:`finite.sample_intervals`; under an active
    design the same score-type interval at the Poisson-design variance)."""
    graded = pop.graded
    n = int(graded.sum())
    if pop.pi is None:
        est, low, high, _ = finite.sample_intervals(pop.y[graded], pop.f[graded], pop.f.mean(), pop.f.size, metric, alpha, np.array([lam]))
        return float(est[0]), float(low[0]), float(high[0])
    est = difference_estimate(pop, lam)
    variance = sampling_variance(pop, lam, metric)
    low, high = finite.score_intervals(np.array(est), np.array(variance), n, pop.f.size, metric, _t(alpha, n - 2))
    return est, float(low), float(high)


def bootstrap_estimates(pop: Population, counts: np.ndarray) -> np.ndarray:
    """The whole estimator (lam re-tuned) on every image-bootstrap replicate: (n_boot,), NaN where no graded answer is drawn."""
    w = counts[:, pop.image]  # (B, N): how often each answer is drawn
    graded = pop.graded
    wg, f, fg, yg = w[:, graded] * pop.weights[None, :], pop.f, pop.f[graded], pop.y[graded]
    with np.errstate(invalid="ignore", divide="ignore"):
        tot_u, tot_s = w.sum(axis=1), wg.sum(axis=1)
        mean_fu = (w @ f) / tot_u
        my, mf = (wg @ yg) / tot_s, (wg @ fg) / tot_s
        cov = (wg @ (yg * fg)) / tot_s - my * mf
        var = (wg @ (fg * fg)) / tot_s - mf * mf
        lam = np.where(var > 1e-12, np.clip(cov / np.where(var > 1e-12, var, 1.0), 0.0, 1.0), 0.0)
        return np.where(tot_s > 0, lam * mean_fu + my - lam * mf, np.nan)


def headline_interval(pop: Population, lam: float, replicates: np.ndarray, metric: str, alpha: float = PPI_ALPHA) -> tuple[float, float]:
    """The "questions like these" interval: bootstrap spread widened by the small-n correction of the sampling part."""
    est = difference_estimate(pop, lam)
    n, big_n = int(pop.graded.sum()), pop.f.size
    z = NormalDist().inv_cdf(1.0 - alpha / 2.0)
    if n < big_n:
        honest = _t(alpha, max(n - 2, 1)) ** 2 * sampling_variance(pop, lam, metric)
        raw = z**2 * sampling_variance(pop, lam, metric, floor=False)
        extra = max(honest - raw, 0.0) / z**2  # a variance
    else:
        extra = 0.0
    low_end, high_end = SCALES[metric]
    if replicates.size == 0:
        return float("nan"), float("nan")
    factor = float(few_clusters_factor(np.unique(pop.image).size))
    if metric == "acceptable":
        p = float(np.clip(est, 0.0, 1.0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            total = float(np.nanvar(replicates, ddof=1)) * factor**2 + extra
        if 0.0 < p < 1.0 and total > 0.0:
            n_eff = min(p * (1.0 - p) / total, float(big_n))  # never more precise than all N graded, as the summary table
            lo, hi = wilson_interval(np.array([p * n_eff]), np.array([n_eff]))
        else:  # a share of 0 or 1 in the sample: Wilson at the number of graded answers
            lo, hi = clustered_wilson(np.array([p]), np.array([float(n)]), replicates[:, None], var_factor=factor**2)
        return float(lo[0]), float(hi[0])
    total = float(boot_variance(replicates[:, None])[0]) * factor**2 + extra
    lo, hi = bounded_score_interval(np.array(est), np.array(total), low_end, high_end, 1.0 - alpha)
    if np.isnan(lo):  # the estimate at an end of the scale: a normal interval, clipped
        half = z * np.sqrt(total)
        return float(np.clip(est - half, low_end, high_end)), float(np.clip(est + half, low_end, high_end))
    return float(lo), float(hi)


def human_only_interval(pop: Population, replicates: np.ndarray, metric: str) -> tuple[float, float]:
    """The human mean's interval as the summary table gives it: a score-type interval at the image bootstrap's variance
    (means, :func:`stats.bounded_score_interval`), clustered Wilson (shares)."""
    n = int(pop.graded.sum())
    if n == 0 or replicates.size == 0:
        return float("nan"), float("nan")
    factor = few_clusters_factor(np.unique(pop.image[pop.graded]).size)
    mean = float(np.mean(pop.y[pop.graded]))
    if metric == "acceptable":
        lo, hi = clustered_wilson(np.array([mean]), np.array([float(n)]), replicates[:, None], var_factor=factor**2)
        return float(lo[0]), float(hi[0])
    lo, hi = bounded_score_interval(np.array(mean), boot_variance(replicates[:, None]) * factor**2, *SCALES[metric])
    return float(lo[0]), float(hi[0])


def row_intervals(
    pop: Population, metric: str, counts: np.ndarray, human: tuple[float, float], alpha: float = PPI_ALPHA
) -> tuple[float, float, tuple[float, float], tuple[float, float]]:
    """(lam, estimate, headline interval, "these answers" interval) of one model and metric.

    The judge is used (lam > 0) only where it narrows both intervals: where lam is 0, or the judge-based "these
    answers" interval is wider than the human-only one (lam = 0) or its headline wider than ``human`` (the human-only
    interval of the summary table), the row is the human-only estimate with the human-only intervals -- so the
    headline is never wider than ``human`` and equals it where lam = 0."""
    lam = pop_lambda(pop)
    n, big_n = int(pop.graded.sum()), pop.f.size
    human_ok = bool(np.isfinite(human[0]) and np.isfinite(human[1]))

    def sample(at: float) -> tuple[float, float]:
        if n == big_n:
            value = difference_estimate(pop, at)
            return value, value
        return sample_interval(pop, at, metric, alpha)[1:]

    if lam > 0.0:
        s_ppi = sample(lam)
        head = headline_interval(pop, lam, bootstrap_estimates(pop, counts), metric, alpha)
        s_zero = sample(0.0)
        wider = s_ppi[1] - s_ppi[0] > s_zero[1] - s_zero[0] + 1e-12 or (human_ok and head[1] - head[0] > human[1] - human[0] + 1e-12)
        if not wider:
            return lam, difference_estimate(pop, lam), head, s_ppi
    else:
        s_zero = sample(0.0)
    head = human if human_ok else headline_interval(pop, 0.0, bootstrap_estimates(pop, counts), metric, alpha)
    return 0.0, difference_estimate(pop, 0.0), head, s_zero


def image_codes(info: pd.DataFrame, first: Sequence[int], every: Sequence[int]) -> tuple[dict[int, int], int]:
    """question id -> image code: the images of ``first`` (the summary table's units, in its order) get the codes the
    summary table's bootstrap uses; images only in ``every`` come after them."""
    codes, names = pd.factorize(info.loc[list(first), "image"].to_numpy())
    known = {name: k for k, name in enumerate(names)}
    for image in info.loc[list(every), "image"]:
        known.setdefault(image, len(known))
    return {int(q): known[info.loc[q, "image"]] for q in every}, len(names)


def ppi_table(
    human: pd.DataFrame,
    judge: pd.DataFrame,
    models: Sequence[str],
    info: pd.DataFrame,
    *,
    summary_questions: Sequence[int],
    n_boot: int,
    seed: int,
    missing: pd.DataFrame | None = None,
    alpha: float = PPI_ALPHA,
    probabilities: Mapping[str, Mapping[int, float]] | None = None,
    answers: Mapping[str, Collection[int]] | None = None,
) -> pd.DataFrame:
    """One row per model and metric: the headline estimate and interval, the "these answers" one, the human-only and
    judge-only ones, and ppi_py's i.i.d. PPI++.

    ``human``/``judge``: per-answer values (:func:`ppi.human_values`, :func:`ppi.judge_values`); ``missing``: answers
    the judge could not grade (model_id, question_id); ``summary_questions``: the question ids of the summary table's
    units in its order, so the bootstrap draws are the summary table's (seed ``[seed, 0]``); ``probabilities``:
    model -> question id -> inclusion probability of an active design (checked by :func:`owleval.report.active.study_probabilities`),
    which switches those models to the weighted estimator; ``answers``: model -> question ids of every answer it
    gave (from --answers): N counts them all, those without a judge grade with the stand-in value; without it N
    is what the judge graded, people graded or the judge's meta.json lists, and each row says so.
    """
    keys = ["model_id", "question_id"]
    extra = missing[keys] if missing is not None and len(missing) else judge[keys].iloc[:0]
    n_from_answers = answers is not None
    if answers is not None:
        given = pd.DataFrame([(m, int(q)) for m in models for q in answers.get(m, ())], columns=keys)
        extra = pd.concat([extra, given], ignore_index=True).drop_duplicates()
    every_q = sorted({*map(int, human["question_id"]), *map(int, judge["question_id"]), *map(int, extra["question_id"])})
    code_of, n_summary_images = image_codes(info, summary_questions, every_q)
    n_images = len(set(code_of.values()))
    # the summary table's draws for the human-only column (its images only); the headline draws every image with an
    # answer, which is the same draw when people graded answers on every such image
    counts = bootstrap_counts(n_images, n_boot, np.random.default_rng([seed, 0]))
    summary_counts = bootstrap_counts(n_summary_images, n_boot, np.random.default_rng([seed, 0]))
    rows = []
    for model in models:
        mine_h = human[human["model_id"] == model].set_index("question_id")
        mine_j = judge[judge["model_id"] == model].set_index("question_id")
        answers = sorted({*mine_h.index, *mine_j.index, *extra.loc[extra["model_id"] == model, "question_id"]})
        in_judge = np.array([q in mine_j.index for q in answers], dtype=bool)
        for metric in PPI_METRICS:
            f = np.array([mine_j.at[q, metric] if q in mine_j.index else STAND_IN[metric] for q in answers], dtype=float)
            y = np.array([mine_h.at[q, metric] if q in mine_h.index else np.nan for q in answers], dtype=float)
            pi = None
            if probabilities is not None and model in probabilities:
                pi = np.array([probabilities[model][int(q)] for q in answers], dtype=float)
            pop = Population(f, y, np.array([code_of[int(q)] for q in answers], dtype=np.int64), pi)
            rows.append(_row(model, metric, pop, in_judge, counts, summary_counts, alpha, n_from_answers=n_from_answers))
    return pd.DataFrame(rows, columns=list(PPI_COLUMNS))


def _row(model: str, metric: str, pop: Population, in_judge: np.ndarray, counts: np.ndarray, summary_counts: np.ndarray, alpha: float, *,
         n_from_answers: bool = False) -> tuple:  # fmt: skip
    graded = pop.graded
    n, big_n = int(graded.sum()), pop.f.size
    n_stand_in = int((graded & ~in_judge).sum())
    judge_only = float(pop.f[in_judge].mean()) if in_judge.any() else float("nan")
    labelled = graded & in_judge
    ref = (np.nan, np.nan, np.nan, np.nan)
    unlabelled = in_judge & ~graded
    rows_used = (f"Y, Yhat: the {int(labelled.sum())} human-graded answers the judge graded; Yhat_unlabeled: the {int(unlabelled.sum())} "
                 "judge-graded answers without a human grade" + (f"; {n_stand_in} stand-in row(s) left out" if n_stand_in else ""))  # fmt: skip
    if labelled.sum() >= 2 and unlabelled.any():
        got = ppi_py_mean(pop.y[labelled], pop.f[labelled], pop.f[unlabelled], alpha=alpha)
        ref = (got.estimate, got.ci_low, got.ci_high, got.lam)
    else:
        rows_used = "none: ppi_py needs 2 or more human-graded answers the judge graded and 1 or more judge-only answers"
    nan = float("nan")
    human_est = (float(np.mean(pop.y[graded])) if pop.pi is None else float(np.average(pop.y[graded], weights=pop.weights))) if n else nan
    graded_only = Population(pop.f[graded] * 0.0, pop.y[graded], pop.image[graded], None if pop.pi is None else pop.pi[graded])  # images the summary table draws
    human_lo, human_hi = human_only_interval(graded_only, bootstrap_estimates(graded_only, summary_counts), metric) if n >= 1 else (nan, nan)
    if metric == "mean_score" and (n < MIN_N_MEAN_INTERVAL or np.unique(pop.y[graded]).size == 1):
        human_lo = human_hi = nan
    if n == 0:
        return (model, metric, nan, nan, nan, nan, nan, 0, int(in_judge.sum()), big_n, 0, nan, nan, nan, nan, judge_only, *ref,
                rows_used, "no human grade: nothing anchors the judge")  # fmt: skip
    notes = []
    if pop.pi is not None:
        notes.append("active sample: estimates weighted by 1 / inclusion probability; ppi_py's i.i.d. columns ignore the weights")
    if n_stand_in:
        notes.append(f"{n_stand_in} human-graded answer(s) without a judge grade keep the stand-in judge value {STAND_IN[metric]:g}")
    if not n_from_answers:
        notes.append(f"N = {big_n}: the answers the judge graded, people graded or the judge's meta.json lists (give --answers to count every answer)")
    if n < MIN_N_INTERVAL:
        lam = pop_lambda(pop)
        est = difference_estimate(pop, lam)
        low = high = s_low = s_high = nan
        notes.insert(0, f"too few: {n} human-graded answer(s); an interval needs {MIN_N_INTERVAL} or more to hold its level")
    else:
        lam, est, (low, high), (s_low, s_high) = row_intervals(pop, metric, counts, (human_lo, human_hi), alpha)
        if n == big_n:
            notes.insert(0, f"{ALL_GRADED}: the estimate is the human mean, with no sampling uncertainty")
        elif lam == 0.0 and pop_lambda(pop) > 0.0:
            notes.insert(0, "the judge does not narrow the interval here: human-only estimate and intervals (λ = 0)")
        if counts.shape[0] == 0:
            notes.insert(0, "no headline interval without bootstrap resamples (--bootstrap 0)")
    return (model, metric, est, low, high, s_low, s_high, n, int(in_judge.sum()), big_n, n_stand_in, lam, human_est, human_lo,
            human_hi, judge_only, *ref, rows_used, "; ".join(notes))  # fmt: skip

