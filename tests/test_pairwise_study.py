"""Pairwise studies: pair selection, the study file (schema 3), queues and sides, votes in and out."""

from __future__ import annotations

import csv
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from owleval.cli import app
from owleval.errors import InputFileError, OwlEvalError
from owleval.study.queue import load_queue, record_grade
from owleval.study.store import SCHEMA_VERSION, Store
from owleval.study.manage import add_annotator, create_study, refresh_study
from owleval.study.pairs import PairDesign, design_from_flags, select_pairs
from owleval.study.pair_queue import StaleVoteError, load_pair_queue, next_unvoted, pair_screen, record_vote
from owleval.records.votes import VOTE_COLUMNS
from owleval.study.votes import VOTES_CSV_COLUMNS, current_votes_frame, read_votes
from owleval.questions import load_questions
from tests.grading_helpers import MODELS, QIDS, default_text, make_study, write_answer_files
from tests.qc_helpers import copy_study, schema_3_study_file  # noqa: F401 (a fixture)

runner = CliRunner()


@pytest.fixture
def questions(owl_data: Path):
    return list(load_questions(owl_data))


def _ann(store: Store, name: str = "ann") -> int:
    return store.conn.execute("SELECT annotator_id FROM annotators WHERE name = ?", (name,)).fetchone()[0]


def _answered(models, qids=range(1, 83)):
    return {m: set(qids) for m in models}


# -- which pairs ----------------------------------------------------------------------------------------------------

def test_all_against_and_balanced_per_question_pairs(questions) -> None:
    models = [f"m{i}" for i in range(6)]
    every = select_pairs(_answered(models), questions, PairDesign("all"))
    assert len(every) == 82 * 15 and all(a < b for _, a, b in every)
    against = select_pairs(_answered(models), questions, PairDesign("against", against="m3"))
    assert len(against) == 82 * 5 and all("m3" in (a, b) for _, a, b in against)
    balanced = select_pairs(_answered(models), questions, PairDesign("per_question", per_question=3, seed=4))
    assert Counter(q for q, _, _ in balanced) == {q: 3 for q in range(1, 83)}
    per_pair = Counter((a, b) for _, a, b in balanced)
    assert len(per_pair) == 15 and max(per_pair.values()) - min(per_pair.values()) <= 1, per_pair
    assert balanced == select_pairs(_answered(models), questions, PairDesign("per_question", per_question=3, seed=4))
    assert balanced != select_pairs(_answered(models), questions, PairDesign("per_question", per_question=3, seed=5))
    # only questions both models answered
    partial = select_pairs({"m0": {1, 2, 3}, "m1": {2, 3, 4}}, questions, PairDesign("all"))
    assert partial == [(2, "m0", "m1"), (3, "m0", "m1")]


def test_sample_is_a_stratified_subset_of_the_judged_pairs(questions) -> None:
    models = ["m0", "m1", "m2"]
    full = select_pairs(_answered(models), questions, PairDesign("per_question", per_question=2, seed=1))
    drawn = select_pairs(_answered(models), questions, PairDesign("per_question", per_question=2, seed=1, sample=10))
    assert set(drawn) <= set(full)
    assert Counter((a, b) for _, a, b in drawn) == {p: 10 for p in {(a, b) for _, a, b in full}}
    turn = {q.question_id: q.turn_type for q in questions}
    assert {turn[q] for q, _, _ in drawn} == {"single", "first", "later"}, "every turn type is drawn"


def test_pair_flags_are_checked() -> None:
    with pytest.raises(OwlEvalError, match="choose one of"):
        design_from_flags("all", "m1", None, None, 0)
    with pytest.raises(OwlEvalError, match="--pairs takes 'all'"):
        design_from_flags("some", None, None, None, 0)
    with pytest.raises(OwlEvalError, match="--against nobody: no answers of that model"):
        select_pairs(_answered(["a", "b"]), [], PairDesign("against", against="nobody"))
    with pytest.raises(OwlEvalError, match="at least two models"):
        select_pairs(_answered(["a"]), [], PairDesign("all"))


# -- the study ------------------------------------------------------------------------------------------------------

def _pair_study(tmp_path: Path, owl_data: Path, annotators=("ann", "bob"), text=default_text, **design):
    answers = write_answer_files(tmp_path / "answers", owl_data, MODELS, QIDS, text)
    created = create_study(tmp_path / "pairs.sqlite", answers, annotators=annotators, data_dir=owl_data,
                           pairwise=PairDesign(**design))
    return created, Store(created.path)


def test_a_pairwise_study_queues_every_pair_with_sides_drawn_per_annotator(tmp_path: Path, owl_data: Path) -> None:
    created, store = _pair_study(tmp_path, owl_data, annotators=("ann", "bob", "cy"))
    # question 32's answer is the same hostile text for every model (see grading_helpers): 3 ties, not asked
    assert created.pairs["asked"] == 12 and created.pairs["identical"] == 3
    assert store.meta()["schema_version"] == str(SCHEMA_VERSION) == "4"
    assert store.conn.execute("SELECT COUNT(*) FROM assignments").fetchone()[0] == 0, "no A-D work in a pairwise study"
    queues = {n: load_pair_queue(store, _ann(store, n)) for n in ("ann", "bob", "cy")}
    assert all(sorted((i.question_id, i.model_a, i.model_b) for i in q) == sorted((i.question_id, i.model_a, i.model_b)
               for i in queues["ann"]) for q in queues.values())
    assert [i.pair_id for i in queues["ann"]] != [i.pair_id for i in queues["bob"]], "each annotator has an own order"
    sides = Counter((i.left_model, n) for n, q in queues.items() for i in q)
    assert all(sides[(m, n)] > 0 for m in MODELS for n in queues), "every model is shown on the left to everyone"
    lefts = {(i.pair_id, n): i.left_model for n, q in queues.items() for i in q}
    assert len({tuple(lefts[(p, n)] for n in queues) for p in {i.pair_id for i in queues["ann"]}}) > 1
    again = load_pair_queue(store, _ann(store, "ann"))
    assert [(i.pair_id, i.left_model) for i in again] == [(i.pair_id, i.left_model) for i in queues["ann"]], "stored, not redrawn"
    store.close()


def test_the_screen_shows_each_side_with_its_own_history_and_no_model_id(tmp_path: Path, owl_data: Path) -> None:
    _, store = _pair_study(tmp_path, owl_data)
    ann = _ann(store)
    item = next(i for i in load_pair_queue(store, ann) if i.question_id == 8)
    screen = pair_screen(store, ann, item, owl_data)
    right = item.model_b if item.left_model == item.model_a else item.model_a
    assert screen.left.answer == default_text(item.left_model, 8) and screen.right.answer == default_text(right, 8)
    assert [t.answer for t in screen.left.earlier] == [default_text(item.left_model, q) for q in (6, 7)]
    assert [t.answer for t in screen.right.earlier] == [default_text(right, q) for q in (6, 7)]
    assert screen.image_path.is_file()
    assert not any(m in repr(screen) for m in MODELS), "a model id on the voting screen"
    store.close()


def test_record_vote_is_idempotent_ordered_and_refuses_a_stale_view(tmp_path: Path, owl_data: Path) -> None:
    _, store = _pair_study(tmp_path, owl_data)
    ann = _ann(store)
    item = load_pair_queue(store, ann)[0]
    first = record_vote(store, ann, item.pair_id, "left", "clearer", window="w1", seq=1, seen=0)
    assert record_vote(store, ann, item.pair_id, "left", "clearer", window="w1", seq=1, seen=0) == first, "redelivered"
    assert record_vote(store, ann, item.pair_id, "left", "clearer", window="w1", seq=2, seen=0) == first, "a double click"
    expected = "model_a" if item.left_model == item.model_a else "model_b"
    assert first.winner == expected and first.choice == "left"
    with pytest.raises(StaleVoteError):
        record_vote(store, ann, item.pair_id, "right", window="w2", seq=1, seen=0)
    later = record_vote(store, ann, item.pair_id, "tie", window="w2", seq=2, seen=first.event_id)
    assert load_pair_queue(store, ann)[0].choice == "tie" == later.winner
    assert record_vote(store, ann, item.pair_id, "both_bad", request_id="r1") == record_vote(store, ann, item.pair_id, "right", request_id="r1")
    assert next_unvoted(load_pair_queue(store, ann)) == 1
    with pytest.raises(OwlEvalError, match="must be one of"):
        record_vote(store, ann, item.pair_id, "model_a")
    other = [i for i in load_pair_queue(store, _ann(store, "bob"))]
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.conn.execute("DELETE FROM vote_events")
    assert [h.winner for h in pair_screen(store, ann, load_pair_queue(store, ann)[0], owl_data).history] == [expected, "tie", "both_bad"]
    assert len(other) == 12
    store.close()


def test_identical_answers_are_a_tie_not_asked(tmp_path: Path, owl_data: Path) -> None:
    same = lambda model, qid: "the same words" if qid == 6 and model != MODELS[2] else default_text(model, qid)  # noqa: E731
    created, store = _pair_study(tmp_path, owl_data, text=same)
    assert created.pairs["identical"] == 4 and created.pairs["asked"] == 11
    assert all(not (i.question_id == 6 and {i.model_a, i.model_b} == set(MODELS[:2])) for i in load_pair_queue(store, _ann(store)))
    store.close()


def test_overlap_add_annotator_and_refresh(tmp_path: Path, owl_data: Path) -> None:
    answers = write_answer_files(tmp_path / "answers", owl_data, MODELS, QIDS)
    created = create_study(tmp_path / "p.sqlite", answers, annotators=["ann", "bob", "cy"], overlap=2, data_dir=owl_data,
                           pairwise=PairDesign("against", against=MODELS[0]))
    store = Store(created.path)
    holders = Counter(i.pair_id for n in ("ann", "bob", "cy") for i in load_pair_queue(store, _ann(store, n)))
    assert len(holders) == 8 and set(holders.values()) == {2}  # 10 items, 2 of them identical texts
    add_annotator(store, "dee")
    holders = Counter(i.pair_id for n in ("ann", "bob", "cy", "dee") for i in load_pair_queue(store, _ann(store, n)))
    assert set(holders.values()) == {2} and len(load_pair_queue(store, _ann(store, "dee"))) == 4

    ann = _ann(store)
    voted = next(i for i in load_pair_queue(store, ann) if MODELS[1] in (i.model_a, i.model_b))
    record_vote(store, ann, voted.pair_id, "left")
    changed = tmp_path / "changed"
    write_answer_files(changed, owl_data, [MODELS[1]], QIDS, lambda m, q: f"new answer {q}")
    summary = refresh_study(store, [changed])
    assert summary.pairs.changed == 5 and summary.pairs.kept == 5 and summary.pairs.added == 0
    assert summary.pairs.identical == 1, "question 32 now differs between the changed model and the baseline"
    now = {(i.question_id, i.model_a, i.model_b): i for i in load_pair_queue(store, ann)}
    key = (voted.question_id, voted.model_a, voted.model_b)
    assert now[key].pair_id != voted.pair_id and now[key].choice is None, "a vote on the old text does not carry over"
    assert store.conn.execute("SELECT COUNT(*) FROM vote_events WHERE pair_id = ?", (voted.pair_id,)).fetchone()[0] == 1
    store.close()


def test_an_ad_study_of_schema_2_opens_migrated_with_its_grades(tmp_path: Path, schema_3_study_file: Path) -> None:
    path = copy_study(schema_3_study_file, tmp_path / "old.sqlite")  # ann graded her first answer C
    conn = sqlite3.connect(path)
    with conn:
        for table in ("vote_events", "pair_assignments", "pair_items"):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.close()
    store = Store(path)
    assert store.meta()["schema_version"] == "4" and load_queue(store, _ann(store))[0].grade == "C"
    assert store.conn.execute("SELECT COUNT(*) FROM pair_items").fetchone()[0] == 0
    store.close()


# -- votes out and in -------------------------------------------------------------------------------------------------

def _cli_study(tmp_path: Path, owl_data: Path, name: str, *extra: str) -> Path:
    answers = tmp_path / "answers"
    if not answers.exists():
        write_answer_files(answers, owl_data, MODELS, QIDS)
    db = tmp_path / name
    result = runner.invoke(app, ["study", "create", "--pairwise", "--db", str(db), "--answers", str(answers),
                                 "--annotators", "ann,bob", "--data", str(owl_data), *extra])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return db


def test_cli_create_status_export_and_import_round_trip(tmp_path: Path, owl_data: Path) -> None:
    db = _cli_study(tmp_path, owl_data, "a.sqlite", "--pairs-per-question", "2", "--seed", "3")
    added = runner.invoke(app, ["study", "add-annotator", "--db", str(db), "cy"])
    assert added.exit_code == 0 and "added cy with 8 pairs to vote on" in added.output, added.output
    status = runner.invoke(app, ["study", "status", "--db", str(db)])
    assert status.exit_code == 0 and "2 model pairs per question" in status.output and "Per model pair" in status.output
    store = Store(db)
    for name in ("ann", "bob"):  # cy votes on nothing
        who = _ann(store, name)
        for n, item in enumerate(load_pair_queue(store, who)):
            record_vote(store, who, item.pair_id, ("left", "right", "tie", "both_bad")[n % 4], f'=SUM({n}) reason, "quoted"\nline two')
    store.close()
    out = tmp_path / "votes.csv"
    result = runner.invoke(app, ["grades", "export", "--db", str(db), "--out", str(out)])
    assert result.exit_code == 0 and "wrote 16 votes" in result.output, result.output
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == VOTES_CSV_COLUMNS and len(rows) == 16 and {r["item_kind"] for r in rows} == {"regular"}
    assert {r["winner"] for r in rows} == {"model_a", "model_b", "tie", "both_bad"}
    assert all(r["left"] in (r["model_a"], r["model_b"]) and r["model_a"] < r["model_b"] for r in rows)
    assert any(r["reason"].startswith("'") for r in rows) and not any(r["reason"].startswith("=") for r in rows), "formula-quoted"

    twin = _cli_study(tmp_path, owl_data, "b.sqlite", "--pairs-per-question", "2", "--seed", "3")
    imported = runner.invoke(app, ["grades", "import", str(out), "--db", str(twin)])
    assert imported.exit_code == 0 and "imported 16 votes" in imported.output, imported.output
    a, b = (current_votes_frame(Store(p)) for p in (db, twin))
    assert a.equals(b)
    again = runner.invoke(app, ["grades", "import", str(out), "--db", str(twin)])
    assert "imported 0 votes" in again.output and "16 already there" in again.output
    untimed = tmp_path / "untimed.csv"
    untimed.write_text(out.read_text(encoding="utf-8").replace(rows[0]["voted_at"], ""), encoding="utf-8")
    third = runner.invoke(app, ["grades", "import", str(untimed), "--db", str(twin)])
    assert "imported 0 votes" in third.output and "16 already there" in third.output, "a row without a time equal to the vote"


def test_the_votes_reader_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "votes.csv"
    good = ["ann", "6", "m1", "m2", "m1", "model_a", "ok", "2024-05-01T09:30:00+00:00"]
    rows = [
        good,
        ["ann", "6", "m1", "ghost", "m1", "model_a", "", ""],  # a model not in the answers
        ["ann", "999", "m1", "m2", "m2", "tie", "", ""],  # a question not in the answers
        ["bob", "6", "m1", "m2", "m1", "left", "", ""],  # unknown winner token
        ["bob", "7", "m1", "m1", "m1", "tie", "", ""],  # one model with itself
        ["bob", "8", "m1", "m2", "m3", "tie", "", ""],  # left outside the pair
    ]
    path.write_text("\n".join(",".join(r) for r in [VOTE_COLUMNS, *rows]) + "\n", encoding="utf-8")
    with pytest.raises(InputFileError) as err:
        read_votes(path, models={"m1", "m2", "m3"}, question_ids=set(range(1, 83)))
    text = str(err.value)
    assert f"{path}:3 [model_b]: error: model 'ghost' is not in the answers" in text
    assert f"{path}:4 [question_id]: error: question 999 is not in the answers" in text
    assert f"{path}:5 [winner]: error: 'left' is not one of model_a, model_b, tie, both_bad" in text
    assert f"{path}:6 [model_b]: error: a pair of one model with itself ('m1')" in text
    assert f"{path}:7 [left]: error: 'm3' is neither model_a nor model_b" in text
    assert ":2 " not in text
    path.write_text(",".join(VOTE_COLUMNS) + "\n" + ",".join(good) + "\n", encoding="utf-8")
    (vote,) = read_votes(path, models={"m1", "m2"})
    assert (vote.line, vote.winner, vote.left) == (2, "model_a", "m1")


def test_import_refuses_pairs_the_study_does_not_compare_and_writes_nothing(tmp_path: Path, owl_data: Path) -> None:
    db = _cli_study(tmp_path, owl_data, "a.sqlite", "--against", MODELS[0])
    others = sorted(MODELS[1:])
    path = tmp_path / "votes.csv"
    path.write_text(",".join(VOTE_COLUMNS) + "\n"
                    + f"ann,6,{min(MODELS[0], others[0])},{max(MODELS[0], others[0])},{MODELS[0]},tie,,\n"
                    + f"ann,6,{others[0]},{others[1]},{others[0]},tie,,\n", encoding="utf-8")
    result = runner.invoke(app, ["grades", "import", str(path), "--db", str(db)])
    assert result.exit_code != 0 and f"{path}:3 [question_id]" in result.output and "not in its pair design" in result.output
    assert Store(db).conn.execute("SELECT COUNT(*) FROM vote_events").fetchone()[0] == 0


def test_cli_pair_flags_need_pairwise_and_sample_draws_per_model_pair(tmp_path: Path, owl_data: Path) -> None:
    answers = tmp_path / "answers"
    write_answer_files(answers, owl_data, MODELS, QIDS)
    plain = runner.invoke(app, ["study", "create", "--db", str(tmp_path / "x.sqlite"), "--answers", str(answers), "--against", MODELS[0]])
    assert plain.exit_code != 0 and "add --pairwise" in plain.output and not (tmp_path / "x.sqlite").exists()
    db = _cli_study(tmp_path, owl_data, "s.sqlite", "--against", MODELS[0], "--sample", "2")
    store = Store(db)
    items = store.conn.execute("SELECT model_a, model_b, COUNT(*) FROM pair_items GROUP BY model_a, model_b").fetchall()
    assert sorted(r[2] for r in items) == [2, 2] and all(MODELS[0] in (r[0], r[1]) for r in items)
    store.close()


def test_the_votes_reader_refuses_a_second_vote_on_the_same_pair(tmp_path: Path) -> None:
    path = tmp_path / "votes.csv"
    row = "ann,6,m1,m2,m1,model_a,,"
    path.write_text(",".join(VOTE_COLUMNS) + f"\n{row}\n{row}\n", encoding="utf-8")
    with pytest.raises(InputFileError, match=r"votes.csv:3: error: a second vote by 'ann' on question 6 m1 vs m2 \(first on line 2\)"):
        read_votes(path)
    path.write_text("annotator,question_id,model_a\n", encoding="utf-8")
    with pytest.raises(InputFileError, match=r"votes.csv:1 \[model_b\]: error: missing column"):
        read_votes(path)


def test_concurrent_voters_each_vote_once_per_request(tmp_path: Path, owl_data: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    names = ("ann", "bob", "cy", "dee")
    _, store = _pair_study(tmp_path, owl_data, annotators=names)

    def vote_all(name: str) -> int:
        who = _ann(store, name)
        queue = load_pair_queue(store, who)
        for item in queue:
            for _ in range(2):  # every request delivered twice
                record_vote(store, who, item.pair_id, "right", request_id=f"{name}-{item.pair_id}")
        return len(queue)

    with ThreadPoolExecutor(len(names)) as pool:
        counts = list(pool.map(vote_all, names))
    assert counts == [12] * 4
    assert store.conn.execute("SELECT COUNT(*) FROM vote_events").fetchone()[0] == 48
    frame = current_votes_frame(store)
    assert len(frame) == 48 and all(frame["left"] != frame.apply(lambda r: r[r["winner"]], axis=1)), "right is never the left model"
    store.close()
