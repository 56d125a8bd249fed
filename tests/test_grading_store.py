"""The study file: schema version, WAL, append-only grade events, current grades, answer-text hashes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from owleval.errors import OwlEvalError
from owleval.study.export import EXPORT_COLUMNS, GRADES_CSV_COLUMNS, current_grades_frame, write_grades_csv
from owleval.study.queue import load_queue, record_grade
from owleval.study.store import SCHEMA_VERSION, Store
from owleval.study.manage import refresh_study
from tests.grading_helpers import MODELS, QIDS, default_text, make_study, write_answer_files
from tests.qc_helpers import copy_study, schema_3_study_file  # noqa: F401 (a fixture)


@pytest.fixture
def study(tmp_path: Path, owl_data: Path):
    created = make_study(tmp_path, owl_data)
    store = Store(created.path)
    yield created, store
    store.close()


def _ann(store: Store, name: str = "ann") -> int:
    return store.conn.execute("SELECT annotator_id FROM annotators WHERE name = ?", (name,)).fetchone()[0]


def test_new_study_is_wal_with_schema_version_and_busy_timeout(study) -> None:
    created, store = study
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    assert store.meta()["schema_version"] == str(SCHEMA_VERSION)
    assert not list(created.path.parent.glob(".*.creating*")), "the temporary build file was left behind"


def test_grade_events_are_append_only(study) -> None:
    _, store = study
    ann = _ann(store)
    item = load_queue(store, ann)[0]
    record_grade(store, ann, item.answer_id, "B")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.conn.execute("UPDATE grade_events SET grade = 'A'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.conn.execute("DELETE FROM grade_events")
    assert [tuple(r) for r in store.conn.execute("SELECT grade FROM grade_events")] == [("B",)]


def test_current_grade_is_the_latest_event_and_history_is_kept(study) -> None:
    created, store = study
    ann = _ann(store)
    item = load_queue(store, ann)[0]
    record_grade(store, ann, item.answer_id, "D", "first look")
    record_grade(store, ann, item.answer_id, "A", "on second thought", ["answer-cut-off"])
    assert load_queue(store, ann)[0].grade == "A"
    frame = current_grades_frame(created.path)
    assert list(frame.columns) == EXPORT_COLUMNS
    assert frame.to_dict("records")[0] | {"graded_at": None} == {
        "annotator": "ann", "model_id": item.model_id, "question_id": item.question_id, "grade": "A",
        "comment": "on second thought", "graded_at": None, "flags": "answer-cut-off",
    }
    assert store.conn.execute("SELECT COUNT(*) FROM grade_events").fetchone()[0] == 2


def test_repeated_request_id_records_one_event(study) -> None:
    _, store = study
    ann = _ann(store)
    item = load_queue(store, ann)[0]
    first = record_grade(store, ann, item.answer_id, "C", request_id="click-1")
    again = record_grade(store, ann, item.answer_id, "C", request_id="click-1")
    assert first == again
    assert store.conn.execute("SELECT COUNT(*) FROM grade_events").fetchone()[0] == 1


@pytest.mark.parametrize(
    ("grade", "flags", "message"),
    [("E", (), "grade must be one of"), ("a", (), "grade must be one of"), ("A", ("broken",), "unknown flag")],
)
def test_bad_grades_and_flags_are_refused(study, grade: str, flags: tuple[str, ...], message: str) -> None:
    _, store = study
    ann = _ann(store)
    with pytest.raises(OwlEvalError, match=message):
        record_grade(store, ann, load_queue(store, ann)[0].answer_id, grade, flags=flags)
    assert store.conn.execute("SELECT COUNT(*) FROM grade_events").fetchone()[0] == 0


def test_grading_an_answer_outside_ones_queue_is_refused(tmp_path: Path, owl_data: Path) -> None:
    created = make_study(tmp_path, owl_data, ("ann", "bob"), overlap=1)
    store = Store(created.path)
    ann, bob = _ann(store, "ann"), _ann(store, "bob")
    bobs = load_queue(store, bob)[0]
    with pytest.raises(OwlEvalError, match="not in your queue"):
        record_grade(store, ann, bobs.answer_id, "A")


def test_tokens_are_stored_hashed(study) -> None:
    created, store = study
    store.close()
    wal = created.path.with_name(created.path.name + "-wal")
    raw = created.path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    for token in [created.admin_token, *created.tokens.values()]:
        secret = token.split("_", 2)[2]  # owl_<id>_<secret>; the secret itself may hold "_"
        assert len(secret) == 32 and secret.encode() not in raw


def test_newer_or_foreign_files_are_refused(tmp_path: Path, study) -> None:
    created, store = study
    store.conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(OwlEvalError, match="newer owleval"):
        Store(created.path)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(OwlEvalError, match="not an OwlEval grading study"):
        Store(other)
    with pytest.raises(OwlEvalError, match="no such study"):
        Store(tmp_path / "missing.sqlite")


def test_refresh_keeps_grades_of_unchanged_answers_only(tmp_path: Path, owl_data: Path, study) -> None:
    _created, store = study
    ann = _ann(store)
    queue = load_queue(store, ann)
    for item in queue:
        record_grade(store, ann, item.answer_id, "B")
    changed = (MODELS[0], QIDS[0])
    regenerated = write_answer_files(
        tmp_path / "regenerated", owl_data, MODELS[:1],
        text=lambda m, q: "a brand new answer" if (m, q) == changed else default_text(m, q),
    )
    summary = refresh_study(store, regenerated)
    assert (summary.kept, summary.changed, summary.grades_set_aside) == (len(QIDS) - 1, 1, 1)
    after = {(i.model_id, i.question_id): i.grade for i in load_queue(store, ann)}
    assert after.pop(changed) is None
    assert set(after.values()) == {"B"}
    exported = current_grades_frame(store)
    assert len(exported) == len(queue) - 1
    assert changed not in set(zip(exported["model_id"], exported["question_id"], strict=True))
    assert store.conn.execute("SELECT COUNT(*) FROM grade_events").fetchone()[0] == len(queue), "history was lost"
    # going back to the old text restores the grades that were given for exactly that text
    original = write_answer_files(tmp_path / "original", owl_data, MODELS[:1])
    assert refresh_study(store, original).restored == 1
    assert len(current_grades_frame(store)) == len(queue)


def test_refresh_retires_missing_answers_and_assigns_new_ones(tmp_path: Path, owl_data: Path, study) -> None:
    _, store = study
    ann = _ann(store)
    before = len(load_queue(store, ann))
    fewer = write_answer_files(tmp_path / "fewer", owl_data, MODELS[:1], qids=QIDS[:-1])
    assert refresh_study(store, fewer).retired == 1
    assert len(load_queue(store, ann)) == before - 1
    more = write_answer_files(tmp_path / "more", owl_data, ("walrus-model-w4",), qids=(2, 3))
    assert refresh_study(store, more).added == 2
    for name in ("ann", "bob"):  # full overlap: everyone gets the new answers
        assert len(load_queue(store, _ann(store, name))) == before + 1


def test_export_csv_holds_every_current_grade(tmp_path: Path, study) -> None:
    created, store = study
    for name in ("ann", "bob"):
        who = _ann(store, name)
        for item in load_queue(store, who)[:3]:
            record_grade(store, who, item.answer_id, "C", f'said "{name}", with a comma\nand a line break')
    out = tmp_path / "out" / "grades.csv"
    assert write_grades_csv(created.path, out) == 6
    import pandas as pd

    frame = pd.read_csv(out, keep_default_na=False)
    assert list(frame.columns) == GRADES_CSV_COLUMNS and set(frame["item_kind"]) == {"regular"}
    assert sorted(frame["annotator"]) == ["ann"] * 3 + ["bob"] * 3
    assert set(frame["comment"]) == {'said "ann", with a comma\nand a line break', 'said "bob", with a comma\nand a line break'}


def _as_schema_1(path: Path) -> None:
    """Turn a study file back into what owleval wrote before schema 2 (no window columns on grade events)."""
    conn = sqlite3.connect(path)
    with conn:
        for table in ("vote_events", "pair_assignments", "pair_items"):  # schema 3's pairwise tables
            conn.execute(f"DROP TABLE {table}")
        conn.execute("DROP INDEX grade_events_window_seq")
        conn.execute("ALTER TABLE grade_events DROP COLUMN window_seq")
        conn.execute("ALTER TABLE grade_events DROP COLUMN window_id")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.close()


def test_a_schema_1_study_opens_migrated_with_its_grades(tmp_path: Path, schema_3_study_file: Path) -> None:
    path = copy_study(schema_3_study_file, tmp_path / "old.sqlite")  # ann graded her first answer C (request r1)
    _as_schema_1(path)
    columns = [r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(grade_events)")]
    assert "window_id" not in columns

    store = Store(path)  # migrates
    assert store.meta()["schema_version"] == str(SCHEMA_VERSION) == "4"
    ann = _ann(store)
    assert [i.grade for i in load_queue(store, ann)[:2]] == ["C", None]
    second = load_queue(store, ann)[1]
    record_grade(store, ann, second.answer_id, "A", window="w1", seq=1, seen=0)
    record_grade(store, ann, second.answer_id, "A", window="w1", seq=1, seen=0)  # delivered twice: one event
    rows = store.conn.execute("SELECT grade, comment, window_id, window_seq FROM grade_events ORDER BY event_id").fetchall()
    assert [tuple(r) for r in rows] == [("C", "before the upgrade", None, None), ("A", "", "w1", 1)]
    store.close()


def test_a_grade_from_an_older_view_in_another_window_is_refused_naming_the_grade(study) -> None:
    from owleval.study.queue import StaleViewError

    _, store = study
    ann = _ann(store)
    item = load_queue(store, ann)[0]
    first = record_grade(store, ann, item.answer_id, "B", window="tab1", seq=1, seen=0)
    with pytest.raises(StaleViewError, match="graded B in another window") as refused:
        record_grade(store, ann, item.answer_id, "D", window="tab2", seq=1, seen=0)
    assert refused.value.replaced == first
    record_grade(store, ann, item.answer_id, "C", window="tab1", seq=2, seen=0)  # its own later action: fine
    later = record_grade(store, ann, item.answer_id, "D", window="tab2", seq=2, seen=store.conn.execute(
        "SELECT MAX(event_id) FROM grade_events").fetchone()[0])  # after seeing the C: replaces it
    assert load_queue(store, ann)[0].grade == "D" == later.grade
    assert [r[0] for r in store.conn.execute("SELECT grade FROM grade_events ORDER BY event_id")] == ["B", "C", "D"]


def test_one_window_repeating_its_current_grade_adds_nothing(study) -> None:
    _, store = study
    ann = _ann(store)
    item = load_queue(store, ann)[0]
    first = record_grade(store, ann, item.answer_id, "B", window="tab1", seq=1, seen=0)
    assert record_grade(store, ann, item.answer_id, "B", window="tab1", seq=2, seen=0) == first  # a double click
    record_grade(store, ann, item.answer_id, "B", "now with a comment", window="tab1", seq=3, seen=0)
    assert store.conn.execute("SELECT COUNT(*) FROM grade_events").fetchone()[0] == 2
