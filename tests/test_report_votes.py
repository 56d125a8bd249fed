"""Pairwise votes in the report: the votes.csv reader's errors, the rankings' conventions, agreement, and
`owleval report --votes`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from owleval.errors import InputFileError, OwlEvalError
from owleval.questions import load_questions
from owleval.report.arena import CATEGORY, MIN_PAIR_VOTES, agreement_rows, build_arena
from owleval.report.compare import BT_PRIOR
from owleval.stats import bradley_terry
from owleval.report.tables import question_info
from owleval.records.votes import OUTCOME_SCORE, read_judge_votes, read_votes

from tests.report_helpers import data_dir, synthetic_grades, write_grades_csv
from tests.vote_helpers import judge_votes_from, synthetic_votes, write_votes

HEADER = "annotator,question_id,model_a,model_b,left,winner,reason,voted_at\n"
GOOD = "ann,1,m1,m2,m2,model_a,clear,2026-01-01T00:00:00Z\n"


@pytest.fixture(scope="module")
def questions():
    return load_questions(data_dir())


@pytest.fixture(scope="module")
def info(questions):
    return question_info(questions)


def _with_outcome(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(outcome=frame["winner"].map(OUTCOME_SCORE))


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        ("ann,1,m1,m9,m1,model_a,,\n", "model_b", "'m9' is not among the answers in answers/"),
        ("ann,9999,m1,m2,m1,model_a,,\n", "question_id", "unknown question id 9999"),
        ("ann,1,m1,m2,m1,left,,\n", "winner", "'left' is not a vote; allowed model_a, model_b, tie, both_bad"),
        ("ann,1,m1,m1,m1,tie,,\n", "model_b", "a pair of one model with itself"),
        ("ann,1,m2,m1,m1,tie,,\n", "model_a", "must sort before model_b"),
        ("ann,1,m1,m2,m3,tie,,\n", "left", "neither model_a nor model_b"),
        ("ann,1,m1,m2,m1,tie,,\n", "winner", "twice (first on line 2)"),
    ],
)
def test_bad_vote_names_file_line_and_field(tmp_path, questions, line, field, words):
    path = tmp_path / "votes.csv"
    path.write_text(HEADER + GOOD + line, encoding="utf-8")
    with pytest.raises(InputFileError) as err:
        read_votes(path, questions, models={"m1", "m2", "m3"}, models_origin="answers/")
    assert f"{path}:3 [{field}]" in str(err.value)
    assert words in str(err.value)


def test_every_problem_is_reported_and_a_missing_column_fails_at_once(tmp_path, questions):
    path = tmp_path / "votes.csv"
    path.write_text(HEADER + "ann,1,m1,m2,m1,won,,\nann,2,x,x,x,tie,,\n", encoding="utf-8")
    with pytest.raises(InputFileError) as err:
        read_votes(path, questions)
    assert len(err.value.problems) == 2
    path.write_text("annotator,question_id,model_a,model_b,left\nann,1,m1,m2,m1\n", encoding="utf-8")
    with pytest.raises(InputFileError, match=r"votes.csv:1 \[winner\]: error: missing column"):
        read_votes(path, questions)


def test_formula_quoted_cells_are_read_back(tmp_path, questions):
    path = tmp_path / "votes.csv"
    path.write_text(HEADER + "'=ann,1,m1,m2,m2,tie,'+sure,\n", encoding="utf-8")
    frame = read_votes(path, questions)
    assert frame.loc[0, "annotator"] == "=ann" and frame.loc[0, "reason"] == "+sure" and frame.loc[0, "outcome"] == 0.5


def test_judge_votes_hold_one_judge_and_read_position_consistency(tmp_path, questions):
    folder = tmp_path / "judge"
    folder.mkdir()
    (folder / "votes.csv").write_text(HEADER + "judge:x,1,m1,m2,m1,model_a,,\njudge:x,2,m1,m2,m2,tie,,\n", encoding="utf-8")
    (folder / "meta.json").write_text(json.dumps({"position_consistency": 0.625}), encoding="utf-8")
    judged = read_judge_votes(folder, questions)
    assert judged.annotator == "judge:x" and judged.position_consistency == 0.625 and len(judged.votes) == 2
    (folder / "meta.json").write_text(json.dumps({"position_consistency": {"pairs": 40, "agree": 30, "rate": 0.75, "ci95": [0.6, 0.86]}}))
    judged = read_judge_votes(folder, questions)
    assert (judged.position_consistency, judged.consistency_pairs, judged.consistency_ci) == (0.75, 40, (0.6, 0.86))
    (folder / "votes.csv").write_text(HEADER + "judge:x,1,m1,m2,m1,model_a,,\njudge:y,2,m1,m2,m2,tie,,\n", encoding="utf-8")
    with pytest.raises(InputFileError, match="holds one judge's votes; this one has 2"):
        read_judge_votes(folder, questions)
    with pytest.raises(OwlEvalError, match="no such file"):
        read_judge_votes(tmp_path / "nowhere", questions)


def test_ties_and_both_bad_count_half_a_win_and_both_bad_is_counted_apart(info):
    rows = [("ann", q, "a", "b", "a", w, "", "") for q, w in zip(range(1, 13), ["model_a"] * 6 + ["tie"] * 3 + ["both_bad"] * 3, strict=True)]
    votes = _with_outcome(pd.DataFrame(rows, columns=["annotator", "question_id", "model_a", "model_b", "left", "winner", "reason", "voted_at"]))
    result = build_arena(votes, None, info, n_boot=50, seed=0)
    pair = result.tables["arena_pairs"].iloc[0]
    assert (pair["a_wins"], pair["b_wins"], pair["ties"], pair["both_bad"], pair["n_votes"]) == (6, 0, 3, 3, 12)
    assert pair["a_win_rate"] == pytest.approx(9 / 12)
    assert result.meta["n_human_both_bad"] == 3
    # the ranking is the shared Bradley-Terry fit (with the leaderboard's prior) of 9 wins to 3
    expected = bradley_terry(np.array([[0.0, 9.0], [3.0, 0.0]]), prior=BT_PRIOR)
    arena = result.tables["arena"].set_index("model")
    assert arena.loc[["a", "b"], "strength"].to_numpy() == pytest.approx(expected)
    # "both bad" ranks exactly as a tie
    as_ties = build_arena(_with_outcome(votes.replace({"winner": {"both_bad": "tie"}})), None, info, n_boot=50, seed=0)
    assert as_ties.tables["arena"]["strength"].to_numpy() == pytest.approx(result.tables["arena"]["strength"].to_numpy())


def test_known_strengths_are_recovered_and_ranks_follow_intervals(questions, info):
    strengths = {"w": 0.0, "x": 0.1, "y": 1.5, "z": 3.0}
    votes = _with_outcome(synthetic_votes([q.question_id for q in questions], strengths, ["a1", "a2"], seed=5))
    result = build_arena(votes, None, info, n_boot=300, seed=0)
    arena = result.tables["arena"]
    assert arena["model"].tolist() == ["z", "y", "x", "w"] or arena["model"].tolist() == ["z", "y", "w", "x"]
    assert arena["strength"].mean() == pytest.approx(0.0, abs=1e-9)
    rank = arena.set_index("model")["rank"]
    assert rank["z"] == 1 and rank["y"] == 2 and rank["x"] == rank["w"] == 3  # w and x overlap: tied
    adjacent = result.tables["arena_adjacent"]
    assert len(adjacent) == 3
    z_y = adjacent.iloc[0]
    assert (z_y["model_higher"], z_y["model_lower"]) == ("z", "y") and z_y["p_holm"] < 0.05 and z_y["diff_ci_low"] > 0
    assert adjacent.iloc[2]["p_bootstrap"] > 0.05  # w and x: not distinguishable


def test_pairs_with_too_few_votes_are_flagged(questions, info):
    votes = _with_outcome(synthetic_votes([q.question_id for q in questions][:8], {"a": 0, "b": 1, "c": 2}, ["ann"], seed=3))
    pairs = build_arena(votes, None, info, n_boot=50, seed=0).tables["arena_pairs"]
    assert (pairs["n_votes"] == 8).all() and pairs["too_few"].all() and 8 < MIN_PAIR_VOTES


def test_kappa_equals_scikit_learn_and_agreement_has_an_interval(questions, info):
    rng = np.random.default_rng(0)
    qids = np.array([q.question_id for q in questions])
    first = rng.integers(0, 3, qids.size)
    second = np.where(rng.random(qids.size) < 0.7, first, rng.integers(0, 3, qids.size))
    rows = {r["measure"]: r for r in agreement_rows(first, second, qids, info, comparison="x", n_boot=300, seed=0)}
    assert rows["cohen_kappa"]["value"] == pytest.approx(cohen_kappa_score(first, second))
    assert rows["exact_agreement"]["value"] == pytest.approx(np.mean(first == second))
    for r in rows.values():
        assert r["ci_low"] < r["value"] < r["ci_high"] and r["n"] == qids.size
    few = agreement_rows(first[:5], second[:5], qids[:5], info, comparison="x", n_boot=100, seed=0)
    assert all(np.isnan(r["ci_low"]) and "too few" in r["note"] for r in few)


def test_judge_agreement_counts_both_bad_as_a_tie(info):
    cols = ["annotator", "question_id", "model_a", "model_b", "left", "winner", "reason", "voted_at"]
    human = _with_outcome(pd.DataFrame([("ann", 1, "a", "b", "a", "both_bad", "", ""), ("ann", 2, "a", "b", "a", "model_a", "", ""),
                                        ("ann", 3, "a", "b", "a", "model_b", "", "")], columns=cols))  # fmt: skip
    judge = _with_outcome(pd.DataFrame([("judge:j", 1, "a", "b", "a", "tie", "", ""), ("judge:j", 2, "a", "b", "a", "model_b", "", ""),
                                        ("judge:j", 4, "a", "b", "a", "model_b", "", "")], columns=cols))  # fmt: skip
    result = build_arena(human, judge, info, n_boot=20, seed=0)
    row = result.tables["arena_agreement"].set_index("measure").loc["exact_agreement"]
    assert row["n"] == 2 and row["value"] == 0.5  # question 1 agrees (both bad ~ tie), 2 does not; 3 and 4 unpaired
    assert CATEGORY["both_bad"] == CATEGORY["tie"]


def _run(args: list[str]) -> tuple[int, str]:
    from typer.testing import CliRunner

    from owleval.cli import app

    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output + (str(result.exception) if result.exception and result.exit_code not in (0, 1, 2) else "")


@pytest.fixture(scope="module")
def vote_files(tmp_path_factory, questions):
    root = tmp_path_factory.mktemp("votes")
    strengths = {"m0": 0.0, "m1": 0.5, "m2": 1.0}
    truth = synthetic_votes([q.question_id for q in questions], strengths, ["ann1"], seed=1)
    human = truth[np.random.default_rng(2).random(len(truth)) < 0.4]
    write_votes(human, root / "votes.csv")
    write_votes(judge_votes_from(truth, accuracy=0.85, seed=9), root / "judge" / "votes.csv")
    meta = {"position_consistency": {"pairs": 200, "agree": 160, "rate": 0.8, "ci95": [0.74, 0.85]}}  # as `judge --pairwise` writes
    (root / "judge" / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    write_grades_csv(synthetic_grades(questions, sorted(strengths), ["g1", "g2"]), root / "grades.csv")
    return root


def test_report_from_votes_alone(vote_files, tmp_path, monkeypatch):
    monkeypatch.setenv("OWLEVAL_DATA", str(data_dir()))
    out = tmp_path / "r"
    code, output = _run(["report", "--votes", str(vote_files / "votes.csv"), "--judge-votes", str(vote_files / "judge"), "--out", str(out),
                         "--bootstrap", "200"])  # fmt: skip
    assert code == 0, output
    arena = pd.read_csv(out / "arena.csv")
    assert list(arena.columns) == ["model", "source", "strength", "ci_low", "ci_high", "rank", "rank_low", "rank_high", "n_human_votes",
                                   "n_judge_votes", "ref_coef", "ref_ci_low", "ref_ci_high", "note"]
    assert sorted(arena["source"].unique()) == ["human", "judge", "ppi"]
    assert arena.groupby("source")["strength"].mean().abs().max() < 1e-9
    assert arena[arena["source"] != "ppi"]["ref_coef"].isna().all() and arena[arena["source"] == "ppi"]["ref_coef"].notna().all()
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "These strengths have no prior" in md and "position consistency 80.0% [74.0%, 85.0%] (n = 200)" in md
    assert "judge vs human votes" in (out / "arena_agreement.csv").read_text(encoding="utf-8")
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Human-anchored ranking (PPI)" in html and "scores.csv" not in {p.name for p in out.iterdir()}


def test_report_with_grades_and_votes_compares_them(vote_files, tmp_path, monkeypatch):
    monkeypatch.setenv("OWLEVAL_DATA", str(data_dir()))
    out = tmp_path / "r"
    code, output = _run(["report", "--grades", str(vote_files / "grades.csv"), "--votes", str(vote_files / "votes.csv"), "--out", str(out),
                         "--bootstrap", "100"])  # fmt: skip
    assert code == 0, output
    agreement = pd.read_csv(out / "arena_agreement.csv")
    assert agreement["comparison"].tolist() == ["A-D grades vs human votes"] * 2
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "## Leaderboard (Bradley–Terry)" in md and "## Pairwise votes" in md
    assert (out / "scores.csv").is_file() and (out / "arena.csv").is_file()


def test_report_bad_votes_fail_before_writing(vote_files, tmp_path, monkeypatch):
    monkeypatch.setenv("OWLEVAL_DATA", str(data_dir()))
    bad = tmp_path / "votes.csv"
    bad.write_text(HEADER + "ann,1,m0,m1,m0,maybe,,\n", encoding="utf-8")
    out = tmp_path / "r"
    code, output = _run(["report", "--votes", str(bad), "--out", str(out)])
    assert code != 0 and f"{bad}:2 [winner]" in " ".join(output.split()) and not out.exists()
    code, output = _run(["report", "--out", str(out)])
    assert code != 0 and "--grades" in output and "--votes" in output
    code, output = _run(["report", "--votes", str(vote_files / "votes.csv"), "--judge", str(vote_files / "judge"), "--out", str(out)])
    assert code != 0 and "give --grades too" in output and not out.exists()
    code, output = _run(["report", "--votes", str(vote_files / "votes.csv"), "--against", "nope", "--out", str(out)])
    assert code != 0 and "--against 'nope'" in " ".join(output.split()) and not out.exists()


def test_missing_vote_files_fail_at_once(vote_files, tmp_path, monkeypatch):
    monkeypatch.setenv("OWLEVAL_DATA", str(data_dir()))
    out = tmp_path / "r"
    code, output = _run(["report", "--grades", str(vote_files / "grades.csv"), "--votes", str(tmp_path / "nope.csv"), "--out", str(out)])
    assert code == 1 and "nope.csv: no such file" in " ".join(output.split()) and not out.exists()
    code, output = _run(["report", "--votes", str(vote_files / "votes.csv"), "--judge-votes", str(tmp_path / "gone"), "--out", str(out)])
    assert code == 1 and "--judge-votes" in output and "no such file" in " ".join(output.split()) and not out.exists()


def test_untrusted_model_names_stay_inert(questions, tmp_path, monkeypatch):
    monkeypatch.setenv("OWLEVAL_DATA", str(data_dir()))
    names = {"<img src=x onerror=alert(1)>": 0.0, "=HYPERLINK(1)": 1.0, "plain": 0.5}
    votes = synthetic_votes([q.question_id for q in questions][:20], names, ["ann"], seed=4)
    path = write_votes(votes, tmp_path / "votes.csv")
    out = tmp_path / "r"
    code, output = _run(["report", "--votes", str(path), "--out", str(out), "--bootstrap", "50"])
    assert code == 0, output
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "\n=HYPERLINK" not in (out / "arena.csv").read_text(encoding="utf-8")  # formula-quoted by csvio


def test_a_model_only_the_judge_voted_on_gets_no_human_row(info):
    cols = ["annotator", "question_id", "model_a", "model_b", "left", "winner", "reason", "voted_at"]
    human = _with_outcome(pd.DataFrame([("ann", q, "a", "b", "a", "model_a", "", "") for q in range(1, 6)], columns=cols))
    judge = _with_outcome(pd.DataFrame([("judge:j", q, "a", "c", "a", "model_b", "", "") for q in range(1, 6)], columns=cols))
    arena = build_arena(human, judge, info, n_boot=20, seed=0).tables["arena"]
    assert sorted(arena[arena["source"] == "human"]["model"]) == ["a", "b"]
    assert sorted(arena[arena["source"] == "judge"]["model"]) == ["a", "c"]


def test_a_model_with_too_few_votes_is_not_ranked(info):
    cols = ["annotator", "question_id", "model_a", "model_b", "left", "winner", "reason", "voted_at"]
    rows = [("ann", q, "a", "b", "a", "model_a" if q % 3 else "model_b", "", "") for q in range(1, 31)]
    rows += [("ann", q, "a", "c", "a", "model_b", "", "") for q in range(1, 4)]  # c: 3 votes, fewer than 5
    arena = build_arena(_with_outcome(pd.DataFrame(rows, columns=cols)), None, info, n_boot=100, seed=0).tables["arena"].set_index("model")
    assert pd.isna(arena.loc["c", "rank"]) and arena.loc["c", "n_human_votes"] == 3 and arena.loc["c", "n_judge_votes"] == 0
    assert arena.loc["a", "rank"] == 1 and not pd.isna(arena.loc["b", "rank"])
