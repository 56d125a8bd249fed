"""PPI++ mean estimation: equal to ppi_py, and the properties that make it trustworthy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from owleval.questions import load_questions
from owleval.report.estimands import ppi_table
from owleval.report.ppi import classical_mean, power_tuning_lambda, ppi_mean
from owleval.report.tables import question_info

from tests.report_helpers import data_dir

# One model of OwlEval: 20 human-graded answers (Y, with the judge's grade Yhat) and 62 judged only.
Y = np.array([3, 2, 2, 0, 1, 3, 3, 2, 1, 0, 2, 3, 1, 2, 0, 3, 2, 1, 2, 3], float)
YHAT = np.array([3, 3, 2, 1, 1, 3, 2, 2, 2, 0, 2, 3, 2, 3, 0, 3, 3, 1, 2, 3], float)
YU = np.array(([3, 2, 3, 1, 2, 0, 3, 3, 2, 1, 2, 2, 3, 0, 1, 2, 3, 3, 2, 1, 2, 3, 2, 2, 1, 0, 3, 2, 3, 1, 2, 2] * 2)[:62], float)

# Computed once with ppi-python 0.2.3 on the data above:
#   ppi_py.ppi_mean_pointestimate(Y, YHAT, YU), ppi_py.ppi_mean_ci(Y, YHAT, YU, alpha=0.05),
#   ppi_py.classical_mean_ci(Y, alpha=0.05); and the same with every array replaced by (array >= 2).
# ppi-python is not a test dependency: it pulls numba and statsmodels and installs a top-level `tests` package
# that shadows this folder outside pytest (bench/ imports tests.report_helpers). test_equals_ppi_py_on_random_data
# compares with the library itself wherever it is installed.
RECORDED = {
    "score": (1.7194616511968734, 1.4214311937247652, 2.0174921086689817, 1.3487824055992623, 2.2512175944007375),
    "acceptable": (0.6257507369196758, 0.4714857567154135, 0.780015717123938, 0.4409626969046059, 0.8590373030953942),
}


@pytest.mark.parametrize("metric", ["score", "acceptable"])
def test_equals_values_recorded_from_ppi_py(metric):
    y, yhat, yu = (Y, YHAT, YU) if metric == "score" else ((Y >= 2) * 1.0, (YHAT >= 2) * 1.0, (YU >= 2) * 1.0)
    got = ppi_mean(y, yhat, yu, alpha=0.05)
    human = classical_mean(y, alpha=0.05)
    estimate, low, high, c_low, c_high = RECORDED[metric]
    assert (got.estimate, got.ci_low, got.ci_high) == pytest.approx((estimate, low, high), rel=1e-12)
    assert (human.ci_low, human.ci_high) == pytest.approx((c_low, c_high), rel=1e-12)
    assert 0.0 <= got.lam <= 1.0


def _import_ppi_py():
    """ppi_py from .ppi_py/ (scripts/setup.sh), appended to the path so its top-level `tests` cannot shadow ours."""
    import sys
    from pathlib import Path

    target = Path(__file__).resolve().parent.parent / ".ppi_py"
    if target.is_dir() and str(target) not in sys.path:
        sys.path.append(str(target))
    return pytest.importorskip("ppi_py", reason="ppi_py not installed: run scripts/setup.sh (it installs it into .ppi_py/)")


def test_ppi_py_does_not_shadow_our_tests_package():
    _import_ppi_py()
    import tests.report_helpers

    assert Path(tests.report_helpers.__file__).resolve().parent == Path(__file__).resolve().parent


def test_equals_ppi_py_on_random_data():
    ppi_py = _import_ppi_py()
    rng = np.random.default_rng(0)
    for _ in range(100):
        n, big_n = int(rng.integers(2, 40)), int(rng.integers(1, 400))
        y = rng.integers(0, 4, n).astype(float)
        yhat = np.clip(y + rng.integers(-1, 2, n), 0, 3)
        yu = rng.integers(0, 4, big_n).astype(float)
        got = ppi_mean(y, yhat, yu, alpha=0.05)
        low, high = ppi_py.ppi_mean_ci(y, yhat, yu, alpha=0.05)
        expected = float(np.squeeze(ppi_py.ppi_mean_pointestimate(y, yhat, yu)))
        assert (got.estimate, got.ci_low, got.ci_high) == pytest.approx((expected, float(np.squeeze(low)), float(np.squeeze(high))), rel=1e-10)


def test_ppi_py_mean_is_ppi_py_nan_included():
    """ppi_py's own result for the ppi_py_* columns: NaN where a constant judge makes its lambda 0/0 (and the
    finite values rounding gives it elsewhere), unlike ppi_mean, which takes lambda = 0 there."""
    from owleval.report.ppi import ppi_py_mean

    ppi_py = _import_ppi_py()
    rng = np.random.default_rng(1)
    nans = 0
    for _ in range(300):
        n, big_n = int(rng.integers(2, 40)), int(rng.integers(1, 300))
        y = rng.integers(0, 4, n).astype(float)
        level = float(rng.integers(0, 4)) * (1.0 if rng.random() < 0.5 else 0.37)
        yhat, yu = np.full(n, level), (np.full(big_n, level) if rng.random() < 0.7 else rng.integers(0, 4, big_n).astype(float))
        if rng.random() < 0.3:
            y, yhat, yu = (y >= 2) * 1.0, (yhat >= 2) * 1.0, (yu >= 2) * 1.0
        got = ppi_py_mean(y, yhat, yu, alpha=0.05)
        with np.errstate(all="ignore"):
            low, high = ppi_py.ppi_mean_ci(y, yhat, yu, alpha=0.05)
            expected = (float(np.squeeze(ppi_py.ppi_mean_pointestimate(y, yhat, yu))), float(np.squeeze(low)), float(np.squeeze(high)))
        assert (got.estimate, got.ci_low, got.ci_high) == pytest.approx(expected, rel=1e-12, nan_ok=True)
        nans += np.isnan(expected[0])
    assert nans > 20  # the NaN case is exercised


def test_lambda_zero_is_the_human_only_mean_and_interval():
    fixed = ppi_mean(Y, YHAT, YU, lam=0.0)
    human = classical_mean(Y)
    assert (fixed.estimate, fixed.ci_low, fixed.ci_high) == pytest.approx((human.estimate, human.ci_low, human.ci_high))
    assert human.estimate == pytest.approx(Y.mean())
    # the CLT interval of the mean: population sd / sqrt(n), z of 97.5%
    assert human.ci_high - human.estimate == pytest.approx(1.959963984540054 * Y.std() / np.sqrt(Y.size))


def test_lambda_one_is_plain_ppi():
    fixed = ppi_mean(Y, YHAT, YU, lam=1.0)
    assert fixed.estimate == pytest.approx(YU.mean() + (Y - YHAT).mean())


def test_a_perfect_judge_shrinks_the_interval_to_the_judge_mean():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 4, 400).astype(float)
    y, yu = truth[:30], truth[30:]
    perfect = ppi_mean(y, y, yu)
    human = classical_mean(y)
    assert perfect.lam > 0.7  # Cov(Y, Y) / ((1 + n/N) Var): close to 1 / (1 + 30/370)
    assert perfect.ci_high - perfect.ci_low < 0.5 * (human.ci_high - human.ci_low)
    assert perfect.estimate == pytest.approx(truth.mean(), abs=0.05)


def test_a_useless_judge_gets_lambda_zero():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 50).astype(float)
    anti = 3.0 - y  # perfectly wrong: negative covariance, clipped to 0
    assert power_tuning_lambda(y, anti, rng.integers(0, 4, 200).astype(float)) == 0.0
    constant = np.full(50, 2.0)  # one grade for everything: no information (ppi_py gives NaN here)
    assert power_tuning_lambda(y, constant, np.full(100, 2.0)) == 0.0
    assert ppi_mean(y, constant, np.full(100, 2.0)).estimate == pytest.approx(y.mean())


def _values(rows):
    return pd.DataFrame(rows, columns=["model_id", "question_id", "mean_score", "acceptable"])


@pytest.fixture(scope="module")
def info():
    return question_info(load_questions(data_dir()))


def _table(human, judge, models, info, missing=None):
    return ppi_table(human, judge, models, info, summary_questions=human["question_id"].tolist(), n_boot=200, seed=0, missing=missing)


def test_ppi_table_sets_and_reasons(info):
    human = _values([("m", q, s, float(s >= 2)) for q, s in zip(range(1, 21), Y, strict=True)] + [("few", 1, 3.0, 1.0)]
                    + [("m", 21, 3.0, 1.0)])  # fmt: skip
    judge = _values([("m", q, s, float(s >= 2)) for q, s in zip(range(1, 21), YHAT, strict=True)]
                    + [("m", q, s, float(s >= 2)) for q, s in zip(range(22, 83), YU[:61], strict=True)]
                    + [("few", q, 2.0, 1.0) for q in range(1, 10)])  # fmt: skip
    table = _table(human, judge, ["m", "few"], info).set_index(["model", "metric"])
    row = table.loc[("m", "mean_score")]
    # q21 has a human grade and no judge grade: it stays in the human sample with the stand-in judge value 1.5
    assert (row.n_human, row.n_judge, row.n_answers, row.n_stand_in) == (21, 81, 82, 1)
    assert "stand-in judge value 1.5" in row.note
    # ppi_py's i.i.d. PPI++ on the 20 answers with both grades against the 61 judged only
    expected = ppi_mean(Y, YHAT, YU[:61])
    assert (row.ppi_py_estimate, row.ppi_py_ci_low, row.ppi_py_ci_high) == pytest.approx((expected.estimate, expected.ci_low, expected.ci_high), rel=1e-12)
    assert row.human_only_estimate == pytest.approx(np.r_[Y, 3.0].mean())
    assert row.judge_only_estimate == pytest.approx(np.r_[YHAT, YU[:61]].mean())
    assert row.ci_low <= row.sample_ci_low <= row.estimate <= row.sample_ci_high <= row.ci_high
    few = table.loc[("few", "mean_score")]
    assert np.isnan(few.ci_low) and np.isnan(few.sample_ci_low) and "too few: 1 human-graded answer" in few.note
    assert few.n_human == 1 and few.judge_only_estimate == 2.0 and few.n_answers == 9


def test_every_answer_graded_is_the_human_mean_with_no_sampling_interval(info):
    human = _values([("m", q, s, float(s >= 2)) for q, s in zip(range(1, 21), Y, strict=True)])
    judge = _values([("m", q, s, float(s >= 2)) for q, s in zip(range(1, 21), YHAT, strict=True)])
    row = _table(human, judge, ["m"], info).set_index("metric").loc["mean_score"]
    assert row.estimate == pytest.approx(row.human_only_estimate) and row.ci_low == row.human_only_ci_low
    assert row.sample_ci_low == row.sample_ci_high == row.estimate
    assert "all graded" in row.note


def test_ppi_py_columns_equal_ppi_py(info):
    ppi_py = _import_ppi_py()
    human = _values([("m", q, s, float(s >= 2)) for q, s in zip(range(1, 21), Y, strict=True)])
    judge = _values([("m", q, s, float(s >= 2)) for q, s in zip(range(1, 21), YHAT, strict=True)]
                    + [("m", q, s, float(s >= 2)) for q, s in zip(range(21, 83), YU, strict=True)])  # fmt: skip
    table = _table(human, judge, ["m"], info).set_index("metric")
    for metric, (y, yhat, yu) in {"mean_score": (Y, YHAT, YU), "acceptable": ((Y >= 2) * 1.0, (YHAT >= 2) * 1.0, (YU >= 2) * 1.0)}.items():
        low, high = ppi_py.ppi_mean_ci(y, yhat, yu, alpha=0.05)
        point = float(np.squeeze(ppi_py.ppi_mean_pointestimate(y, yhat, yu)))
        row = table.loc[metric]
        assert (row.ppi_py_estimate, row.ppi_py_ci_low, row.ppi_py_ci_high) == pytest.approx((point, float(np.squeeze(low)), float(np.squeeze(high))), rel=1e-12)
        assert row.ppi_py_rows.startswith("Y, Yhat: the 20 human-graded answers the judge graded; Yhat_unlabeled: the 62")
    # a judge that gives every answer one grade: ppi_py's lambda is 0/0 (NaN, or what rounding leaves: see
    # test_ppi_py_mean_is_ppi_py_nan_included); the columns are ppi_py's, the estimate the human mean
    constant = _values([("m", q, 2.0, 1.0) for q in range(1, 83)])
    flat = _table(human, constant, ["m"], info).set_index("metric")
    for metric, y in {"mean_score": Y, "acceptable": (Y >= 2) * 1.0}.items():
        yhat = np.full(20, 2.0 if metric == "mean_score" else 1.0)
        with np.errstate(all="ignore"):
            expected = (float(np.squeeze(ppi_py.ppi_mean_pointestimate(y, yhat, yhat[:1].repeat(62)))),
                        *map(float, np.squeeze(ppi_py.ppi_mean_ci(y, yhat, yhat[:1].repeat(62), alpha=0.05))))
        got = tuple(flat.loc[metric, ["ppi_py_estimate", "ppi_py_ci_low", "ppi_py_ci_high"]])
        assert got == pytest.approx(expected, rel=1e-12, nan_ok=True)
        assert flat.loc[metric, "lambda"] == 0.0 and flat.loc[metric, "estimate"] == pytest.approx(y.mean())


def test_these_answers_interval_matches_the_finite_population_formula():
    from owleval.report.estimands import Population, jackknife_variance, sample_interval, sampling_variance, tuned_lambda

    f = np.r_[YHAT, YU]
    y = np.r_[Y, np.full(YU.size, np.nan)]
    pop = Population(f, y, np.arange(f.size))
    lam = tuned_lambda(Y, YHAT)
    assert lam == pytest.approx(min(max(np.cov(Y, YHAT, ddof=0)[0, 1] / np.var(YHAT), 0.0), 1.0))
    resid = Y - lam * YHAT
    n, big_n = Y.size, f.size
    plain = (1 - n / big_n) * np.var(resid, ddof=2) / n
    assert sampling_variance(pop, lam, "mean_score", floor=False) == pytest.approx(plain)
    # the jackknife the slow way: drop each graded answer, re-fit lam, re-estimate
    thetas = []
    for j in range(n):
        keep = np.arange(n) != j
        lam_j = tuned_lambda(Y[keep], YHAT[keep])
        thetas.append(lam_j * f.mean() + np.mean(Y[keep] - lam_j * YHAT[keep]))
    thetas = np.array(thetas)
    jack = (1 - n / big_n) * (n - 1) / n * np.sum((thetas - thetas.mean()) ** 2)
    assert jackknife_variance(pop) == pytest.approx(jack)
    k = 2.0 / (1 - n / big_n)  # pseudo-observations one grade step off, weighted as the unsampled answers
    honest = (1 - n / big_n) * (np.sum((resid - resid.mean()) ** 2) + k) / (n - 2 + k) / n
    assert sampling_variance(pop, lam, "mean_score") == pytest.approx(max(honest, jack))
    est, low, high = sample_interval(pop, lam, "mean_score")
    assert est == pytest.approx(lam * f.mean() + resid.mean())
    from scipy.stats import binomtest, t

    from owleval.stats import bounded_score_interval

    inflated = (t.ppf(0.975, n - 2) / 1.959963984540054) ** 2 * max(honest, jack)
    expected = bounded_score_interval(np.array(est), np.array(inflated), 0.0, 3.0)
    assert (low, high) == pytest.approx((float(expected[0]), float(expected[1])))
    # the score-type interval of a 0/1 mean with the binomial variance is Wilson's
    wilson = bounded_score_interval(np.array(0.3), np.array(0.3 * 0.7 / 20), 0.0, 1.0)
    assert (float(wilson[0]), float(wilson[1])) == pytest.approx(tuple(binomtest(6, 20).proportion_ci(0.95, method="wilson")))
    # narrower than ppi_py's i.i.d. interval, which ignores that 20 of the 82 answers are graded (fpc) -- the point
    ref = ppi_mean(Y, YHAT, YU)
    assert high - low < ref.ci_high - ref.ci_low


def test_a_zero_residual_sample_still_gets_a_nonzero_interval():
    from owleval.report.estimands import Population, sample_interval, tuned_lambda

    y = np.array([3, 2, 2, 3, 1, 3, 2, 3, 3, 2], float)  # the judge agrees on every graded answer
    f = np.r_[y, np.full(72, 2.0)]
    pop = Population(f, np.r_[y, np.full(72, np.nan)], np.arange(82))
    est, low, high = sample_interval(pop, tuned_lambda(y, y), "mean_score")
    assert low < est < high and high - low > 0.2
