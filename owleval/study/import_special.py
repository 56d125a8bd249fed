"""``owleval grades import`` of the special rows of an export (``item_kind`` gold, onboarding, attention, retest).

A special row becomes a grade event of that annotator's special item of that kind for that answer (created at the end
of their queue when the study does not hold it), so it never replaces their regular grade. Gold and onboarding rows
need the study's gold grade of the answer to be their ``expected_grade`` (a study without gold for it takes it as its
gold, note empty); an attention row names the reserved model ``owleval:check`` and the question it was asked on, and
the study gets a check item with that expected grade (its text, which the export does not hold, says it was imported).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from owleval.items import CHECK_MODEL
from owleval.errors import InputFileError, Problem
from owleval.study.special import EXPECTED_KINDS, ITEM_KINDS
from owleval.study.store import answer_sha256, utc_now
from owleval.questions import GRADES, Question
from owleval.records.grades import validate_records

Record = tuple[int | None, dict[str, Any]]


def record_kind(rec: dict[str, Any]) -> str:
    """The row's item kind as written (blank or missing: regular)."""
    return str(rec.get("item_kind") or "").strip().lower() or "regular"


def check_item_columns(records: Sequence[Record], path: Path) -> list[Problem]:
    """``item_kind`` from the vocabulary; ``expected_grade`` A-D where the kind has one, blank where it has none."""
    problems = []
    for line, rec in records:
        kind, expected = record_kind(rec), str(rec.get("expected_grade") or "").strip().upper()
        if kind not in ITEM_KINDS:
            problems.append(Problem(path, line, "item_kind", f"{rec.get('item_kind')!r} is not an item kind; allowed {', '.join(ITEM_KINDS)}"))
        elif kind in EXPECTED_KINDS and expected not in GRADES:
            problems.append(Problem(path, line, "expected_grade", f"a {kind} row needs its expected grade (A-D), got {rec.get('expected_grade')!r}"))
        elif kind not in EXPECTED_KINDS and expected:
            problems.append(Problem(path, line, "expected_grade", f"a {kind} row has no expected grade; leave it blank"))
        model = str(rec.get("model_id") or "").strip()
        if kind == "attention" and model != CHECK_MODEL:
            problems.append(Problem(path, line, "model_id", f"an attention row names the model {CHECK_MODEL!r}, got {model!r}"))
        elif kind != "attention" and model == CHECK_MODEL:
            problems.append(Problem(path, line, "model_id", f"{CHECK_MODEL!r} is the model of attention rows only (item_kind attention)"))
    return problems


def validate_special(records: Sequence[Record], path: Path, questions: Sequence[Question], models: Collection[str], origin: str) -> list[Problem]:
    """The export's value checks per kind (a kind may repeat an answer of another kind, not its own)."""
    problems: list[Problem] = []
    for kind in ITEM_KINDS[1:]:
        group = [(line, rec) for line, rec in records if record_kind(rec) == kind]
        if not group:
            continue
        allowed = {CHECK_MODEL} if kind == "attention" else set(models)
        try:
            validate_records(group, path, questions, models=allowed, models_origin=origin)
        except InputFileError as exc:
            problems += exc.problems
    return problems


def _end_position(conn: sqlite3.Connection, annotator_id: int) -> int:
    row = conn.execute(
        "SELECT MAX(p) FROM (SELECT MAX(position) AS p FROM assignments WHERE annotator_id = ? "
        "UNION ALL SELECT MAX(position) FROM special_items WHERE annotator_id = ?)", (annotator_id, annotator_id)
    ).fetchone()
    return 0 if row[0] is None else int(row[0]) + 1


def _new_item(conn: sqlite3.Connection, annotator_id: int, kind: str, answer_id: int, expected: str | None, note: str) -> int:
    cur = conn.execute(
        "INSERT INTO special_items(annotator_id, item_kind, answer_id, position, expected_grade, note, added_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (annotator_id, kind, answer_id, _end_position(conn, annotator_id), expected, note, utc_now()))
    return int(cur.lastrowid)


def special_item(conn: sqlite3.Connection, annotator_id: int, kind: str, model_id: str, question_id: int, expected: str,
                 path: Path, line: int) -> tuple[int | None, Problem | None]:
    """The annotator's item this row belongs to, made when the study lacks it; or the problem that stops it."""

    if kind == "attention":
        found = conn.execute(
            "SELECT p.item_id, p.expected_grade FROM special_items p JOIN answers a ON a.answer_id = p.answer_id "
            "WHERE p.annotator_id = ? AND p.item_kind = 'attention' AND a.question_id = ? ORDER BY p.item_id LIMIT 1",
            (annotator_id, question_id)).fetchone()
        if found is not None:
            if found[1] != expected:
                return None, Problem(path, line, "expected_grade", f"the study's attention check on question {question_id} expects {found[1]}")
            return int(found[0]), None
        text = f"(attention check imported from {path.name}; expected grade {expected})"
        cur = conn.execute(
            "INSERT INTO answers(model_id, question_id, answer, answer_sha256, source, active, added_at) VALUES (?, ?, ?, ?, ?, 0, ?)",
            (CHECK_MODEL, question_id, text, answer_sha256(text), f"imported from {path}", utc_now()))
        return _new_item(conn, annotator_id, kind, int(cur.lastrowid), expected, ""), None
    answer = conn.execute("SELECT answer_id FROM answers WHERE model_id = ? AND question_id = ? AND active = 1",
                          (model_id, question_id)).fetchone()
    if answer is None:
        return None, Problem(path, line, "question_id", f"the study has no current answer of model {model_id!r} to question {question_id}")
    answer_id, note = int(answer[0]), ""
    if kind in ("gold", "onboarding"):
        gold = conn.execute("SELECT grade, note FROM gold_answers WHERE answer_id = ?", (answer_id,)).fetchone()
        if gold is None:
            conn.execute("INSERT INTO gold_answers(answer_id, grade, note, source, added_at) VALUES (?, ?, '', ?, ?)",
                         (answer_id, expected, f"imported from {path}", utc_now()))
        elif gold[0] != expected:
            return None, Problem(path, line, "expected_grade", f"the study's gold grade of this answer is {gold[0]}, not {expected}")
        else:
            note = gold[1]
    found = conn.execute("SELECT item_id FROM special_items WHERE annotator_id = ? AND item_kind = ? AND answer_id = ?",
                         (annotator_id, kind, answer_id)).fetchone()
    if found is not None:
        return int(found[0]), None
    return _new_item(conn, annotator_id, kind, answer_id, expected or None, note), None


def item_answer(conn: sqlite3.Connection, item_id: int) -> int:
    return int(conn.execute("SELECT answer_id FROM special_items WHERE item_id = ?", (item_id,)).fetchone()[0])
