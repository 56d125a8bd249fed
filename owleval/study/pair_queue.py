"""An annotator's pairwise work: their queue of pair items, what one voting screen shows, and recording a vote.

The app works in sides (``left`` / ``right``); the model ids stay here, on the server: :class:`PairScreen` carries
no model id, and :func:`record_vote` turns the side the person chose into ``model_a`` / ``model_b`` with the left
model stored in their queue. ``record_vote`` gives the guarantees of :func:`owleval.study.queue.record_grade`:
one vote per ``request_id`` and per (window, sequence) action, a double click adds nothing, and a vote made on a
view older than a vote given since in another window is refused rather than silently replacing it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from owleval.errors import OwlEvalError
from owleval.study.queue import MAX_COMMENT_LEN, EarlierTurn, next_open, view_id
from owleval.study.store import Store, utc_now

CHOICES = ("left", "right", "tie", "both_bad")  # what the person picks on screen


@dataclass(frozen=True)
class PairQueueItem:
    index: int  # 0-based place in the annotator's queue
    pair_id: int
    question_id: int
    model_a: str
    model_b: str
    left_model: str
    choice: str | None  # the current vote as a side: left, right, tie, both_bad (None: not voted)
    item_id: int | None = None  # a blind gold pair (pair_special_items); None: the regular item
    item_kind: str = "regular"
    view_id: int = 0  # what the page may show of the item (opaque; see owleval.study.queue.view_id)


@dataclass(frozen=True)
class VoteEvent:
    event_id: int
    winner: str  # model_a, model_b, tie, both_bad
    choice: str  # the same as the side it was given on: left, right, tie, both_bad
    reason: str
    created_at: str


@dataclass(frozen=True)
class Side:
    """One side of the screen: that model's own earlier turns of the dialogue, and its answer. No model id."""

    earlier: tuple[EarlierTurn, ...]
    answer: str


@dataclass(frozen=True)
class PairScreen:
    index: int
    pair_id: int
    question: str
    image_path: Path
    left: Side
    right: Side
    history: tuple[VoteEvent, ...]  # oldest first; the last one is the current vote

    @property
    def current(self) -> VoteEvent | None:
        return self.history[-1] if self.history else None


def choice_of(winner: str, left: str, model_a: str) -> str:
    """A stored winner as the side it is on for a person who saw ``left`` on the left."""
    if winner in ("tie", "both_bad"):
        return winner
    a_won = winner == "model_a"
    return "left" if a_won == (left == model_a) else "right"


def winner_of(choice: str, left: str, model_a: str) -> str:
    """The side a person chose as ``model_a`` / ``model_b`` / ``tie`` / ``both_bad``."""
    if choice in ("tie", "both_bad"):
        return choice
    if choice not in ("left", "right"):
        raise OwlEvalError(f"a vote must be one of {', '.join(CHOICES)}, got {choice!r}")
    picked_a = (choice == "left") == (left == model_a)
    return "model_a" if picked_a else "model_b"


def load_pair_queue(store: Store, annotator_id: int) -> list[PairQueueItem]:
    """The annotator's assigned items that are active and askable, in their order, with their current votes; a blind
    gold pair (:mod:`owleval.study.pair_gold`) comes just before the regular item at its position, with its own vote."""
    rows = store.conn.execute(
        """SELECT p.pair_id, s.question_id, s.model_a, s.model_b, s.left_model, v.winner, NULL, 'regular', s.position, 1
           FROM pair_assignments s
           JOIN pair_items p ON p.question_id = s.question_id AND p.model_a = s.model_a AND p.model_b = s.model_b
                AND p.active = 1 AND p.identical = 0
           LEFT JOIN (
               SELECT pair_id, winner FROM vote_events WHERE event_id IN (
                   SELECT MAX(event_id) FROM vote_events WHERE annotator_id = ? AND item_id IS NULL GROUP BY pair_id)
           ) v ON v.pair_id = p.pair_id
           WHERE s.annotator_id = ?
           UNION ALL
           SELECT p.pair_id, p.question_id, p.model_a, p.model_b, g.left_model, v.winner, g.item_id, g.item_kind, g.position, 0
           FROM pair_special_items g
           JOIN pair_items p ON p.pair_id = g.pair_id AND p.active = 1 AND p.identical = 0
           LEFT JOIN (
               SELECT item_id, winner FROM vote_events WHERE event_id IN (
                   SELECT MAX(event_id) FROM vote_events WHERE annotator_id = ? AND item_id IS NOT NULL GROUP BY item_id)
           ) v ON v.item_id = g.item_id
           WHERE g.annotator_id = ?
           ORDER BY 9, 10, 7""",
        (annotator_id, annotator_id, annotator_id, annotator_id),
    )
    study_id = store.meta().get("study_id", "")
    return [
        PairQueueItem(i, int(r[0]), int(r[1]), r[2], r[3], r[4], None if r[5] is None else choice_of(r[5], r[4], r[2]),
                      None if r[6] is None else int(r[6]), r[7], view_id(study_id, annotator_id, r[6], int(r[0])))
        for i, r in enumerate(rows)
    ]


def next_unvoted(queue: Sequence[PairQueueItem], after: int = -1) -> int | None:
    """The first unvoted place after ``after`` (wrapping round), or None when all are voted."""
    return next_open(queue, after, lambda item: item.choice is None)


def _events(conn: sqlite3.Connection, annotator_id: int, pair_id: int, model_a: str, item_id: int | None = None) -> tuple[VoteEvent, ...]:
    rows = conn.execute(
        "SELECT event_id, winner, left_model, reason, created_at FROM vote_events WHERE annotator_id = ? AND pair_id = ? "
        "AND item_id IS ? ORDER BY event_id",
        (annotator_id, pair_id, item_id),
    )
    return tuple(VoteEvent(int(r[0]), r[1], choice_of(r[1], r[2], model_a), r[3], r[4]) for r in rows)


def _side(conn: sqlite3.Connection, model: str, question_id: int, earlier_ids: list[int]) -> Side:
    earlier = []
    for qid in earlier_ids:
        turn = conn.execute(
            "SELECT q.question, a.answer FROM questions q LEFT JOIN answers a "
            "ON a.question_id = q.question_id AND a.model_id = ? AND a.active = 1 WHERE q.question_id = ?",
            (model, qid),
        ).fetchone()
        if turn is not None:
            earlier.append(EarlierTurn(turn["question"], turn["answer"]))
    answer = conn.execute("SELECT answer FROM answers WHERE model_id = ? AND question_id = ? AND active = 1",
                          (model, question_id)).fetchone()
    return Side(tuple(earlier), answer["answer"] if answer else "")


def pair_screen(store: Store, annotator_id: int, item: PairQueueItem, data_dir: Path) -> PairScreen:
    """What the voting screen shows for ``item``: image and question once, each side's own dialogue and answer."""
    conn = store.conn
    row = conn.execute(
        "SELECT q.image, q.question, q.earlier_turns, a.answer AS answer_a, b.answer AS answer_b FROM pair_items p "
        "JOIN questions q ON q.question_id = p.question_id JOIN answers a ON a.answer_id = p.answer_a "
        "JOIN answers b ON b.answer_id = p.answer_b WHERE p.pair_id = ?",
        (item.pair_id,),
    ).fetchone()
    earlier_ids = json.loads(row["earlier_turns"])
    right_model = item.model_b if item.left_model == item.model_a else item.model_a
    left, right = (_side(conn, m, item.question_id, earlier_ids) for m in (item.left_model, right_model))
    # the texts of the pair item itself (the exact answers compared), not whatever is active now
    texts = {item.model_a: row["answer_a"], item.model_b: row["answer_b"]}
    left, right = Side(left.earlier, texts[item.left_model]), Side(right.earlier, texts[right_model])
    return PairScreen(item.index, item.pair_id, row["question"], Path(data_dir) / "cases" / row["image"], left, right,
                      _events(conn, annotator_id, item.pair_id, item.model_a, item.item_id))


class StaleVoteError(OwlEvalError):
    """A vote made on a view of a pair that is older than a vote given since in another window."""

    def __init__(self, replaced: VoteEvent):
        self.replaced = replaced
        super().__init__("Not saved: this pair was voted on in another window after this one showed it. "
                         "Vote again here to replace that vote.")


def record_vote(
    store: Store,
    annotator_id: int,
    pair_id: int,
    choice: str,
    reason: str = "",
    request_id: str | None = None,
    *,
    window: str | None = None,
    seq: int | None = None,
    seen: int | None = None,
    item_id: int | None = None,
) -> VoteEvent:
    """Append a vote event (``choice``: left, right, tie or both_bad, as the annotator saw the pair) and return it
    once committed. ``request_id``, ``window``/``seq`` and ``seen`` work as in
    :func:`owleval.study.queue.record_grade`. ``item_id``: a blind gold pair of the annotator's queue; its votes
    are its own and never replace the regular vote of that pair."""
    if choice not in CHOICES:
        raise OwlEvalError(f"a vote must be one of {', '.join(CHOICES)}, got {choice!r}")
    reason = reason.strip()
    if len(reason) > MAX_COMMENT_LEN:
        raise OwlEvalError(f"reason is {len(reason)} characters; the limit is {MAX_COMMENT_LEN}")
    with store.write() as conn:
        if item_id is None:
            held = conn.execute(
                "SELECT p.model_a, s.left_model FROM pair_items p JOIN pair_assignments s ON s.question_id = p.question_id "
                "AND s.model_a = p.model_a AND s.model_b = p.model_b "
                "WHERE p.pair_id = ? AND p.active = 1 AND p.identical = 0 AND s.annotator_id = ?",
                (pair_id, annotator_id),
            ).fetchone()
        else:
            held = conn.execute(
                "SELECT p.model_a, g.left_model FROM pair_items p JOIN pair_special_items g ON g.pair_id = p.pair_id "
                "WHERE p.pair_id = ? AND p.active = 1 AND p.identical = 0 AND g.annotator_id = ? AND g.item_id = ?",
                (pair_id, annotator_id, item_id),
            ).fetchone()
        done = None
        if request_id is not None:
            done = conn.execute("SELECT event_id, winner, left_model, reason, created_at FROM vote_events WHERE request_id = ?",
                                (request_id,)).fetchone()
        if done is None and window is not None and seq is not None:
            done = conn.execute("SELECT event_id, winner, left_model, reason, created_at FROM vote_events "
                                "WHERE window_id = ? AND window_seq = ?", (window, seq)).fetchone()
        if done is not None:
            model_a = conn.execute("SELECT p.model_a FROM vote_events e JOIN pair_items p ON p.pair_id = e.pair_id "
                                   "WHERE e.event_id = ?", (done[0],)).fetchone()[0]
            return VoteEvent(int(done[0]), done[1], choice_of(done[1], done[2], model_a), done[3], done[4])
        if held is None:
            raise OwlEvalError("this pair is not in your queue any more (the study was changed); reload the page")
        model_a, left = held["model_a"], held["left_model"]
        winner = winner_of(choice, left, model_a)
        latest = conn.execute(
            "SELECT event_id, winner, left_model, reason, created_at, window_id FROM vote_events "
            "WHERE annotator_id = ? AND pair_id = ? AND item_id IS ? ORDER BY event_id DESC LIMIT 1",
            (annotator_id, pair_id, item_id),
        ).fetchone()
        if latest is not None and window is not None:
            current = VoteEvent(int(latest[0]), latest[1], choice_of(latest[1], latest[2], model_a), latest[3], latest[4])
            if latest["window_id"] != window and seen is not None and current.event_id > seen:
                raise StaleVoteError(current)
            if (current.winner, current.reason) == (winner, reason):
                return current  # nothing changed (a double click, or the same vote from any window): nothing new
        now = utc_now()
        cur = conn.execute(
            "INSERT INTO vote_events(annotator_id, pair_id, left_model, winner, reason, created_at, request_id, window_id, window_seq, item_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (annotator_id, pair_id, left, winner, reason, now, request_id, window, seq, item_id),
        )
    return VoteEvent(int(cur.lastrowid), winner, choice, reason, now)  # only now committed
