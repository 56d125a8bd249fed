"""Intervals that stay honest at small n: Wilson for shares, "too few" for means, bounds on the scale."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from owleval.questions import load_questions
from owleval.report.combine import combine_grades
from owleval.report.stats import clustered_wilson, wilson_interval
from owleval.report.tables import TOO_FEW, build_score_tables

from tests.report_helpers import data_dir


@pytest.fixture(scope="module")
def questions():
    return load_questions(data_dir())


def test_wilson_equals_scipy_and_is_never_zero_width():
    for k, n in [(0, 7), (7, 7), (1, 1), (3, 10), (41, 82)]:
        low, high = wilson_interval(np.array([k]), np.array([n]))
        ref = tuple(binomtest(k, n).proportion_ci(0.95, method="wilson"))
        assert (low[0], high[0]) == pytest.approx(ref, abs=1e-12)
        assert high[0] - low[0] > 0.05
    low, high = wilson_interval(np.array([0]), np.array([7]))
    assert low[0] == 0.0 and high[0] == pytest.approx(0.354, abs=0.001)  # 0 of 7 -> about [0%, 35%]


def test_clustered_wilson_widens_with_the_design_effect():
    rng = np.random.default_rng(0)
    share, n = np.array([0.5]), np.array([40.0])
    iid = rng.binomial(40, 0.5, size=(4000, 1)) / 40.0
    clustered = 0.5 + 2.0 * (iid - 0.5)  # four times the binomial variance
    plain = clustered_wilson(share, n, iid)
    wide = clustered_wilson(share, n, clustered)
    assert (plain[0][0], plain[1][0]) == pytest.approx(tuple(binomtest(20, 40).proportion_ci(0.95, method="wilson")), abs=0.01)
    # design effect 4: the Wilson interval of 5 in 10
    assert (wide[0][0], wide[1][0]) == pytest.approx(tuple(binomtest(5, 10).proportion_ci(0.95, method="wilson")), abs=0.02)
    assert clustered_wilson(share, n, np.empty((0, 1)))[0][0] != clustered_wilson(share, n, np.empty((0, 1)))[0][0]  # NaN


def _grades(rows):
    frame = pd.DataFrame(rows, columns=["model_id", "question_id", "grade"])
    frame["annotator"] = "u1"
    frame["score"] = frame["grade"].map({"A": 3, "B": 2, "C": 1, "D": 0})
    return frame


def test_degenerate_samples_get_wilson_and_too_few(questions):
    qids = [q.question_id for q in questions]
    rows = [("zero", q, "C") for q in qids[:7]] + [("one", qids[0], "A")] + [("mixed", q, "AD"[i % 2]) for i, q in enumerate(qids[:30])]
    table = build_score_tables(combine_grades(_grades(rows)), questions, n_boot=200, seed=0)["summary"].set_index("model")
    zero = table.loc["zero"]
    assert zero.acceptable == 0.0 and zero.acceptable_ci_low == 0.0 and 0.3 < zero.acceptable_ci_high < 0.45
    assert np.isnan(zero.mean_score_ci_low) and TOO_FEW in zero.note  # all one grade
    one = table.loc["one"]
    assert one.acceptable_ci_high == 1.0 and one.acceptable_ci_low < 0.25
    assert np.isnan(one.mean_score_ci_high) and "n=1" in one.note
    mixed = table.loc["mixed"]
    assert mixed.note == "" and mixed.mean_score_ci_low < 1.5 < mixed.mean_score_ci_high
    assert 0.0 <= mixed.acceptable_ci_low < 0.5 < mixed.acceptable_ci_high <= 1.0
