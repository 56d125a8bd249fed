"""The "these answers" interval on fixed populations (only the sample redrawn): the cases where the earlier
interval missed (an all-acceptable sample; a sample that missed the judge's rare one-directional disagreements),
a small vectorised coverage check, and the headline against the human-only interval."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import hypergeom

from owleval.questions import load_questions
from owleval.report import finite
from owleval.report.estimands import Population, ppi_table, sample_interval, tuned_lambda
from owleval.report.tables import question_info

from tests.report_helpers import data_dir

N = 82


def test_an_all_acceptable_sample_reaches_the_exact_hypergeometric_bound():
    """Mechanism (a): 15 of 82 drawn, all acceptable. The exact 95% lower bound is the smallest share for which
    such a sample has probability >= 2.5%; the interval must reach it (the old one stopped at 0.874)."""
    n = 15
    zeros = max(k for k in range(N) if hypergeom(N, k, n).pmf(0) >= 0.025)
    exact_low = (N - zeros) / N  # 0.805
    y = np.r_[np.ones(n), np.full(N - n, np.nan)]
    f = np.r_[np.ones(n), np.random.default_rng(0).integers(0, 2, N - n).astype(float)]
    est, low, high = sample_interval(Population(f, y, np.arange(N)), tuned_lambda(y[:n], f[:n]), "acceptable")
    assert est == 1.0 and high == 1.0 and low <= exact_low < 0.874


def test_a_sample_that_missed_the_rare_disagreements_still_covers():
    """Mechanism (b): the judge says acceptable on 8 answers people do not accept; a sample of 20 that drew none of
    them sees a perfect judge (residuals all 0) and an estimate 8/82 too high -- the interval must still reach."""
    rng = np.random.default_rng(1)
    human = (rng.random(N) < 0.5).astype(float)
    judge = human.copy()
    kind = np.flatnonzero(human == 0)[:8]
    judge[kind] = 1.0
    drawn = np.setdiff1d(np.arange(N), kind)[:20]
    y = np.full(N, np.nan)
    y[drawn] = human[drawn]
    est, low, high = sample_interval(Population(judge, y, np.arange(N)), tuned_lambda(human[drawn], judge[drawn]), "acceptable")
    assert est == pytest.approx(judge.mean()) and low <= human.mean() <= high


def test_coverage_on_a_fixed_population_with_a_lenient_judge():
    """A lenient judge (one grade kinder half the time) on one fixed population, 2,000 samples of n = 20: the
    acceptable share's interval covers the population's own share at >= 0.94 - 2 s.e. (the old one: ~0.91)."""
    rng = np.random.default_rng(5)
    grade = np.clip(np.rint(1.5 + rng.normal(0, 0.95, N)), 0, 3)
    kinder = np.where(rng.random(N) < 0.5, np.minimum(grade + 1, 3), grade)
    y, f = (grade >= 2) * 1.0, (kinder >= 2) * 1.0
    idx = np.argsort(rng.random((2000, N)), axis=1)[:, :20]
    _, low, high, _ = finite.sample_intervals(y[idx], f[idx], f.mean(), N, "acceptable", 0.05)
    coverage = float(((low <= y.mean()) & (y.mean() <= high)).mean())
    assert coverage >= 0.94 - 2 * np.sqrt(0.95 * 0.05 / 2000)


def test_headline_never_wider_than_human_only_and_equal_at_lambda_zero():
    info = question_info(load_questions(data_dir()))
    rng = np.random.default_rng(3)
    human_rows, judge_rows = [], []
    for m, kind in enumerate(("good", "random", "constant", "anti")):
        model = f"m{m}-{kind}"
        grade = np.clip(np.rint(1.5 + rng.normal(0, 1.0, N)), 0, 3)
        judged = {"good": np.where(rng.random(N) < 0.8, grade, np.clip(grade + rng.choice([-1, 1], N), 0, 3)),
                  "random": rng.integers(0, 4, N).astype(float), "constant": np.full(N, 2.0), "anti": 3.0 - grade}[kind]  # fmt: skip
        for q in range(1, N + 1):
            judge_rows.append((model, q, judged[q - 1], float(judged[q - 1] >= 2)))
        for q in rng.choice(np.arange(1, N + 1), 25, replace=False):
            human_rows.append((model, int(q), grade[q - 1], float(grade[q - 1] >= 2)))
    cols = ["model_id", "question_id", "mean_score", "acceptable"]
    human, judge = pd.DataFrame(human_rows, columns=cols), pd.DataFrame(judge_rows, columns=cols)
    table = ppi_table(human, judge, sorted(set(human.model_id)), info, summary_questions=human["question_id"].tolist(), n_boot=200, seed=0)
    assert len(table) == 8 and table.ci_low.notna().all()
    width, human_width = table.ci_high - table.ci_low, table.human_only_ci_high - table.human_only_ci_low
    assert (width <= human_width + 1e-12).all()
    zero = table[table["lambda"] == 0.0]
    assert len(zero) >= 4  # the constant and the anti judge at least
    assert np.allclose(zero.ci_low, zero.human_only_ci_low, atol=1e-9, rtol=0) and np.allclose(zero.ci_high, zero.human_only_ci_high, atol=1e-9, rtol=0)
    assert np.allclose(zero.estimate, zero.human_only_estimate, atol=1e-12, rtol=0)
    good = table[table.model == "m0-good"]
    assert (good["lambda"] > 0).all() and (good.ci_high - good.ci_low < good.human_only_ci_high - good.human_only_ci_low).all()
