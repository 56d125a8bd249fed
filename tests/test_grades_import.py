"""``owleval grades import FILE --db STUDY``: grades from a CSV in the export's columns become grade events.

Checked whole before anything is written (each problem named by line), refused for unknown annotators unless
--create-annotators, refused outside a sampled study's draw, graded_at kept, and export after import round-trips.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from owleval.cli import app
from owleval.csvio import rows_to_csv
from owleval.study.export import EXPORT_COLUMNS, current_grades_frame
from owleval.study.queue import load_queue, record_grade
from owleval.study.store import Store
from owleval.study.manage import create_study
from tests.grading_helpers import MODELS, QIDS, make_study, write_answer_files

TRICKY = '=HYPERLINK("http://x.example","click"), then "quoted";\nsecond line'


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def grade_some(db: Path) -> None:
    """Grades as the app records them: a comment a spreadsheet would run, a flag, and one changed grade."""
    store = Store(db)
    try:
        for name in ("ann", "bob"):
            who = store.conn.execute("SELECT annotator_id FROM annotators WHERE name = ?", (name,)).fetchone()[0]
            for i, item in enumerate(load_queue(store, who)[:6]):
                record_grade(store, who, item.answer_id, "ABCD"[i % 4], TRICKY if i == 1 else f"note {i}",
                             flags=("answer-cut-off",) if i == 2 else ())
            first = load_queue(store, who)[0]
            record_grade(store, who, first.answer_id, "D", "changed my mind")
    finally:
        store.close()


def counts(db: Path) -> tuple[int, int, int]:
    with sqlite3.connect(db) as conn:
        return tuple(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("grade_events", "annotators", "assignments"))


def test_export_import_export_round_trips_and_a_second_import_changes_nothing(tmp_path: Path, owl_data: Path) -> None:
    first = make_study(tmp_path, owl_data, ("ann", "bob"), overlap=1, seed=3)
    grade_some(first.path)
    exported = tmp_path / "first.csv"
    assert cli("grades", "export", "--db", str(first.path), "--out", str(exported)).exit_code == 0
    before = exported.read_text(encoding="utf-8")
    exported.write_text("someone's grades\n", encoding="utf-8")
    kept = cli("grades", "export", "--db", str(first.path), "--out", str(exported))
    assert kept.exit_code == 1 and "--overwrite" in kept.output and exported.read_text(encoding="utf-8") == "someone's grades\n"
    assert cli("grades", "export", "--db", str(first.path), "--out", str(exported), "--overwrite").exit_code == 0
    assert exported.read_text(encoding="utf-8") == before

    second = create_study(tmp_path / "second.sqlite", write_answer_files(tmp_path / "answers2", owl_data), annotators=("ann",),
                          data_dir=owl_data)
    refused = cli("grades", "import", str(exported), "--db", str(second.path))
    assert refused.exit_code == 1 and "unknown annotator 'bob'" in refused.output and "--create-annotators" in refused.output
    assert f"{exported}:" in refused.output
    assert counts(second.path)[0] == 0, "nothing is written when a row is refused"

    done = cli("grades", "import", str(exported), "--db", str(second.path), "--create-annotators")
    assert done.exit_code == 0, done.output
    assert "imported 12 grades" in done.output and "added annotators bob" in done.output and "token for bob:" in done.output
    again = tmp_path / "second.csv"
    assert cli("grades", "export", "--db", str(second.path), "--out", str(again)).exit_code == 0
    assert again.read_text(encoding="utf-8") == exported.read_text(encoding="utf-8")
    grades = current_grades_frame(second.path)
    assert TRICKY in set(grades["comment"]) and "answer-cut-off" in set(grades["flags"])

    store = Store(second.path)  # bob's imported answers are in his queue now, graded
    try:
        bob = store.conn.execute("SELECT annotator_id FROM annotators WHERE name = 'bob'").fetchone()[0]
        queue = load_queue(store, bob)
    finally:
        store.close()
    assert len(queue) == 6 and all(item.grade for item in queue)

    before = counts(second.path)
    twice = cli("grades", "import", str(exported), "--db", str(second.path))
    assert twice.exit_code == 0 and "imported 0 grades" in twice.output and "12 already there" in twice.output
    assert counts(second.path) == before


def write_csv(path: Path, rows: list[list[object]]) -> Path:
    path.write_text(rows_to_csv(EXPORT_COLUMNS, rows), encoding="utf-8")
    return path


def test_every_bad_row_is_named_by_line_and_nothing_is_written(tmp_path: Path, owl_data: Path) -> None:
    study = make_study(tmp_path, owl_data, ("ann",))
    model = MODELS[0]
    when = "2024-05-01T09:30:00+00:00"
    bad = write_csv(tmp_path / "bad.csv", [
        ["ann", model, 1, "A", "", when, ""],              # line 2: fine
        ["zed", model, 6, "B", "", when, ""],              # line 3: unknown annotator
        ["ann", "no-such-model", 1, "B", "", when, ""],    # line 4: unknown model
        ["ann", model, 99, "B", "", when, ""],             # line 5: unknown question
        ["ann", model, 7, "E", "", when, ""],              # line 6: bad grade letter
        ["ann", model, 1, "C", "", when, ""],              # line 7: duplicate of line 2
        ["ann", model, 8, "C", "", "yesterday", ""],       # line 8: bad time
        ["ann", model, 32, "C", "", when, "sparkly"],      # line 9: unknown flag
        ["ann", model, 2, "C", "", when, ""],              # line 10: the study has no answer to question 2
        ["ann", model, "1_0", "C", "", when, ""],          # line 11: int() reads it as 10; not a question id
    ])
    before = counts(study.path)
    result = cli("grades", "import", str(bad), "--db", str(study.path))
    assert result.exit_code == 1
    out = result.output
    for line, field, words in [
        (3, "annotator", "unknown annotator 'zed'"), (4, "model_id", "no-such-model"), (5, "question_id", "unknown question id 99"),
        (6, "grade", "'E' is not a grade"), (7, "question_id", "twice (first on line 2)"), (8, "graded_at", "not an ISO 8601"),
        (9, "flags", "sparkly"), (10, "question_id", "no current answer"), (11, "question_id", "'1_0' is not a question id"),
    ]:
        assert f"{bad}:{line} [{field}]" in out and words in out, (line, out)
    assert f"{bad}:2 " not in out, "the good line is not blamed"
    assert f"error: {bad}" not in out, "each line says error once (no doubled prefix)"
    assert counts(study.path) == before


def test_a_sampled_study_refuses_grades_outside_its_draw(tmp_path: Path, owl_data: Path) -> None:
    answers = write_answer_files(tmp_path / "answers", owl_data)
    study = create_study(tmp_path / "sampled.sqlite", answers, annotators=("ann",), data_dir=owl_data, sample_size=2, seed=5)
    drawn = {(m, int(q)) for m, part in study.sample_design["models"].items() for q in part["question_ids"]}
    model = MODELS[0]
    inside = next(q for q in QIDS if (model, q) in drawn)
    outside = next(q for q in QIDS if (model, q) not in drawn)
    path = write_csv(tmp_path / "g.csv", [["ann", model, inside, "A", "", "", ""], ["ann", model, outside, "B", "", "", ""]])
    result = cli("grades", "import", str(path), "--db", str(study.path))
    assert result.exit_code == 1 and f"{path}:3 [question_id]" in result.output and "outside the study's sample" in result.output
    assert counts(study.path)[0] == 0
    ok = write_csv(tmp_path / "ok.csv", [["ann", model, inside, "A", "", "2024-05-01T09:30:00+00:00", ""]])
    assert cli("grades", "import", str(ok), "--db", str(study.path)).exit_code == 0
    assert current_grades_frame(study.path)["graded_at"].tolist() == ["2024-05-01T09:30:00+00:00"]


def test_an_older_grade_never_replaces_a_later_one(tmp_path: Path, owl_data: Path) -> None:
    study = make_study(tmp_path, owl_data, ("ann",))
    store = Store(study.path)
    try:
        item = load_queue(store, 1)[0]
        record_grade(store, 1, item.answer_id, "B", "given in the app today")
    finally:
        store.close()
    old = write_csv(tmp_path / "old.csv", [["ann", item.model_id, item.question_id, "D", "", "2020-01-01T00:00:00+00:00", ""]])
    before = counts(study.path)
    result = cli("grades", "import", str(old), "--db", str(study.path))
    assert result.exit_code == 1 and f"{old}:2 [graded_at]" in result.output and "later grade" in result.output
    assert counts(study.path) == before
    assert current_grades_frame(study.path)["grade"].tolist() == ["B"]
