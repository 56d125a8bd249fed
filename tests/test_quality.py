"""owleval.quality: the rules on synthetic annotators, kappa against scikit-learn, Dawid-Skene against crowd-kit
(skipped without it) and by hand, the annotator table's columns, pairwise voter QC."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from owleval.errors import OwlEvalError
from owleval.quality import TABLE_COLUMNS, annotator_table
from owleval.quality.agreement import agreement_figures
from owleval.quality.dawid_skene import fit_dawid_skene
from owleval.quality.rules import resolve_rules
from owleval.quality.voters import voter_table

LETTERS = np.array(["D", "C", "B", "A"])
START = pd.Timestamp("2026-01-05T09:00:00Z")


def study(seed: int = 0, *, straight: str | None = None, speeder: str | None = None, checks_failed: dict | None = None) -> pd.DataFrame:
    """4 models x 40 questions, 6 annotators, 3 per answer, honest noise; named annotators misbehave."""
    rng = np.random.default_rng(seed)
    names = [f"a{i}" for i in range(6)]
    clock = dict.fromkeys(names, START)
    rows = []
    for m in range(4):
        for q in range(1, 41):
            true = int(np.clip(np.rint(rng.normal(0.8 + 0.5 * m, 0.9)), 0, 3))
            for name in rng.choice(names, size=3, replace=False):
                clock[name] += pd.Timedelta(seconds=2.0 if name == speeder else float(rng.uniform(15, 40)))
                g = int(np.clip(np.rint(true + rng.normal(0, 0.5)), 0, 3))
                grade = straight_grade if (straight_grade := "B") and name == straight else LETTERS[g]
                rows.append((name, f"m{m}", q, grade, clock[name].isoformat(), "regular", ""))
    for name, failed in (checks_failed or {}).items():
        for k in range(3):
            rows.append((name, "owleval:check", 50 + k, "A" if k < failed else "D", (clock[name] + pd.Timedelta(minutes=k + 1)).isoformat(),
                         "attention", "D"))  # fmt: skip
    return pd.DataFrame(rows, columns=["annotator", "model_id", "question_id", "grade", "graded_at", "item_kind", "expected_grade"])


def flags(table: pd.DataFrame) -> dict[str, set[str]]:
    return {r.annotator: set(filter(None, r.qc_flags.split(";"))) for r in table.itertuples()}


def test_rules_catch_a_straight_liner_a_speeder_and_failed_checks_and_leave_honest_raters_alone():
    grades = study(straight="a1", speeder="a2", checks_failed={"a3": 2, "a4": 1})
    table = annotator_table(grades)
    assert tuple(table.columns) == TABLE_COLUMNS
    got = flags(table)
    assert {"straight", "agreement"} <= got["a1"]
    assert "speed" in got["a2"] and table.set_index("annotator").loc["a2", "fast_share"] == 1.0
    assert got["a3"] == {"attention"} and got["a4"] == set() and got["a0"] == set() and got["a5"] == set()
    row = table.set_index("annotator").loc["a3"]
    assert (row.checks_n, row.checks_failed) == (3, 2)
    # blank, not 0, where there is nothing to compare: no gold, no retest
    assert table["gold_exact"].isna().all() and table["retest_same"].isna().all() and (table["gold_n"] == 0).all()
    # a threshold moved or a rule turned off changes the flags
    assert "attention" in flags(annotator_table(grades, rules=["attention=1"]))["a4"]
    assert flags(annotator_table(grades, rules=["straight=off", "agreement=off"]))["a1"] == set()


def test_rule_overrides_are_checked():
    with pytest.raises(OwlEvalError, match="no such rule"):
        resolve_rules(["gold_accuracy=0.7"])
    with pytest.raises(OwlEvalError, match="NAME=THRESHOLD"):
        resolve_rules(["gold"])
    with pytest.raises(OwlEvalError, match="must be a number"):
        resolve_rules(["gold=high"])
    rules = {r.name: r for r in resolve_rules(["gold=0.5", "gold_min_n=3"])}
    assert (rules["gold"].threshold, rules["gold"].min_count) == (0.5, 3)


def test_gold_figures_count_regular_and_gold_items_and_speed_is_blank_without_times():
    grades = pd.DataFrame(
        [("ann", "m", 1, "A", "", "regular", ""), ("ann", "m", 2, "C", "", "gold", "A"), ("ann", "m", 1, "B", "", "retest", ""),
         ("bob", "m", 1, "B", "", "regular", ""), ("bob", "m", 2, "A", "", "regular", ""), ("bob", "m", 3, "D", "", "onboarding", "B")],
        columns=["annotator", "model_id", "question_id", "grade", "graded_at", "item_kind", "expected_grade"],
    )  # fmt: skip
    gold = pd.DataFrame({"model_id": ["m", "m"], "question_id": [1, 2], "grade": ["A", "A"]})
    table = annotator_table(grades, gold=gold).set_index("annotator")
    # ann: regular A on q1 (exact), gold item C on q2 (2 off), retest B on q1 (1 off)
    assert table.loc["ann", "gold_n"] == 3 and table.loc["ann", "gold_exact"] == pytest.approx(1 / 3)
    assert table.loc["ann", "gold_within_one"] == pytest.approx(2 / 3) and table.loc["ann", "gold_mae"] == pytest.approx(1.0)
    assert (table.loc["ann", "retest_n"], table.loc["ann", "retest_same"]) == (1, 0.0)
    assert table.loc["ann", "n_grades"] == 1 and table.loc["bob", "n_grades"] == 2
    # without a gold file: the expected grades of gold and onboarding rows (q2 -> A, q3 -> B)
    own = annotator_table(grades).set_index("annotator")
    assert own.loc["bob", "gold_n"] == 2 and own.loc["bob", "gold_mae"] == pytest.approx(1.0)
    assert table[["median_seconds", "fast_share", "longest_run"]].isna().all().all()


def test_kappa_equals_scikit_learn_against_the_lower_median_of_the_others():
    from sklearn.metrics import cohen_kappa_score

    grades = study(seed=3)
    grades = grades.assign(score=grades["grade"].map({"A": 3, "B": 2, "C": 1, "D": 0}))
    mine, others = grades[grades.annotator == "a0"], grades[grades.annotator != "a0"]
    got = agreement_figures(grades, None, None, n_boot=200).loc["a0"]
    ref = others.sort_values("score").groupby(["model_id", "question_id"])["score"].apply(lambda s: s.iloc[(len(s) - 1) // 2])
    pairs = mine.set_index(["model_id", "question_id"])["score"].to_frame().join(ref.rename("ref"), how="inner")
    assert got["kappa_n"] == len(pairs)
    assert got["kappa_w"] == pytest.approx(cohen_kappa_score(pairs["score"], pairs["ref"], weights="quadratic", labels=[0, 1, 2, 3]), abs=1e-12)
    assert got["kappa_ci_low"] < got["kappa_w"] < got["kappa_ci_high"]


def test_judge_is_a_rater_row_with_kappa_against_the_people():
    grades = study(seed=4)
    judge = grades[grades.annotator == "a0"].assign(annotator="judge:gpt")[["annotator", "model_id", "question_id", "grade"]]
    table = annotator_table(grades, judges=judge).set_index("annotator")
    assert "judge:gpt" in table.index and table.loc["judge:gpt", "n_grades"] == (grades.annotator == "a0").sum()
    assert table.loc["judge:gpt", "kappa_w"] > 0.5 and pd.isna(table.loc["judge:gpt", "median_seconds"])


def fixed_ds_data() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    rows = []
    for m in ("m1", "m2"):
        for q in range(1, 41):
            t = int(rng.integers(0, 4))
            for a in rng.choice(6, size=3, replace=False):
                g = t if rng.random() < 0.55 + 0.07 * a else int(rng.integers(0, 4))
                rows.append((f"a{a}", m, q, LETTERS[3 - g if a == 5 else g]))
    return pd.DataFrame(rows, columns=["annotator", "model_id", "question_id", "grade"])


def test_dawid_skene_by_hand_unanimous_answers_and_proper_distributions():
    grades = pd.DataFrame(
        [(a, "m", q, g) for q, g in ((1, "A"), (2, "B"), (3, "C"), (4, "D")) for a in ("x", "y", "z")],
        columns=["annotator", "model_id", "question_id", "grade"],
    )
    fit = fit_dawid_skene(grades)
    post = fit.posterior.set_index("question_id")
    # everyone agrees: each answer's posterior sits on its grade; each rater's confusion matrix is the identity
    for q, g in ((1, "A"), (2, "B"), (3, "C"), (4, "D")):
        assert post.loc[q, f"p_{g}"] == pytest.approx(1.0, abs=1e-8)
    assert np.allclose(fit.confusion["x"], np.eye(4), atol=1e-8)
    mixed = fit_dawid_skene(fixed_ds_data(), ordinal=True)
    probs = mixed.posterior[["p_A", "p_B", "p_C", "p_D"]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1.0) and all(np.allclose(c.sum(axis=0), 1.0) for c in mixed.confusion.values())


def _crowdkit():
    target = Path(__file__).resolve().parent.parent / ".crowdkit"
    if target.is_dir() and str(target) not in sys.path:
        sys.path.append(str(target))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip("crowdkit.aggregation", reason="crowd-kit 1.4.2 not installed (bash scripts/setup_crowdkit.sh)")


def test_dawid_skene_equals_crowd_kit():
    aggregation = _crowdkit()
    grades = fixed_ds_data()
    mine = fit_dawid_skene(grades).posterior
    data = pd.DataFrame({"task": grades.model_id + "/" + grades.question_id.astype(str), "worker": grades.annotator,
                         "label": grades.grade.map({"A": 3, "B": 2, "C": 1, "D": 0})})  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = aggregation.DawidSkene(n_iter=100, tol=1e-5).fit(data).probas_
    ours = mine.set_index(mine.model_id + "/" + mine.question_id.astype(str))[["p_D", "p_C", "p_B", "p_A"]]
    assert np.abs(ours.to_numpy() - ref.loc[ours.index, [0, 1, 2, 3]].to_numpy()).max() < 1e-6


def test_voter_qc_flags_position_bias_and_votes_against_the_others():
    rng = np.random.default_rng(0)
    strength = {"m0": 0.0, "m1": 1.0, "m2": 2.0}
    rows = []
    for q in range(1, 61):
        for a, b in (("m0", "m1"), ("m0", "m2"), ("m1", "m2")):
            for who in ("v1", "v2", "v3", "lefty", "contrary"):
                left = a if rng.random() < 0.5 else b
                p_a = 1 / (1 + np.exp(strength[b] - strength[a]))
                winner = "model_a" if rng.random() < p_a else "model_b"
                if who == "lefty":
                    winner = "model_a" if left == a else "model_b"
                if who == "contrary":
                    winner = "model_b" if strength[a] < strength[b] else "model_a"
                    winner = "model_a" if winner == "model_b" else "model_b"
                rows.append((who, q, a, b, left, winner, 1.0 if winner == "model_a" else 0.0, "regular", ""))
    votes = pd.DataFrame(rows, columns=["annotator", "question_id", "model_a", "model_b", "left", "winner", "outcome", "item_kind", "expected_winner"])
    table, _ = voter_table(votes)
    got = {r.annotator: set(filter(None, r.qc_flags.split(";"))) for r in table.itertuples()}
    assert "vote_position" in got["lefty"] and "vote_anomaly" in got["contrary"]
    assert got["v1"] == got["v2"] == got["v3"] == set()
    assert table.set_index("annotator").loc["lefty", "left_share"] == 1.0
