"""Annotator quality control in a study: gold, onboarding, attention-check and retest items, their grades, exports,
imports, pausing and the schema step (owleval.study.special and friends)."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from owleval.answers import read_answer_file
from owleval.items import CHECK_MODEL
from owleval.cli import app
from owleval.errors import InputFileError, OwlEvalError
from owleval.study import pause
from owleval.study.export import GRADES_CSV_COLUMNS, current_grades_frame, grades_export_frame, write_grades_csv
from owleval.study.importer import import_grades
from owleval.study.queue import answer_screen, load_queue, record_grade
from owleval.study.special import FIRST_FEW, RETEST_GAP, QcSettings, blind_gold_count
from owleval.study.add_gold import add_gold
from owleval.study.store import SCHEMA_VERSION, Store
from owleval.study.manage import add_annotator, create_study
from owleval.questions import load_questions
from tests.grading_helpers import MODELS, QIDS, write_answer_files
from tests.qc_helpers import copy_study, schema_3_study_file, write_gold  # noqa: F401 (a fixture)

GOLD = [(1, MODELS[0], "A", "clear and right"), (6, MODELS[1], "B", ""), (7, MODELS[2], "C", "misreads the sign"),
        (8, MODELS[0], "D", ""), (32, MODELS[1], "B", ""), (1, MODELS[2], "C", "")]
N_REGULAR = len(MODELS) * len(QIDS)


def _study(tmp_path: Path, owl_data: Path, quality: QcSettings, annotators=("ann", "bob"), gold=GOLD, name="qc.sqlite"):
    answers = write_answer_files(tmp_path / f"answers-{name}", owl_data)
    gold_path = write_gold(tmp_path / f"gold-{name}.csv", gold) if gold else None
    created = create_study(tmp_path / name, answers, annotators=annotators, data_dir=owl_data, seed=3, gold=gold_path, quality=quality)
    return created, Store(created.path)


def _ann(store: Store, name: str = "ann") -> int:
    return store.conn.execute("SELECT annotator_id FROM annotators WHERE name = ?", (name,)).fetchone()[0]


def test_each_queue_gets_its_onboarding_first_disjoint_blind_gold_and_checks_after_the_first_few(tmp_path: Path, owl_data: Path) -> None:
    created, store = _study(tmp_path, owl_data, QcSettings(gold_rate=0.2, onboarding=2, attention_checks=2, retest=2))
    questions = {q.question_id: q for q in load_questions(owl_data)}
    for name in ("ann", "bob"):
        queue = load_queue(store, _ann(store, name))
        kinds = Counter(i.item_kind for i in queue)
        # blind gold: max(1, round(0.2 x 15)) = 3, within the 6 - 2 rows left after onboarding
        assert kinds == {"regular": N_REGULAR, "onboarding": 2, "gold": 3, "attention": 2, "retest": 2}
        assert [i.item_kind for i in queue[:2]] == ["onboarding", "onboarding"], "onboarding comes first"
        onboarding = {i.answer_id for i in queue if i.item_kind == "onboarding"}
        blind = {i.answer_id for i in queue if i.item_kind == "gold"}
        assert not onboarding & blind and len(blind) == 3, "onboarding and blind gold use disjoint gold rows"
        regular_seen = 0
        for item in queue:
            regular_seen += item.item_kind == "regular"
            if item.item_kind == "attention":
                assert regular_seen >= FIRST_FEW and item.model_id == CHECK_MODEL
                assert not questions[item.question_id].earlier_turns, "checks are asked on questions with no earlier turns"
            if item.item_kind == "retest":
                first = next(i for i in queue if i.item_kind == "regular" and i.answer_id == item.answer_id)
                assert first.index < item.index, "a retest comes after the answer it repeats"
            if item.item_kind == "gold" and item.answer_id in {r.answer_id for r in queue if r.item_kind == "regular"}:
                twin = next(i for i in queue if i.item_kind == "regular" and i.answer_id == item.answer_id)
                low, high = sorted((twin.index, item.index))
                assert sum(i.item_kind == "regular" for i in queue[low + 1:high]) >= RETEST_GAP, "gold is not next to its twin"
        checks = [i for i in queue if i.item_kind == "attention"]
        expected = dict(store.conn.execute("SELECT item_id, expected_grade FROM special_items WHERE item_kind = 'attention'").fetchall())
        texts = [answer_screen(store, _ann(store, name), i, owl_data).answer for i in checks]
        instructed = [t for t in texts if t.startswith("ATTENTION CHECK")]
        assert len(instructed) == 1 and f"grade {expected[checks[texts.index(instructed[0])].item_id]}" in instructed[0]
        nonsense = checks[1 - texts.index(instructed[0])]
        assert expected[nonsense.item_id] == "D"
        source = store.conn.execute("SELECT source FROM answers WHERE answer_id = ?", (nonsense.answer_id,)).fetchone()[0]
        borrowed = int(source.rsplit(" ", 1)[1])
        assert questions[borrowed].image != questions[nonsense.question_id].image, "a nonsense answer comes from another image"
    assert len({i.view_id for i in load_queue(store, 1)}) == N_REGULAR + 9, "every item has its own page id"
    assert current_grades_frame(store).empty and blind_gold_count(0.1, 40, 2) == 2 and blind_gold_count(0.5, 3, 0) == 0
    store.close()


def test_a_special_grade_never_replaces_the_regular_grade_and_shows_no_history(tmp_path: Path, owl_data: Path) -> None:
    created, store = _study(tmp_path, owl_data, QcSettings(gold_rate=0.1, retest=1, attention_checks=1), annotators=("ann",))
    ann = _ann(store)
    queue = load_queue(store, ann)
    retest = next(i for i in queue if i.item_kind == "retest")
    original = next(i for i in queue if i.item_kind == "regular" and i.answer_id == retest.answer_id)
    record_grade(store, ann, original.answer_id, "A", window="w", seq=1, seen=0)
    assert answer_screen(store, ann, load_queue(store, ann)[retest.index], owl_data).history == (), "no earlier grade on a retest"
    # "nothing changed, nothing inserted" holds per item: the retest's A from the same window is a grade of its own
    first = record_grade(store, ann, retest.answer_id, "A", item_id=retest.item_id, window="w", seq=2, seen=0)
    assert record_grade(store, ann, retest.answer_id, "A", item_id=retest.item_id, window="w", seq=3, seen=first.event_id) == first
    record_grade(store, ann, retest.answer_id, "D", "second look", item_id=retest.item_id, window="w", seq=4, seen=first.event_id)
    gold = next(i for i in queue if i.item_kind == "gold")
    record_grade(store, ann, gold.answer_id, "C", item_id=gold.item_id)
    check = next(i for i in queue if i.item_kind == "attention")
    record_grade(store, ann, check.answer_id, "B", item_id=check.item_id)
    with pytest.raises(OwlEvalError, match="not in your queue"):
        record_grade(store, ann, original.answer_id, "B", item_id=check.item_id)  # an item names its own answer
    now = {(i.item_kind, i.answer_id): i.grade for i in load_queue(store, ann)}
    assert now[("regular", original.answer_id)] == "A" and now[("retest", retest.answer_id)] == "D"
    current = current_grades_frame(store)
    assert list(current["grade"]) == ["A"], "scores see the regular grade only"
    exported = grades_export_frame(store)
    assert list(exported.columns) == GRADES_CSV_COLUMNS
    kinds = exported.set_index("item_kind")
    assert kinds.loc["retest", "grade"] == "D" and kinds.loc["retest", "expected_grade"] == ""
    assert kinds.loc["attention", "model_id"] == CHECK_MODEL and kinds.loc["attention", "expected_grade"] in "ABCD"
    gold_grade = store.conn.execute("SELECT grade FROM gold_answers WHERE answer_id = ?", (gold.answer_id,)).fetchone()[0]
    assert kinds.loc["gold", "expected_grade"] == gold_grade and kinds.loc["regular", "expected_grade"] == ""
    events = store.conn.execute("SELECT COUNT(*) FROM grade_events WHERE item_id = ?", (retest.item_id,)).fetchone()[0]
    assert events == 2
    store.close()


def test_export_import_into_a_new_study_and_export_give_the_same_rows(tmp_path: Path, owl_data: Path) -> None:
    created, store = _study(tmp_path, owl_data, QcSettings(gold_rate=0.2, onboarding=1, attention_checks=2, retest=1))
    for name in ("ann", "bob"):
        who = _ann(store, name)
        for n, item in enumerate(load_queue(store, who)[:12]):
            record_grade(store, who, item.answer_id, "ABCD"[(n + len(name)) % 4], f"{name} {n}", item_id=item.item_id)
    store.close()
    first = tmp_path / "first.csv"
    write_grades_csv(created.path, first)
    exported = pd.read_csv(first, keep_default_na=False, dtype=str)
    assert {"regular", "onboarding"} <= set(exported["item_kind"]) and set(exported["item_kind"]) <= {"regular", "onboarding", "gold", "attention", "retest"}
    plain = write_answer_files(tmp_path / "answers-plain", owl_data)
    target = create_study(tmp_path / "target.sqlite", plain, data_dir=owl_data)
    summary = import_grades(target.path, first, create_annotators=True)
    assert summary.imported == len(exported)
    second = tmp_path / "second.csv"
    write_grades_csv(target.path, second)
    assert second.read_text(encoding="utf-8") == first.read_text(encoding="utf-8")
    again = import_grades(target.path, second)
    assert again.imported == 0 and again.unchanged == len(exported), "importing the same file twice changes nothing"


def test_bad_item_columns_and_gold_rows_are_named_by_line(tmp_path: Path, owl_data: Path) -> None:
    created, store = _study(tmp_path, owl_data, QcSettings(), annotators=("ann",), gold=None)
    store.close()
    bad = tmp_path / "bad.csv"
    bad.write_text("annotator,model_id,question_id,grade,item_kind,expected_grade\n"
                   f"ann,{MODELS[0]},1,A,golden,A\n"
                   f"ann,{MODELS[0]},1,A,gold,\n"
                   f"ann,{MODELS[0]},1,A,retest,B\n"
                   f"ann,{MODELS[0]},1,A,attention,B\n", encoding="utf-8")
    with pytest.raises(InputFileError) as caught:
        import_grades(created.path, bad)
    where = {(p.line, p.field) for p in caught.value.problems}
    assert {(2, "item_kind"), (3, "expected_grade"), (4, "expected_grade"), (5, "model_id")} <= where
    gold = tmp_path / "gold.csv"
    gold.write_text(f"question_id,model_id,grade\n1,{MODELS[0]},E\n99,{MODELS[0]},A\n1,nobody,A\n1,{CHECK_MODEL},A\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["study", "add-gold", "--db", str(created.path), "--gold", str(gold)])
    assert result.exit_code != 0
    for needle in (f"{gold}:2 [grade]", f"{gold}:3 [question_id]", f"{gold}:4 [model_id]", f"{gold}:5 [model_id]"):
        assert needle in result.output, result.output
    answers = tmp_path / "check.jsonl"
    question = load_questions(owl_data)[0]
    answers.write_text(json.dumps({"image": question.image, "question_id": 1, "question": question.question, "answer": "x",
                                   "model_id": CHECK_MODEL}) + "\n", encoding="utf-8")
    assert any("reserved" in p.message for p in read_answer_file(answers, load_questions(owl_data)).errors)


def test_cli_create_with_gold_then_add_gold_tops_up_after_what_was_graded(tmp_path: Path, owl_data: Path) -> None:
    answers = write_answer_files(tmp_path / "answers", owl_data)
    gold = write_gold(tmp_path / "gold.csv", GOLD[:2])
    db = tmp_path / "cli.sqlite"
    result = CliRunner().invoke(app, ["study", "create", "--db", str(db), "--answers", str(tmp_path / "answers"), "--annotators", "ann,bob",
                                      "--gold", str(gold), "--onboarding", "1", "--attention-checks", "1", "--data", str(owl_data)])
    assert result.exit_code == 0, result.output
    assert "ann: 1 gold, 1 onboarding, 1 attention" in result.output
    store = Store(db)
    ann = _ann(store)
    graded = [i for i in load_queue(store, ann) if i.item_kind == "regular"][:4]
    for item in graded:
        record_grade(store, ann, item.answer_id, "B")
    store.close()
    more = write_gold(tmp_path / "more.csv", GOLD[2:])
    result = CliRunner().invoke(app, ["study", "add-gold", "--db", str(db), "--gold", str(more), "--gold-rate", "0.2"])
    assert result.exit_code == 0, result.output
    assert "added 4 gold answers" in result.output and "ann 2" in result.output  # max(1, round(0.2 x 15)) = 3, 1 held
    store = Store(db)
    queue = load_queue(store, ann)
    last_graded = max(i.index for i in queue if i.item_kind == "regular" and i.grade)
    new_gold = store.conn.execute("SELECT MAX(item_id) - 1 FROM special_items WHERE annotator_id = ?", (ann,)).fetchone()[0]
    assert all(i.index > last_graded for i in queue if i.item_id is not None and i.item_id >= new_gold)
    add_annotator(store, "cy")  # a newcomer gets the study's quality-control items too
    assert Counter(i.item_kind for i in load_queue(store, _ann(store, "cy")))["onboarding"] == 1
    store.close()


def test_a_schema_3_study_opens_grades_pauses_and_takes_gold(tmp_path: Path, schema_3_study_file: Path, owl_data: Path) -> None:
    path = copy_study(schema_3_study_file, tmp_path / "old.sqlite")
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "special_items" not in tables and "pair_items" in tables, "a real schema-3 file"
    store = Store(path)
    assert store.meta()["schema_version"] == str(SCHEMA_VERSION) == "4"
    ann = _ann(store)
    queue = load_queue(store, ann)
    assert [i.grade for i in queue[:2]] == ["C", None] and {i.item_kind for i in queue} == {"regular"}
    record_grade(store, ann, queue[1].answer_id, "A")
    assert sorted(current_grades_frame(store)["grade"]) == ["A", "C"]
    event = pause.set_paused(store, "bob", True, "  fails every check  ", "admintokenid")
    assert pause.is_paused(store, _ann(store, "bob")) and event.reason == "fails every check"
    gold = write_gold(tmp_path / "gold.csv", GOLD[:3])
    rows, added = add_gold(store, gold)
    assert rows == 3 and added == {"ann": 2, "bob": 2}  # max(1, round(0.1 x 15)) = 2
    blind = [i for i in load_queue(store, ann) if i.item_kind == "gold"]
    assert all(i.index > 1 for i in blind), "after the answers graded before the upgrade"
    store.close()


def test_pausing_is_an_event_with_who_and_why(tmp_path: Path, owl_data: Path) -> None:
    created, store = _study(tmp_path, owl_data, QcSettings(), annotators=("ann", "bob"), gold=None)
    with pytest.raises(OwlEvalError, match="say why"):
        pause.set_paused(store, "ann", True, " ", "tok")
    with pytest.raises(OwlEvalError, match="no annotator"):
        pause.set_paused(store, "zed", True, "x", "tok")
    pause.set_paused(store, "ann", True, "straight-lining", "tok1")
    pause.set_paused(store, "ann", True, "again", "tok1")  # already paused: nothing new
    pause.set_paused(store, "ann", False, "", "tok1")
    log = pause.pause_frame(store)
    assert log[["annotator", "action", "by", "reason"]].values.tolist() == [["ann", "paused", "tok1", "straight-lining"],
                                                                            ["ann", "resumed", "tok1", ""]]
    assert pause.paused_names(store) == []
    with pytest.raises(sqlite3.IntegrityError):
        store.conn.execute("DELETE FROM pause_events")
    store.close()


def test_gold_pairs_are_blind_items_of_their_own_and_round_trip_through_votes_csv(tmp_path: Path, owl_data: Path) -> None:
    from owleval.study.pairs import PairDesign
    from owleval.study.pair_queue import load_pair_queue, record_vote
    from owleval.study.votes import (
        VOTES_CSV_COLUMNS,
        current_votes_frame,
        import_votes,
        votes_export_frame,
        write_votes_csv,
    )

    answers = write_answer_files(tmp_path / "answers", owl_data)
    a, b, c = sorted(MODELS)
    gold = tmp_path / "gold-pairs.csv"
    gold.write_text(f"question_id,model_a,model_b,winner,note\n1,{a},{b},model_a,\n6,{a},{c},tie,close\n7,{b},{c},both_bad,\n",
                    encoding="utf-8")
    created = create_study(tmp_path / "pairs.sqlite", answers, annotators=("ann", "bob"), data_dir=owl_data, seed=1,
                           pairwise=PairDesign(), gold=gold, quality=QcSettings(gold_rate=0.2))
    store = Store(created.path)
    ann = _ann(store)
    queue = load_pair_queue(store, ann)
    regular = [i for i in queue if i.item_kind == "regular"]
    golds = [i for i in queue if i.item_kind == "gold"]
    assert len(golds) == min(3, max(1, round(0.2 * len(regular))))
    twin = next(i for i in regular if i.pair_id == golds[0].pair_id)
    record_vote(store, ann, twin.pair_id, "left")
    record_vote(store, ann, golds[0].pair_id, "tie", "a gold look", item_id=golds[0].item_id)
    assert len(current_votes_frame(store)) == 1
    exported = votes_export_frame(store)
    assert list(exported.columns) == VOTES_CSV_COLUMNS and sorted(exported["item_kind"]) == ["gold", "regular"]
    row = exported.set_index("item_kind").loc["gold"]
    assert row["winner"] == "tie" and row["expected_winner"] in ("model_a", "tie", "both_bad")
    assert current_votes_frame(store)["reason"].tolist() == [""], "the gold vote never replaces the regular vote"
    out = tmp_path / "votes.csv"
    write_votes_csv(store, out)
    store.close()
    target = create_study(tmp_path / "target.sqlite", answers, data_dir=owl_data, pairwise=PairDesign())
    target_store = Store(target.path)
    summary = import_votes(target_store, out, create_annotators=True)
    assert summary.imported == 2
    again = tmp_path / "again.csv"
    write_votes_csv(target_store, again)
    assert again.read_text(encoding="utf-8") == out.read_text(encoding="utf-8")
    target_store.close()
    bad = tmp_path / "bad-gold.csv"
    bad.write_text(f"question_id,model_a,model_b,winner\n1,{b},{a},model_a\n1,{a},{b},left\n", encoding="utf-8")
    with pytest.raises(InputFileError) as caught:
        create_study(tmp_path / "bad.sqlite", answers, annotators=("ann",), data_dir=owl_data, pairwise=PairDesign(), gold=bad)
    assert {(p.line, p.field) for p in caught.value.problems} == {(2, "model_b"), (3, "winner")}
