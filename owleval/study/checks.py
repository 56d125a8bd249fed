"""Attention checks made by OwlEval itself, the two kinds Prolific allows.

- *Instructed response*: an answer whose text tells the reader which grade to give, in words no reader can miss.
- *Nonsense*: the answer another model gave to a question about another image, shown under this question; it
  cannot answer it, so D (irrelevant or incorrect) is the only right grade.

Both are stored as answers of the reserved model :data:`~owleval.answers.CHECK_MODEL`, inactive, so no queue,
export or refresh of regular answers ever sees them. They are asked only on questions with no earlier turns: a later
turn shows "this assistant's" earlier answers, which a check does not have.
"""

from __future__ import annotations

import json
import random
import sqlite3
from dataclasses import dataclass

from owleval.items import CHECK_MODEL
from owleval.study.store import answer_sha256, utc_now

INSTRUCTED, NONSENSE = "instructed", "nonsense"
_MEANING = {"A": "correct and satisfying", "B": "acceptable with some imperfections", "C": "obvious errors", "D": "irrelevant or incorrect"}


def instructed_text(grade: str) -> str:
    """The answer text of an instructed-response check asking for ``grade``."""
    return (
        f"ATTENTION CHECK. This is not an answer to the question. To show that you read every answer, please give "
        f"this one the grade {grade} (\"{_MEANING[grade]}\"), whatever the image and the question are. "
        f"Grade {grade}: press {grade} or click the {grade} button."
    )


@dataclass(frozen=True)
class CheckAnswer:
    answer_id: int
    question_id: int
    expected_grade: str
    kind: str  # INSTRUCTED or NONSENSE


def check_questions(conn: sqlite3.Connection) -> list[tuple[int, str]]:
    """(question id, image) of the study's questions that have no earlier turns and a current answer."""
    rows = conn.execute(
        "SELECT q.question_id, q.image, q.earlier_turns FROM questions q WHERE EXISTS "
        "(SELECT 1 FROM answers a WHERE a.question_id = q.question_id AND a.active = 1) ORDER BY q.question_id"
    )
    return [(int(r[0]), r[1]) for r in rows if not json.loads(r[2])]


def make_check(conn: sqlite3.Connection, kind: str, question_id: int, image: str, rng: random.Random, source: str) -> CheckAnswer:
    """Insert one check answer for ``question_id`` (inside the caller's transaction)."""

    if kind == INSTRUCTED:
        expected = rng.choice("ABCD")
        text, origin = instructed_text(expected), f"{source}: instructed response, grade {expected}"
    else:
        others = conn.execute(
            "SELECT a.answer, a.model_id, a.question_id FROM answers a JOIN questions q ON q.question_id = a.question_id "
            "WHERE a.active = 1 AND q.image != ? AND length(trim(a.answer)) > 0 ORDER BY a.answer_id", (image,)
        ).fetchall()
        expected = "D"
        if others:
            text, model, qid = rng.choice(others)
            origin = f"{source}: nonsense, the answer of {model} to question {qid}"
        else:  # a study of one image: no answer of another image to borrow
            text, origin = "The picture shows a bowl of soup on a wooden table next to a spoon.", f"{source}: nonsense, fixed text"
    cur = conn.execute(
        "INSERT INTO answers(model_id, question_id, answer, answer_sha256, source, active, added_at) VALUES (?, ?, ?, ?, ?, 0, ?)",
        (CHECK_MODEL, question_id, text, answer_sha256(text), origin, utc_now()),
    )
    return CheckAnswer(int(cur.lastrowid), question_id, expected, kind)
