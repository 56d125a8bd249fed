"""An annotator's work: their queue in their own order, what one grading screen shows, and recording a grade.

Everything the app shows comes from here; the model name stays in these records on the server and is never
handed to the page.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from owleval.items import CHECK_MODEL
from owleval.errors import OwlEvalError
from owleval.study.store import Store, utc_now
from owleval.records.grades import FLAGS
from owleval.questions import GRADES

T = TypeVar("T")

MAX_COMMENT_LEN = 4000


@dataclass(frozen=True)
class QueueItem:
    index: int  # 0-based place in the annotator's shuffled queue
    answer_id: int
    model_id: str
    question_id: int
    grade: str | None
    item_id: int | None = None  # a special item (gold, onboarding, attention, retest); None: the regular item
    item_kind: str = "regular"
    view_id: int = 0  # what the page may show of the item: opaque, the same kind of number for every kind of item


@dataclass(frozen=True)
class GradeEvent:
    event_id: int
    grade: str
    comment: str
    flags: tuple[str, ...]
    created_at: str

    @classmethod
    def from_row(cls, row: sqlite3.Row | tuple) -> GradeEvent:
        """From ``event_id, grade, comment, flags, created_at`` (flags stored comma-separated)."""
        event_id, grade, comment, flags, created_at = tuple(row)
        return cls(int(event_id), grade, comment, tuple(f for f in flags.split(",") if f), created_at)


_EVENT_COLUMNS = "event_id, grade, comment, flags, created_at"


@dataclass(frozen=True)
class EarlierTurn:
    question: str
    answer: str | None  # this same model's answer; None when it has none


@dataclass(frozen=True)
class AnswerScreen:
    item: QueueItem
    question: str
    image_path: Path
    earlier: tuple[EarlierTurn, ...]
    answer: str
    history: tuple[GradeEvent, ...]  # oldest first; the last one is the current grade

    @property
    def current(self) -> GradeEvent | None:
        return self.history[-1] if self.history else None


def view_id(study_id: str, annotator_id: int, item_id: int | None, answer_id: int) -> int:
    """An opaque id of a queue item for the page (48 bits: exact in a browser's numbers). It names the item, so an
    action made on it can be checked against the queue, but says nothing about which kind of item or answer it is
    (answer ids would: an attention check's answer is newer than every answer of the study)."""
    digest = hashlib.blake2b(f"{study_id}|{annotator_id}|{item_id or 0}|{answer_id}".encode(), digest_size=6).digest()
    return int.from_bytes(digest, "big")


def load_queue(store: Store, annotator_id: int) -> list[QueueItem]:
    """The annotator's items that have an answer to grade, in their order, with their current grades: the regular
    assignments and, just before the regular item at their position, the special items (see
    :mod:`owleval.study.special`), each with its own grade."""
    rows = store.conn.execute(
        f"""SELECT a.answer_id, s.model_id, s.question_id, g.grade, NULL AS item_id, 'regular' AS kind, s.position, 1 AS tie
           FROM assignments s
           JOIN answers a ON a.model_id = s.model_id AND a.question_id = s.question_id AND a.active = 1
           LEFT JOIN (
               SELECT answer_id, grade FROM grade_events WHERE event_id IN (
                   SELECT MAX(event_id) FROM grade_events WHERE annotator_id = ? AND item_id IS NULL GROUP BY answer_id)
           ) g ON g.answer_id = a.answer_id
           WHERE s.annotator_id = ?
           UNION ALL
           SELECT a.answer_id, a.model_id, a.question_id, g.grade, p.item_id, p.item_kind, p.position, 0 AS tie
           FROM special_items p
           JOIN answers a ON a.answer_id = p.answer_id AND (a.active = 1 OR a.model_id = '{CHECK_MODEL}')
           LEFT JOIN (
               SELECT item_id, grade FROM grade_events WHERE event_id IN (
                   SELECT MAX(event_id) FROM grade_events WHERE annotator_id = ? AND item_id IS NOT NULL GROUP BY item_id)
           ) g ON g.item_id = p.item_id
           WHERE p.annotator_id = ?
           ORDER BY 7, 8, 5""",
        (annotator_id, annotator_id, annotator_id, annotator_id),
    )
    study_id = store.meta().get("study_id", "")
    return [QueueItem(i, int(r[0]), r[1], int(r[2]), r[3], None if r[4] is None else int(r[4]), r[5],
                      view_id(study_id, annotator_id, r[4], int(r[0])))
            for i, r in enumerate(rows)]


def next_open(queue: Sequence[T], after: int, is_open: Callable[[T], bool]) -> int | None:
    """The first place after ``after`` (wrapping round) whose item is still open, or None when none is."""
    n = len(queue)
    return next(((after + step) % n for step in range(1, n + 1) if is_open(queue[(after + step) % n])), None)


def next_ungraded(queue: Sequence[QueueItem], after: int = -1) -> int | None:
    """The first ungraded place after ``after`` (wrapping round), or None when all are graded."""
    return next_open(queue, after, lambda item: item.grade is None)


def _events(conn: sqlite3.Connection, annotator_id: int, answer_id: int, item_id: int | None = None) -> tuple[GradeEvent, ...]:
    """The grade events of one queue item: a special item's own, or the regular ones of the answer."""
    rows = conn.execute(
        f"SELECT {_EVENT_COLUMNS} FROM grade_events WHERE annotator_id = ? AND answer_id = ? AND item_id IS ? ORDER BY event_id",
        (annotator_id, answer_id, item_id),
    )
    return tuple(GradeEvent.from_row(r) for r in rows)


def answer_screen(store: Store, annotator_id: int, item: QueueItem, data_dir: Path) -> AnswerScreen:
    """What the grading screen shows for ``item``: image, question, the dialogue so far, the answer, history."""
    conn = store.conn
    row = conn.execute(
        "SELECT q.image, q.question, q.earlier_turns, a.answer FROM answers a JOIN questions q ON q.question_id = a.question_id "
        "WHERE a.answer_id = ?",
        (item.answer_id,),
    ).fetchone()
    earlier: list[EarlierTurn] = []
    for qid in json.loads(row["earlier_turns"]):
        turn = conn.execute(
            "SELECT q.question, a.answer FROM questions q LEFT JOIN answers a "
            "ON a.question_id = q.question_id AND a.model_id = ? AND a.active = 1 WHERE q.question_id = ?",
            (item.model_id, qid),
        ).fetchone()
        if turn is not None:
            earlier.append(EarlierTurn(turn["question"], turn["answer"]))
    return AnswerScreen(
        item=item,
        question=row["question"],
        image_path=Path(data_dir) / "cases" / row["image"],
        earlier=tuple(earlier),
        answer=row["answer"],
        history=_events(conn, annotator_id, item.answer_id, item.item_id),
    )


class StaleViewError(OwlEvalError):
    """A grade made on a view of an answer that is older than a grade given since in another window."""

    def __init__(self, replaced: GradeEvent):
        self.replaced = replaced
        super().__init__(
            f"Not saved: this answer was graded {replaced.grade} in another window after this one showed it. "
            f"Grade it again here to replace that {replaced.grade}."
        )


def record_grade(
    store: Store,
    annotator_id: int,
    answer_id: int,
    grade: str,
    comment: str = "",
    flags: tuple[str, ...] | list[str] = (),
    request_id: str | None = None,
    *,
    window: str | None = None,
    seq: int | None = None,
    seen: int | None = None,
    item_id: int | None = None,
) -> GradeEvent:
    """Append a grade event and return it once committed. A repeated ``request_id`` returns the first event.

    From the grading app: ``window`` and ``seq`` name the action (a repeated pair returns its first event, and a
    grade equal to the current one, from any window, adds nothing); ``seen`` is the latest event id
    the window showed for this answer (0: none): if a grade was given since in another window, the grade is refused
    with :class:`StaleViewError` rather than silently replacing it. ``item_id``: a special item of the annotator's
    queue (gold, onboarding, attention, retest); its grades are its own and never replace the regular grade.
    """
    if grade not in GRADES:
        raise OwlEvalError(f"grade must be one of {', '.join(GRADES)}, got {grade!r}")
    unknown = [f for f in flags if f not in FLAGS]
    if unknown:
        raise OwlEvalError(f"unknown flag(s) {unknown}; allowed: {', '.join(FLAGS)}")
    comment = comment.strip()
    if len(comment) > MAX_COMMENT_LEN:
        raise OwlEvalError(f"comment is {len(comment)} characters; the limit is {MAX_COMMENT_LEN}")
    flag_text = ",".join(f for f in FLAGS if f in flags)
    with store.write() as conn:
        if request_id is not None:
            seen_request = conn.execute(f"SELECT {_EVENT_COLUMNS} FROM grade_events WHERE request_id = ?", (request_id,)).fetchone()
            if seen_request is not None:
                return GradeEvent.from_row(seen_request)
        if window is not None and seq is not None:
            done = conn.execute(f"SELECT {_EVENT_COLUMNS} FROM grade_events WHERE window_id = ? AND window_seq = ?",
                                (window, seq)).fetchone()
            if done is not None:
                return GradeEvent.from_row(done)
        if item_id is None:
            allowed = conn.execute(
                "SELECT 1 FROM answers a JOIN assignments s ON s.model_id = a.model_id AND s.question_id = a.question_id "
                "WHERE a.answer_id = ? AND a.active = 1 AND s.annotator_id = ?",
                (answer_id, annotator_id),
            ).fetchone()
        else:
            allowed = conn.execute(
                "SELECT 1 FROM special_items p JOIN answers a ON a.answer_id = p.answer_id "
                f"WHERE p.item_id = ? AND p.annotator_id = ? AND p.answer_id = ? AND (a.active = 1 OR a.model_id = '{CHECK_MODEL}')",
                (item_id, annotator_id, answer_id),
            ).fetchone()
        if allowed is None:
            raise OwlEvalError("this answer is not in your queue any more (the study was changed); reload the page")
        latest = conn.execute(
            f"SELECT {_EVENT_COLUMNS}, window_id FROM grade_events WHERE annotator_id = ? AND answer_id = ? AND item_id IS ? "
            "ORDER BY event_id DESC LIMIT 1",
            (annotator_id, answer_id, item_id),
        ).fetchone()
        if latest is not None and window is not None:
            current = GradeEvent.from_row(tuple(latest)[:5])
            if latest["window_id"] != window and seen is not None and current.event_id > seen:
                raise StaleViewError(current)
            if (current.grade, current.comment, current.flags) == (grade, comment, tuple(f for f in flag_text.split(",") if f)):
                return current  # nothing changed (a double click, or the same grade from any window): nothing new
        now = utc_now()
        cur = conn.execute(
            "INSERT INTO grade_events(annotator_id, answer_id, grade, comment, flags, created_at, request_id, window_id, window_seq, item_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (annotator_id, answer_id, grade, comment, flag_text, now, request_id, window, seq, item_id),
        )
    return GradeEvent.from_row((cur.lastrowid, grade, comment, flag_text, now))  # only now committed
