"""Pairwise statistics for every model pair at once, the Bradley-Terry fit behind the leaderboard, unranked models,
and what report.md/html list when there are many models. scipy defines the truth for the tests."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from scipy.stats import PermutationMethod, binomtest, wilcoxon

from owleval.csvio import unquote_frame
from owleval.questions import load_questions
from owleval.report.build import build_report, render_files
from owleval.report.compare import BT_BOOTSTRAP_TOL, MAX_LISTED_PAIRS, MIN_COMPARISONS, leaderboard_table, listed_pairs, pairwise_table
from owleval.records.grades import validate_records
from owleval.stats import SIGNED_RANK_EXACT_MAX, bradley_terry, sign_test_pvalues, signed_rank_pvalues
from owleval.report.tables import question_info

from tests.report_helpers import data_dir, synthetic_grades


@pytest.fixture(scope="module")
def questions():
    return load_questions(data_dir())


def _frame(rows, questions):
    return validate_records(((i + 2, r) for i, r in enumerate(rows)), data_dir() / "grades.csv", questions)


def test_sign_tests_equal_scipy_binomtest():
    rng = np.random.default_rng(0)
    wins = np.r_[rng.integers(0, 60, 400), 0, 0, 7, 5]
    losses = np.r_[rng.integers(0, 60, 400), 0, 3, 7, 0]
    ours = sign_test_pvalues(wins, losses)
    expected = [binomtest(w, w + l).pvalue if w + l else 1.0 for w, l in zip(wins, losses, strict=True)]
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-15)


def _scipy_signed_rank(d: np.ndarray) -> float:
    """What scipy says for the method signed_rank_pvalues uses on these differences (zeros dropped)."""
    nz = d[~np.isnan(d) & (d != 0)]
    if nz.size > SIGNED_RANK_EXACT_MAX:
        return wilcoxon(nz, method="asymptotic", correction=True).pvalue
    if np.unique(np.abs(nz)).size == nz.size:
        return wilcoxon(nz, method="exact").pvalue
    if nz.size > 10:
        return None  # scipy's exhaustive permutation test would take 2**n statistics: too slow for a test
    return wilcoxon(nz, method=PermutationMethod(n_resamples=np.inf)).pvalue  # exhaustive: every sign flip


def test_signed_rank_normal_approximation_equals_scipy():
    rng = np.random.default_rng(1)
    columns = [rng.integers(-3, 4, size=n).astype(float) for n in rng.integers(40, 120, size=60)]
    width = max(c.size for c in columns)
    matrix = np.full((width, len(columns)), np.nan)  # NaN: a question one of the two models lacks
    for k, c in enumerate(columns):
        matrix[: c.size, k] = c
    ours = signed_rank_pvalues(matrix)
    for k, c in enumerate(columns):
        assert (c != 0).sum() > SIGNED_RANK_EXACT_MAX
        assert ours[k] == pytest.approx(_scipy_signed_rank(c), rel=1e-10)


def test_signed_rank_exact_equals_scipy_on_small_samples():
    rng = np.random.default_rng(2)
    cases = [rng.normal(size=n) for n in range(1, SIGNED_RANK_EXACT_MAX + 1)]  # no ties: scipy's exact method
    cases += [rng.integers(-3, 4, size=n).astype(float) for n in rng.integers(2, 11, size=30)]  # ties and zeros
    cases += [np.array([1.0, 1.0, 1.0, 1.0, 2.0, 2.0, -1.0])]
    cases = [c for c in cases if (c != 0).any()]
    width = max(c.size for c in cases)
    matrix = np.full((width, len(cases)), np.nan)
    for k, c in enumerate(cases):
        matrix[: c.size, k] = c
    ours = signed_rank_pvalues(matrix)
    for k, c in enumerate(cases):
        assert ours[k] == pytest.approx(_scipy_signed_rank(c), rel=1e-10, abs=1e-14), c


def test_signed_rank_without_differences_is_one():
    d = np.array([[0.0, np.nan], [0.0, np.nan], [np.nan, np.nan]])
    assert signed_rank_pvalues(d).tolist() == [1.0, 1.0]


def _bt_likelihood_optimum(wins: np.ndarray, prior: float) -> np.ndarray:
    m = wins.shape[0]
    w = wins + prior / 2.0 * (1.0 - np.eye(m))

    def nll(theta):
        t = np.r_[theta, -theta.sum()]
        diff = t[:, None] - t[None, :]
        return -(w * (diff - np.logaddexp(0, diff))).sum()

    best = minimize(nll, np.zeros(m - 1), method="BFGS", options={"gtol": 1e-10}).x
    return np.r_[best, -best.sum()]


def test_bradley_terry_with_prior_maximises_the_likelihood_and_warm_start_changes_nothing():
    rng = np.random.default_rng(3)
    wins = rng.integers(0, 12, size=(6, 6)).astype(float)
    wins[0, :] = 0.0  # a model that never wins: finite only thanks to the prior
    np.fill_diagonal(wins, 0.0)
    expected = _bt_likelihood_optimum(wins, prior=1.0)
    assert bradley_terry(wins, prior=1.0) == pytest.approx(expected, abs=1e-6)
    replicates = rng.poisson(wins[None], size=(40, 6, 6)).astype(float)
    replicates[:, np.arange(6), np.arange(6)] = 0.0
    cold = bradley_terry(replicates, prior=1.0)
    warm = bradley_terry(replicates, prior=1.0, start=expected)
    far = bradley_terry(replicates, prior=1.0, start=np.linspace(-20, 20, 6))
    np.testing.assert_allclose(warm, cold, atol=1e-9)
    np.testing.assert_allclose(far, cold, atol=1e-9)
    assert cold[7] == pytest.approx(_bt_likelihood_optimum(replicates[7], prior=1.0), abs=1e-6)


def test_bootstrap_replicates_budget_keeps_the_fit_to_1e_4(questions):
    """The leaderboard fits replicates to BT_BOOTSTRAP_TOL from the full-data fit: within 1e-4 of a full fit."""
    rng = np.random.default_rng(8)
    truth = np.linspace(-1.0, 1.0, 12)
    p = 1.0 / (1.0 + np.exp(-(truth[:, None] - truth[None, :])))
    wins = rng.binomial(80, np.triu(p, 1)).astype(float)
    wins = wins + np.tril(80.0 - wins.T, -1)
    np.fill_diagonal(wins, 0.0)
    point = bradley_terry(wins, prior=1.0)
    replicates = rng.poisson(wins[None], size=(300, 12, 12)).astype(float)
    replicates[:, np.arange(12), np.arange(12)] = 0.0
    budget = bradley_terry(replicates, prior=1.0, start=point, tol=BT_BOOTSTRAP_TOL)
    exact = bradley_terry(replicates, prior=1.0, tol=1e-14)
    assert np.abs(budget - exact).max() < 1e-4


def test_many_models_pairwise_equals_scipy_per_pair(questions):
    """The vectorised table at 12 models on partly shared questions equals scipy pair by pair."""
    grades = synthetic_grades(questions, [f"m{i:02d}" for i in range(12)], ["ann", "bob"], seed=4, coverage=0.6)
    grades = grades.sample(frac=0.8, random_state=0)  # answers missing at random: pairs share fewer questions
    scores = grades.assign(score=grades.grade.map({"A": 3, "B": 2, "C": 1, "D": 0})).groupby(["model_id", "question_id"], as_index=False).score.min()
    models = sorted(scores.model_id.unique())
    table = pairwise_table(scores, question_info(questions), models, n_boot=50, seed=0)
    assert len(table) == 66
    wide = scores.pivot(index="question_id", columns="model_id", values="score")
    checked = 0
    for row in table.itertuples():
        d = (wide[row.model_a] - wide[row.model_b]).dropna().to_numpy()
        assert (row.n, row.wins, row.losses) == (d.size, (d > 0).sum(), (d < 0).sum())
        assert row.sign_test_p == pytest.approx(binomtest(row.wins, row.wins + row.losses).pvalue if row.wins + row.losses else 1.0)
        expected = _scipy_signed_rank(d)
        if expected is not None:
            assert row.wilcoxon_p == pytest.approx(expected, rel=1e-9)
            checked += 1
    assert checked >= 50
    p = table.sign_test_p.to_numpy()
    order = np.argsort(p)
    holm = np.minimum(np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order]), 1.0)
    np.testing.assert_allclose(table.sign_test_p_holm.to_numpy()[order], holm)


def test_model_without_comparisons_has_no_rank(questions, tmp_path):
    """Three grades: two models share a question, a third graded alone is not ranked first (nor at all)."""
    rows = [
        {"annotator": "ann", "model_id": "alone", "question_id": 5, "grade": "A", "comment": "", "graded_at": ""},
        {"annotator": "ann", "model_id": "left", "question_id": 1, "grade": "B", "comment": "", "graded_at": ""},
        {"annotator": "ann", "model_id": "right", "question_id": 1, "grade": "C", "comment": "", "graded_at": ""},
    ]
    report = build_report(_frame(rows, questions), questions, source="three", n_boot=50, seed=0)
    files = render_files(report, ["md", "html", "csv"])
    from io import StringIO

    board = unquote_frame(pd.read_csv(StringIO(files["leaderboard.csv"]), dtype=str, keep_default_na=False))
    alone = board[board.model == "alone"].iloc[0]
    assert alone["rank"] == "" and alone.strength == "" and alone.n_comparisons == "0"
    assert "no comparisons" in alone.note
    # one comparison each is too few to rank either of the other two
    assert (board["rank"] == "").all()
    assert (board[board.model != "alone"].note.str.contains("too few")).all()
    assert "no comparisons: not ranked" in files["report.md"] and "no comparisons: not ranked" in files["report.html"]


def test_ranked_models_first_and_unranked_below(questions):
    grades = synthetic_grades(questions, ["m0", "m1", "m2"], ["ann"], seed=5)
    few = grades[grades.model_id == "m2"].head(MIN_COMPARISONS // 2)  # m2 shares only 2 questions
    grades = pd.concat([grades[grades.model_id != "m2"], few])
    scores = grades.assign(score=grades.grade.map({"A": 3, "B": 2, "C": 1, "D": 0}))[["model_id", "question_id", "score"]]
    board = leaderboard_table(scores, question_info(questions), ["m0", "m1", "m2"], n_boot=100, seed=0)
    assert board.model.tolist()[-1] == "m2" and pd.isna(board["rank"].iloc[-1])
    assert board["rank"].iloc[:2].tolist() == [1, 2]
    assert board.n_comparisons.iloc[-1] == 2 * len(few)


def test_many_models_list_adjacent_ranks_and_keep_every_pair_in_the_csv(questions):
    models = [f"m{i:02d}" for i in range(10)]  # 45 pairs > MAX_LISTED_PAIRS
    grades = synthetic_grades(questions, models, ["ann", "bob", "cy"], seed=6)
    report = build_report(_frame(grades.to_dict("records"), questions), questions, source="ten", n_boot=100, seed=0)
    pairwise, board = report.tables["pairwise"], report.tables["leaderboard"]
    assert len(pairwise) == 45 > MAX_LISTED_PAIRS
    shown, summary = listed_pairs(pairwise, board)
    assert len(shown) == 9
    ranked = board.model.tolist()
    assert list(zip(shown.model_a, shown.model_b, strict=True)) == list(zip(ranked[:-1], ranked[1:], strict=True))
    for row in shown.to_dict("records"):  # the same numbers as pairwise.csv, seen from the better-ranked side
        original = pairwise[((pairwise.model_a == row["model_a"]) & (pairwise.model_b == row["model_b"]))
                            | ((pairwise.model_a == row["model_b"]) & (pairwise.model_b == row["model_a"]))].iloc[0]  # fmt: skip
        flipped = original.model_a != row["model_a"]
        assert row["wins"] == (original.losses if flipped else original.wins)
        assert row["mean_diff"] == pytest.approx(-original.mean_diff if flipped else original.mean_diff)
        assert row["sign_test_p_holm"] == original.sign_test_p_holm
    significant = pairwise.sign_test_p_holm < 0.05
    assert summary["n_significant"] == significant.sum() > 0
    assert sum(r["better_than"] for r in summary["per_model"]) == significant.sum() == sum(r["worse_than"] for r in summary["per_model"])
    files = render_files(report, ["md", "html", "csv"])
    assert files["pairwise.csv"].count("\n") == 46
    assert f"45 pairs, {significant.sum()} of them significantly different" in files["report.md"]
    section = files["report.md"].split("## Pairwise comparisons")[1].split("Per model:")[0]
    assert len(re.findall(r"\n\| m\d\d \|", section)) == 9  # the adjacent pairs only


def test_few_models_list_every_pair(questions):
    grades = synthetic_grades(questions, ["m0", "m1", "m2", "m3"], ["ann"], seed=7)
    report = build_report(_frame(grades.to_dict("records"), questions), questions, source="four", n_boot=20, seed=0)
    shown, summary = listed_pairs(report.tables["pairwise"], report.tables["leaderboard"])
    assert summary is None and len(shown) == 6
