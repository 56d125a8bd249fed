"""Score tables, combining rules, pairwise tests and the leaderboard on grades whose counts are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from scipy.stats import binomtest, wilcoxon

from owleval.questions import ABILITIES, load_questions
from owleval.report.combine import answer_scores, combine_grades
from owleval.report.compare import leaderboard_table, pairwise_table
from owleval.records.grades import GRADE_SCORES
from owleval.stats import bootstrap_counts, bradley_terry, ratio_bootstrap
from owleval.report.tables import TABLE_COLUMNS, build_score_tables, question_info

from tests.report_helpers import data_dir

MODELS = ("alpha", "beta", "gamma")


@pytest.fixture(scope="module")
def questions():
    return load_questions(data_dir())


def truth(model_index: int, qid: int) -> str:
    return "ABCD"[(qid * (model_index + 1) + model_index) % 4]


@pytest.fixture(scope="module")
def known(questions) -> pd.DataFrame:
    """Three annotators: two give the true grade, the third a random one, so the median is the truth."""
    rng = np.random.default_rng(3)
    rows = []
    for k, model in enumerate(MODELS):
        for q in questions:
            t = truth(k, q.question_id)
            for ann, grade in (("u1", t), ("u2", t), ("u3", "ABCD"[rng.integers(4)])):
                rows.append({"annotator": ann, "model_id": model, "question_id": q.question_id, "grade": grade, "score": GRADE_SCORES[grade]})
    return pd.DataFrame(rows)


def expected_counts(questions, keep) -> dict[str, dict[str, int]]:
    out = {m: dict.fromkeys("ABCD", 0) for m in MODELS}
    for k, m in enumerate(MODELS):
        for q in questions:
            if keep(q):
                out[m][truth(k, q.question_id)] += 1
    return out


def test_known_counts_in_every_table(known, questions):
    tables = build_score_tables(combine_grades(known, "median"), questions, n_boot=50, seed=0)
    subsets = {
        "summary": lambda q: True,
        "summary_single_turn": lambda q: "single_turn" in q.categories,
        "summary_multi_turn": lambda q: "multi_turn" in q.categories,
    }
    for name, keep in subsets.items():
        table = tables[name].set_index("model")
        assert list(tables[name].columns) == list(TABLE_COLUMNS)
        for model, counts in expected_counts(questions, keep).items():
            row = table.loc[model]
            assert {g: int(row[g]) for g in "ABCD"} == counts, (name, model)
            n = sum(counts.values())
            assert row["n"] == n == row["n_answers"]
            assert row["acceptable"] == pytest.approx((counts["A"] + counts["B"]) / n)
            assert row["mean_score"] == pytest.approx(sum(GRADE_SCORES[g] * c for g, c in counts.items()) / n)
            assert row["share_C"] == pytest.approx(counts["C"] / n)
            assert row["acceptable_ci_low"] <= row["acceptable"] <= row["acceptable_ci_high"]
    assert tables["summary_single_turn"]["n"].tolist() == [50] * 3
    assert tables["summary_multi_turn"]["n"].tolist() == [52] * 3
    by_ability = tables["by_ability"]
    assert list(by_ability.columns) == ["ability", *TABLE_COLUMNS]
    for ability in ABILITIES:
        part = by_ability[by_ability.ability == ability].set_index("model")
        for model, counts in expected_counts(questions, lambda q, a=ability: a in q.abilities).items():
            assert {g: int(part.loc[model, g]) for g in "ABCD"} == counts, (ability, model)


def test_all_rule_counts_every_rating(known, questions):
    table = build_score_tables(combine_grades(known, "all"), questions, n_boot=0)["summary"].set_index("model")
    for model in MODELS:
        ratings = known[known.model_id == model]
        assert table.loc[model, "n"] == len(ratings) == 3 * 82
        assert table.loc[model, "n_answers"] == 82
        assert {g: int(table.loc[model, g]) for g in "ABCD"} == ratings.grade.value_counts().reindex(list("ABCD"), fill_value=0).to_dict()
        assert np.isnan(table.loc[model, "acceptable_ci_low"])  # no bootstrap asked


def test_median_takes_the_lower_middle_grade():
    grades = pd.DataFrame(
        {
            "annotator": ["a", "b", "a", "b", "c", "a"],
            "model_id": ["m"] * 6,
            "question_id": [1, 1, 2, 2, 2, 3],
            "grade": ["A", "B", "A", "D", "C", "B"],
            "score": [3, 2, 3, 0, 1, 2],
        }
    )
    units = combine_grades(grades, "median").set_index("question_id")
    assert units.grade.to_dict() == {1: "B", 2: "C", 3: "B"}
    assert units.n_ratings.to_dict() == {1: 2, 2: 3, 3: 1}
    assert answer_scores(grades, "all").set_index("question_id").score.to_dict() == {1: 2.5, 2: 4 / 3, 3: 2.0}


def test_bootstrap_replicates_equal_explicit_resampling_of_images(known, questions):
    units = combine_grades(known, "median")
    units = units[units.model_id == "alpha"].reset_index(drop=True)
    images = question_info(questions).loc[units.question_id, "image"].to_numpy()
    names = sorted(set(images))
    rng = np.random.default_rng(0)
    counts = bootstrap_counts(len(names), 30, rng)
    assert (counts.sum(axis=1) == len(names)).all()
    accept = np.array([[(units.score[images == n] >= 2).sum()] for n in names], dtype=float)
    size = np.array([[(images == n).sum()] for n in names], dtype=float)
    fast = ratio_bootstrap(counts, accept, size)[:, 0]
    for b in range(30):  # the slow way: list the drawn images' answers, repeated as drawn
        drawn = np.concatenate([np.repeat(units.score[images == n].to_numpy(), int(c)) for n, c in zip(names, counts[b], strict=True)])
        assert fast[b] == pytest.approx((drawn >= 2).mean())


def test_bootstrap_is_seeded(known, questions):
    units = combine_grades(known, "median")
    one = build_score_tables(units, questions, n_boot=200, seed=7)["summary"]
    two = build_score_tables(units, questions, n_boot=200, seed=7)["summary"]
    other = build_score_tables(units, questions, n_boot=200, seed=8)["summary"]
    pd.testing.assert_frame_equal(one, two)
    assert not one["mean_score_ci_low"].equals(other["mean_score_ci_low"])


def test_pairwise_counts_and_tests(known, questions):
    scores = answer_scores(known, "median")
    info = question_info(questions)
    table = pairwise_table(scores, info, list(MODELS), n_boot=100, seed=0)
    assert len(table) == 3
    wide = scores.pivot(index="question_id", columns="model_id", values="score")
    for row in table.itertuples():
        d = (wide[row.model_a] - wide[row.model_b]).to_numpy()
        assert (row.wins, row.ties, row.losses, row.n) == ((d > 0).sum(), (d == 0).sum(), (d < 0).sum(), 82)
        assert row.sign_test_p == pytest.approx(binomtest(row.wins, row.wins + row.losses).pvalue)
        # more than 25 non-zero differences: the normal approximation with tie and continuity corrections
        assert row.wilcoxon_p == pytest.approx(wilcoxon(d[d != 0], method="asymptotic", correction=True).pvalue, rel=1e-9)
        assert row.mean_diff == pytest.approx(d.mean())
        assert row.mean_diff_ci_low <= row.mean_diff <= row.mean_diff_ci_high
    assert (table.sign_test_p_holm >= table.sign_test_p).all()


def test_bradley_terry_maximises_the_likelihood():
    wins = np.array([[0, 7, 9, 5], [3, 0, 6, 4], [1, 4, 0, 2], [5, 6, 8, 0]], dtype=float)

    def nll(theta):
        t = np.r_[theta, -theta.sum()]
        diff = t[:, None] - t[None, :]
        return -(wins * (diff - np.logaddexp(0, diff))).sum()

    best = minimize(nll, np.zeros(3), method="BFGS", options={"gtol": 1e-10}).x
    expected = np.r_[best, -best.sum()]
    assert bradley_terry(wins, prior=0.0) == pytest.approx(expected, abs=1e-5)
    stacked = bradley_terry(np.stack([wins, wins.T]), prior=0.0)  # fitted together, row by row
    assert stacked[0] == pytest.approx(expected, abs=1e-5) and stacked[1] == pytest.approx(-expected, abs=1e-5)


def test_leaderboard_orders_models_and_brackets_strength(known, questions):
    scores = answer_scores(known, "median")
    board = leaderboard_table(scores, question_info(questions), list(MODELS), n_boot=200, seed=0)
    means = scores.groupby("model_id").score.mean()
    # Bradley-Terry order follows head-to-head wins; here it agrees with the mean grade
    assert board.model.tolist() == means.sort_values(ascending=False).index.tolist()
    assert board["rank"].tolist() == [1, 2, 3]
    assert (board.strength_ci_low <= board.strength).all() and (board.strength <= board.strength_ci_high).all()
    assert board.strength.sum() == pytest.approx(0.0, abs=1e-9)
