"""Gold answers: answers of a study whose right grade an expert has fixed (``--gold gold.csv``).

The file has the columns ``question_id, model_id, grade[, note]``. Every row must name a current answer of the study;
a gold grade is tied to that exact answer text (its answer id), so a refresh that changes the text leaves the gold
behind with the old text. The whole file is checked before anything is written and every problem names its line.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from owleval.answers import is_reserved_model_id
from owleval.csvio import read_records
from owleval.errors import InputFileError, OwlEvalError, Problem
from owleval.study.store import utc_now
from owleval.questions import GRADES

GOLD_REQUIRED = ("question_id", "model_id", "grade")
GOLD_OPTIONAL = ("note",)
MAX_NOTE_LEN = 2000


@dataclass(frozen=True)
class GoldRow:
    line: int
    model_id: str
    question_id: int
    grade: str
    note: str
    answer_id: int


@dataclass(frozen=True)
class GoldRecord:
    """One well-formed row of a gold file, not yet tied to a study."""

    line: int
    model_id: str
    question_id: int
    grade: str
    note: str


def parse_gold_csv(path: Path, check: Callable[[str, int], list[tuple[str, str]]] | None = None) -> list[GoldRecord]:
    """Every row of the gold file ``path`` checked on its own (ids, grade, note, no answer twice) and by ``check``
    (model id, question id -> problems as (column, message)); raises :class:`InputFileError` naming every problem by
    line and column at once. The report reads gold files with this too."""
    path = Path(path)
    if not path.is_file():
        raise OwlEvalError(f"{path}: no such gold file (expected a CSV with {', '.join(GOLD_REQUIRED)}[, note])")
    rows: list[GoldRecord] = []
    problems: list[Problem] = []
    seen: dict[tuple[str, int], int] = {}
    for line, rec in read_records(path, GOLD_REQUIRED, known=GOLD_OPTIONAL):
        def problem(column: str, message: str) -> None:
            problems.append(Problem(path, line, column, message))

        problems_before = len(problems)
        model = str(rec.get("model_id") or "").strip()
        raw_qid = str(rec.get("question_id") or "").strip()
        grade = str(rec.get("grade") or "").strip().upper()
        note = str(rec.get("note") or "").strip()
        qid = int(raw_qid) if raw_qid.isdigit() else None
        if qid is None:
            problem("question_id", f"{raw_qid!r} is not a question id")
        if not model:
            problem("model_id", "empty")
        elif is_reserved_model_id(model):
            problem("model_id", f"{model!r} is reserved for OwlEval's attention checks; gold rows name answers of the study's models")
        elif check is not None:
            for column, message in check(model, qid):
                problem(column, message)
        if grade not in GRADES:
            problem("grade", f"{rec.get('grade')!r} is not a grade; allowed A, B, C, D")
        if len(note) > MAX_NOTE_LEN:
            problem("note", f"longer than {MAX_NOTE_LEN} characters")
        if len(problems) > problems_before:
            continue
        if (model, qid) in seen:
            problem("question_id", f"model {model!r} question {qid} is given twice (first on line {seen[(model, qid)]})")
            continue
        seen[(model, qid)] = line
        rows.append(GoldRecord(line, model, qid, grade, note))
    if problems:
        raise InputFileError(problems)
    if not rows:
        raise InputFileError([Problem(path, None, None, "holds no gold rows")])
    return rows


def read_gold_csv(path: Path, conn: sqlite3.Connection) -> list[GoldRow]:
    """Every row of the gold file ``path`` (see :func:`parse_gold_csv`), each naming a current answer of the study open
    on ``conn``; raises :class:`InputFileError` naming each problem by line and column."""
    answers = {(r[0], int(r[1])): int(r[2]) for r in conn.execute("SELECT model_id, question_id, answer_id FROM answers WHERE active = 1")}
    models = sorted({m for m, _ in answers})

    def in_study(model: str, qid: int | None) -> list[tuple[str, str]]:
        if model not in models:
            return [("model_id", f"model {model!r} is not in this study ({', '.join(models)})")]
        if qid is not None and (model, qid) not in answers:
            return [("question_id", f"the study has no current answer of model {model!r} to question {qid}")]
        return []

    records = parse_gold_csv(path, in_study)
    return [GoldRow(r.line, r.model_id, r.question_id, r.grade, r.note, answers[(r.model_id, r.question_id)]) for r in records]


def insert_gold(conn: sqlite3.Connection, rows: list[GoldRow], path: Path) -> int:
    """Store the gold rows inside the caller's transaction; returns how many are new. A row for an answer that
    already has gold is refused if it gives another grade or note, and skipped if it is the same."""
    held = {int(r[0]): (r[1], r[2]) for r in conn.execute("SELECT answer_id, grade, note FROM gold_answers")}
    conflicts = [Problem(path, r.line, "grade", f"model {r.model_id!r} question {r.question_id} already has gold grade "
                                                 f"{held[r.answer_id][0]} in this study")
                 for r in rows if r.answer_id in held and held[r.answer_id] != (r.grade, r.note)]
    if conflicts:
        raise InputFileError(conflicts)
    new = [r for r in rows if r.answer_id not in held]
    now = utc_now()
    conn.executemany("INSERT INTO gold_answers(answer_id, grade, note, source, added_at) VALUES (?, ?, ?, ?, ?)",
                     [(r.answer_id, r.grade, r.note, str(Path(path).resolve()), now) for r in new])
    return len(new)
