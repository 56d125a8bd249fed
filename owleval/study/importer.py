"""``owleval grades import``: grades from a CSV in the export's columns into a study, as grade events.

The file is checked whole before anything is written, and every problem is named by line and field: the export's
checks (header, question id, grade letter, model, duplicate rows) plus the study's own (who the annotator is,
whether the study has that answer, whether a sampled study drew it, the graded_at time, flags). Then all rows go in
one transaction: an imported grade is a grade event like one given in the app, keeping its ``graded_at``; an answer
not yet in that annotator's queue is added to it. A row equal to the current grade is skipped, so importing the
same file twice changes nothing; a row older than a grade the study already holds for that annotator and answer is
refused (it would replace a later grade). Rows with an ``item_kind`` other than regular (gold, onboarding, attention,
retest) go to that annotator's special item of that kind (:mod:`owleval.study.import_special`), never to their
regular grade, so export -> import -> export gives the same rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from owleval.errors import InputFileError, OwlEvalError, Problem
from owleval.study import assign, import_special, sample
from owleval.study.queue import MAX_COMMENT_LEN
from owleval.study.store import Store, utc_now
from owleval.records.grades import FLAGS
from owleval.study.manage import check_name, create_annotator
from owleval.questions import load_questions, parse_question_id
from owleval.records.grades import csv_records, validate_records


@dataclass
class ImportSummary:
    imported: int = 0  # grade events added
    unchanged: int = 0  # rows equal to the current grade, skipped
    assignments_added: int = 0
    created: dict[str, str | None] = field(default_factory=dict)  # new annotator -> token (None: name sign-in)


@dataclass(frozen=True)
class _Row:
    line: int
    annotator: str
    model_id: str
    question_id: int
    grade: str
    comment: str
    flags: str  # comma-separated, in the order of FLAGS, as the app stores them
    graded_at: str
    when: datetime
    item_kind: str = "regular"  # a special row (see owleval.study.import_special) goes to an item of its own
    expected_grade: str = ""


def _instant(text: str) -> datetime:
    """A graded_at time as an aware datetime (a time without a zone is taken as UTC)."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _flags(text: str) -> tuple[str | None, str | None]:
    """(stored flags, None) or (None, the problem)."""
    given = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in given if f not in FLAGS]
    if unknown:
        return None, f"unknown flag(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(FLAGS)}"
    return ",".join(f for f in FLAGS if f in given), None


def _study_checks(
    records: Sequence[tuple[int | None, dict[str, Any]]], path: Path, conn: sqlite3.Connection, meta: dict[str, str], create: bool
) -> tuple[dict[int, tuple[str, str, datetime]], list[Problem]]:
    """The checks that need the study, on the raw records: line -> (flags, graded_at, instant) and the problems."""
    people = {r[0] for r in conn.execute("SELECT name FROM annotators")}
    answers = {(r[0], int(r[1])) for r in conn.execute("SELECT model_id, question_id FROM answers WHERE active = 1")}
    qids = {int(r[0]) for r in conn.execute("SELECT question_id FROM questions")}
    design = sample.read_design(meta)
    drawn = sample.sampled_slots(design) if design is not None else None
    now = utc_now()
    extras: dict[int, tuple[str, str, datetime]] = {}
    problems: list[Problem] = []
    for line, rec in records:
        def problem(column: str, message: str) -> None:
            problems.append(Problem(path, line, column, message))

        name = " ".join(str(rec.get("annotator") or "").split())
        if name:
            try:
                check_name(name)
            except OwlEvalError as exc:
                problem("annotator", str(exc))
            else:
                if name not in people and not create:
                    problem("annotator", f"unknown annotator {name!r} (the study has {', '.join(sorted(people)) or 'none'}); "
                                         "pass --create-annotators to add them")
        model = str(rec.get("model_id") or "").strip()
        qid = parse_question_id(str(rec.get("question_id") or "").strip())
        slot = None if qid is None else (model, qid)
        if slot is None or slot[1] not in qids:
            pass  # a question id the data set does not have: named by the export's checks
        elif any(m == model for m, _ in answers) and slot not in answers:
            problem("question_id", f"the study has no current answer of model {model!r} to question {slot[1]}")
        elif drawn is not None and slot in answers and slot not in drawn and import_special.record_kind(rec) == "regular":
            problem("question_id", f"model {model!r} question {slot[1]} is outside the study's sample (the answers drawn "
                                   "for grading); a grade for it would break the sampling design")
        graded_at = str(rec.get("graded_at") or "").strip() or now
        try:
            when = _instant(graded_at)
        except ValueError:
            problem("graded_at", f"{graded_at!r} is not an ISO 8601 time (e.g. 2024-05-01T09:30:00+00:00)")
            continue
        flags, flag_problem = _flags(str(rec.get("flags") or ""))
        if flag_problem:
            problem("flags", flag_problem)
            continue
        if len(str(rec.get("comment") or "").strip()) > MAX_COMMENT_LEN:
            problem("comment", f"longer than {MAX_COMMENT_LEN} characters")
        if line is not None:
            extras[line] = (flags or "", graded_at, when)
    return extras, problems


def read_import(path: Path, store: Store, data_dir: Path | None = None, create: bool = False) -> list[_Row]:
    """Every row of ``path``, checked against the study; raises :class:`InputFileError` naming each problem."""
    meta = store.meta()
    questions = load_questions(data_dir or Path(meta["data_dir"]))
    records = list(csv_records(path))  # header and format problems stop here
    conn = store.conn
    models = {r[0] for r in conn.execute("SELECT DISTINCT model_id FROM answers WHERE active = 1")}
    extras, problems = _study_checks(records, path, conn, meta, create)
    problems += import_special.check_item_columns(records, path)
    regular = [(line, rec) for line, rec in records if import_special.record_kind(rec) == "regular"]
    special = {line: rec for line, rec in records if import_special.record_kind(rec) != "regular"}
    origin = f"the study {store.path}"
    problems += import_special.validate_special(list(special.items()), path, questions, models, origin)
    frame = None
    if regular or not special:
        try:
            frame = validate_records(regular, path, questions, models=models, models_origin=origin)
        except InputFileError as exc:
            problems = exc.problems + problems
    if problems:
        raise InputFileError(sorted(problems, key=lambda p: (p.line or 0, p.field or "")))
    rows = []
    for rec in [] if frame is None else frame.to_dict("records"):
        flags, graded_at, when = extras[int(rec["source_line"])]
        rows.append(_Row(int(rec["source_line"]), " ".join(rec["annotator"].split()), rec["model_id"], int(rec["question_id"]), rec["grade"],
                         rec["comment"], flags, graded_at, when))
    for line, rec in special.items():
        flags, graded_at, when = extras[line]
        rows.append(_Row(line, " ".join(str(rec["annotator"]).split()), str(rec["model_id"]).strip(), int(float(str(rec["question_id"]).strip())),
                         str(rec["grade"]).strip().upper(), str(rec.get("comment") or "").strip(), flags, graded_at, when,
                         import_special.record_kind(rec), str(rec.get("expected_grade") or "").strip().upper()))
    return sorted(rows, key=lambda r: (r.when, r.line))


def _current(conn: sqlite3.Connection, annotator_id: int, answer_id: int, item_id: int | None = None) -> sqlite3.Row | None:
    return conn.execute(
        "SELECT grade, comment, flags, created_at FROM grade_events WHERE annotator_id = ? AND answer_id = ? AND item_id IS ? "
        "ORDER BY event_id DESC LIMIT 1",
        (annotator_id, answer_id, item_id),
    ).fetchone()


def insert_grade_event(conn: sqlite3.Connection, annotator_id: int, answer_id: int, row: _Row, item_id: int | None = None) -> None:
    """One imported grade event (explicit columns: later schema versions add columns with defaults)."""
    conn.execute(
        "INSERT INTO grade_events(annotator_id, answer_id, grade, comment, flags, created_at, item_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (annotator_id, answer_id, row.grade, row.comment, row.flags, row.graded_at, item_id),
    )


def write_import(store: Store, path: Path, rows: Iterable[_Row]) -> ImportSummary:
    """Add ``rows`` (checked by :func:`read_import`) in one transaction; nothing is written if any is refused."""
    summary = ImportSummary()
    meta = store.meta()
    with store.write() as conn:
        ids = {r[1]: int(r[0]) for r in conn.execute("SELECT annotator_id, name FROM annotators")}
        answer_ids = {(r[0], int(r[1])): int(r[2]) for r in conn.execute("SELECT model_id, question_id, answer_id FROM answers WHERE active = 1")}
        held = {(int(r[0]), r[1], int(r[2])) for r in conn.execute("SELECT annotator_id, model_id, question_id FROM assignments")}
        new_slots: dict[int, list[assign.Slot]] = {}
        conflicts = []
        for row in rows:
            if row.annotator not in ids:
                ids[row.annotator], summary.created[row.annotator] = create_annotator(conn, row.annotator, meta)
            who, slot = ids[row.annotator], (row.model_id, row.question_id)
            item_id = None
            if row.item_kind != "regular":
                item_id, problem = import_special.special_item(conn, who, row.item_kind, row.model_id, row.question_id,
                                                               row.expected_grade, path, row.line)
                if problem is not None:
                    conflicts.append(problem)
                    continue
                answer_id = import_special.item_answer(conn, item_id)
            elif slot not in answer_ids:  # a `study refresh` retired it after the check
                raise OwlEvalError(f"{path}:{row.line}: the study's answer changed during the import; run it again")
            else:
                answer_id = answer_ids[slot]
            current = _current(conn, who, answer_id, item_id)
            if current is not None and (current["grade"], current["comment"], current["flags"], current["created_at"]) == (
                row.grade, row.comment, row.flags, row.graded_at
            ):
                summary.unchanged += 1
                continue
            if current is not None and _instant(current["created_at"]) > row.when:
                conflicts.append(Problem(path, row.line, "graded_at", f"the study holds a later grade by {row.annotator!r} for this "
                                                                      f"answer ({current['grade']} at {current['created_at']}); "
                                                                      "importing this older one would replace it"))
                continue
            if item_id is None and (who, *slot) not in held:
                held.add((who, *slot))
                new_slots.setdefault(who, []).append(slot)
            insert_grade_event(conn, who, answer_id, row, item_id)
            summary.imported += 1
        if conflicts:
            raise InputFileError(conflicts)  # rolls the transaction back: nothing was written
        for who, slots in new_slots.items():
            assign.append_assignments(conn, who, sorted(slots))
            summary.assignments_added += len(slots)
    return summary


def import_grades(db_path: Path, path: Path, *, create_annotators: bool = False, data_dir: Path | None = None) -> ImportSummary:
    """Check the grades CSV ``path`` whole against the study ``db_path``, then add its grades in one transaction."""
    path = Path(path)
    if not path.exists():
        raise OwlEvalError(f"{path}: no such file")
    store = Store(Path(db_path))
    try:
        rows = read_import(path, store, data_dir, create_annotators)
        return write_import(store, path, rows)
    finally:
        store.close()
