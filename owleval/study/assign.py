"""Who grades what, and in which order.

Blind grading needs each annotator's order shuffled (seeded, so it is reproducible) so that one model's
answers do not come in a block; ``--overlap K`` needs each answer given to exactly K annotators with every
annotator's load, overall and per model, within one of the others'.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Sequence

Slot = tuple[str, int]  # (model_id, question_id): what an annotator is asked to grade


def spread(slots: Sequence[Slot], annotators: Sequence[str], overlap: int | None, seed: int) -> dict[str, list[Slot]]:
    """Give every slot to ``overlap`` annotators (all of them when None), evenly.

    Slots are walked model by model (questions shuffled within a model) and dealt round-robin, so each
    annotator's total and per-model loads differ by at most one.
    """
    names = list(annotators)
    if not names:
        return {}
    k = len(names) if overlap is None else overlap
    if not 1 <= k <= len(names):
        raise ValueError(f"overlap must be between 1 and the number of annotators ({len(names)}), got {k}")
    rng = random.Random(f"spread:{seed}")
    ordered: list[Slot] = []
    for model in sorted({m for m, _ in slots}):
        group = sorted(s for s in slots if s[0] == model)
        rng.shuffle(group)
        ordered += group
    out: dict[str, list[Slot]] = {n: [] for n in names}
    for i, slot in enumerate(ordered):
        for j in range(k):
            out[names[(i * k + j) % len(names)]].append(slot)
    return out


def shuffled(slots: Sequence[Slot], name: str, seed: int) -> list[Slot]:
    """An annotator's own grading order: the same for the same study seed and name."""
    order = sorted(slots)
    random.Random(f"order:{seed}:{name}").shuffle(order)
    return order


def append_assignments(conn: sqlite3.Connection, annotator_id: int, slots: Sequence[Slot]) -> None:
    """Add ``slots`` at the end of an annotator's queue (inside the caller's transaction)."""
    row = conn.execute("SELECT COALESCE(MAX(position), -1) FROM assignments WHERE annotator_id = ?", (annotator_id,)).fetchone()
    start = int(row[0]) + 1
    conn.executemany(
        "INSERT INTO assignments(annotator_id, model_id, question_id, position) VALUES (?, ?, ?, ?)",
        [(annotator_id, m, q, start + i) for i, (m, q) in enumerate(slots)],
    )


def loads(conn: sqlite3.Connection) -> dict[int, int]:
    """annotator_id -> number of assignments."""
    rows = conn.execute(
        "SELECT a.annotator_id, COUNT(s.position) FROM annotators a "
        "LEFT JOIN assignments s ON s.annotator_id = a.annotator_id GROUP BY a.annotator_id"
    )
    return {int(r[0]): int(r[1]) for r in rows}


def _ungraded_slots(conn: sqlite3.Connection, annotator_id: int) -> list[Slot]:
    rows = conn.execute(
        """SELECT s.model_id, s.question_id FROM assignments s
           WHERE s.annotator_id = ? AND NOT EXISTS (
               SELECT 1 FROM grade_events e JOIN answers a ON a.answer_id = e.answer_id
               WHERE e.annotator_id = s.annotator_id AND a.model_id = s.model_id AND a.question_id = s.question_id)
           ORDER BY s.position DESC""",
        (annotator_id,),
    )
    return [(r[0], int(r[1])) for r in rows]


def take_share(conn: sqlite3.Connection, newcomer_id: int) -> list[Slot]:
    """Move an even share of other annotators' ungraded work to a newcomer (overlap studies).

    Takes from the most loaded annotator each time, only slots the newcomer does not hold yet and nobody has
    started grading, so no grade is orphaned and every slot keeps exactly K annotators.
    """
    current = loads(conn)
    others = {a: n for a, n in current.items() if a != newcomer_id}
    target = sum(others.values()) // (len(others) + 1)
    pools = {a: _ungraded_slots(conn, a) for a in others}
    taken: list[Slot] = []
    held: set[Slot] = set()
    while len(taken) < target:
        donors = sorted((a for a in others if pools[a]), key=lambda a: (-others[a], a))
        moved = False
        for donor in donors:
            pool = pools[donor]
            pick = next((s for s in pool if s not in held), None)
            if pick is None:
                continue
            pool.remove(pick)
            conn.execute(
                "DELETE FROM assignments WHERE annotator_id = ? AND model_id = ? AND question_id = ?",
                (donor, pick[0], pick[1]),
            )
            others[donor] -= 1
            taken.append(pick)
            held.add(pick)
            moved = True
            break
        if not moved:
            break
    return taken
