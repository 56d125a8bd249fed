"""Pairwise studies: the pair items of a study file, who votes on which, and on which side each answer is shown.

A pairwise study is an ordinary study file (questions, answers, annotators, tokens) whose meta says
``mode = pairwise`` and holds the pair design (:mod:`owleval.study.pairs`). Its work is in the schema-3 tables:
``pair_items`` (a question and the two exact answer texts compared), ``pair_assignments`` (an annotator's queue, in
their own shuffled order, with the model shown on the left) and ``vote_events``. Two identical answer texts make an
item marked ``identical``: a tie that nobody is asked about. A refresh that changes either answer text retires the
item (its votes stay in history) and adds a new one under the same queue place.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from owleval.study.store import utc_now
from owleval.study.pairs import META_KEY, PairDesign, PairItem, left_model, select_pairs
from owleval.questions import Question

MODE_KEY, PAIRWISE = "mode", "pairwise"


def is_pairwise(meta: dict[str, str]) -> bool:
    return meta.get(MODE_KEY) == PAIRWISE


def read_design(meta: dict[str, str]) -> PairDesign:
    return PairDesign.from_json(meta[META_KEY])


@dataclass
class PairSync:
    """What loading the answers did to the pair items."""

    kept: int = 0
    added: int = 0  # items new to the study
    changed: int = 0  # an answer text changed: a new item, the old one's votes stay in history
    retired: int = 0  # no longer selected (an answer went away)
    identical: int = 0  # active items whose two answers are the same text (ties, not asked)
    new_to_queue: list[PairItem] | None = None  # askable items nobody holds yet


def sync_pair_items(conn: sqlite3.Connection, design: PairDesign, questions: Sequence[Question]) -> PairSync:
    """Bring ``pair_items`` in line with the study's current answers (inside the caller's transaction)."""
    answers = {
        (r[0], int(r[1])): (int(r[2]), r[3])
        for r in conn.execute("SELECT model_id, question_id, answer_id, answer_sha256 FROM answers WHERE active = 1")
    }
    answered: dict[str, set[int]] = {}
    for model, qid in answers:
        answered.setdefault(model, set()).add(qid)
    wanted = set(select_pairs(answered, questions, design))
    current = {
        (int(r[0]), r[1], r[2]): (int(r[3]), int(r[4]), int(r[5]))
        for r in conn.execute("SELECT question_id, model_a, model_b, pair_id, answer_a, answer_b FROM pair_items WHERE active = 1")
    }
    now, sync = utc_now(), PairSync(new_to_queue=[])
    for item, (pair_id, _, _) in current.items():
        if item not in wanted:
            conn.execute("UPDATE pair_items SET active = 0, retired_at = ? WHERE pair_id = ?", (now, pair_id))
            sync.retired += 1
    held = {(int(r[0]), r[1], r[2]) for r in conn.execute("SELECT DISTINCT question_id, model_a, model_b FROM pair_assignments")}
    for item in sorted(wanted):
        q, a, b = item
        (id_a, sha_a), (id_b, sha_b) = answers[(a, q)], answers[(b, q)]
        old = current.get(item)
        if old is not None and old[1:] == (id_a, id_b):
            sync.kept += 1
            sync.identical += sha_a == sha_b
            continue
        if old is not None:
            conn.execute("UPDATE pair_items SET active = 0, retired_at = ? WHERE pair_id = ?", (now, old[0]))
            sync.changed += 1
        else:
            sync.added += 1
        conn.execute(
            "INSERT INTO pair_items(question_id, model_a, model_b, answer_a, answer_b, identical, added_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (q, a, b, id_a, id_b, int(sha_a == sha_b), now),
        )
        sync.identical += sha_a == sha_b
        if sha_a != sha_b and item not in held:
            sync.new_to_queue.append(item)
    return sync


def askable_items(conn: sqlite3.Connection) -> list[PairItem]:
    """The active items people vote on (identical texts are ties, not asked)."""
    rows = conn.execute("SELECT question_id, model_a, model_b FROM pair_items WHERE active = 1 AND identical = 0")
    return sorted((int(r[0]), r[1], r[2]) for r in rows)


def deal(items: Sequence[PairItem], names: Sequence[str], overlap: int | None, seed: int) -> dict[str, list[PairItem]]:
    """Give every item to ``overlap`` annotators (all when None): walked model pair by model pair (questions
    shuffled within a pair) and dealt round-robin, so loads overall and per model pair differ by at most one."""
    if not names:
        return {}
    k = len(names) if overlap is None else overlap
    rng = random.Random(f"deal:{seed}")
    ordered: list[PairItem] = []
    for pair in sorted({(a, b) for _, a, b in items}):
        group = sorted(i for i in items if (i[1], i[2]) == pair)
        rng.shuffle(group)
        ordered += group
    out: dict[str, list[PairItem]] = {n: [] for n in names}
    for i, item in enumerate(ordered):
        for j in range(k):
            out[names[(i * k + j) % len(names)]].append(item)
    return out


def append_pair_assignments(conn: sqlite3.Connection, annotator_id: int, name: str, items: Sequence[PairItem], seed: int) -> None:
    """Add ``items`` at the end of an annotator's queue, in their own seeded order, each with its left side drawn."""
    order = sorted(items)
    random.Random(f"pair-order:{seed}:{name}").shuffle(order)
    start = int(conn.execute("SELECT COALESCE(MAX(position), -1) FROM pair_assignments WHERE annotator_id = ?",
                             (annotator_id,)).fetchone()[0]) + 1
    conn.executemany(
        "INSERT INTO pair_assignments(annotator_id, question_id, model_a, model_b, left_model, position) VALUES (?, ?, ?, ?, ?, ?)",
        [(annotator_id, q, a, b, left_model((q, a, b), name, seed), start + i) for i, (q, a, b) in enumerate(order)],
    )


def _loads(conn: sqlite3.Connection) -> dict[int, int]:
    rows = conn.execute("SELECT a.annotator_id, COUNT(s.position) FROM annotators a "
                        "LEFT JOIN pair_assignments s ON s.annotator_id = a.annotator_id GROUP BY a.annotator_id")
    return {int(r[0]): int(r[1]) for r in rows}


def _unvoted(conn: sqlite3.Connection, annotator_id: int) -> list[PairItem]:
    rows = conn.execute(
        """SELECT s.question_id, s.model_a, s.model_b FROM pair_assignments s
           WHERE s.annotator_id = ? AND NOT EXISTS (
               SELECT 1 FROM vote_events e JOIN pair_items p ON p.pair_id = e.pair_id
               WHERE e.annotator_id = s.annotator_id AND p.question_id = s.question_id AND p.model_a = s.model_a
                 AND p.model_b = s.model_b)
           ORDER BY s.position DESC""",
        (annotator_id,),
    )
    return [(int(r[0]), r[1], r[2]) for r in rows]


def take_share(conn: sqlite3.Connection, newcomer_id: int) -> list[PairItem]:
    """Move an even share of the others' unvoted items to a newcomer (``--overlap`` studies): from the most loaded
    each time, only items the newcomer does not hold and nobody has voted on, so every item keeps K annotators."""
    others = {a: n for a, n in _loads(conn).items() if a != newcomer_id}
    target = sum(others.values()) // (len(others) + 1)
    pools = {a: _unvoted(conn, a) for a in others}
    taken: list[PairItem] = []
    while len(taken) < target:
        for donor in sorted((a for a in others if pools[a]), key=lambda a: (-others[a], a)):
            pick = next((i for i in pools[donor] if i not in taken), None)
            if pick is None:
                continue
            pools[donor].remove(pick)
            conn.execute("DELETE FROM pair_assignments WHERE annotator_id = ? AND question_id = ? AND model_a = ? AND model_b = ?",
                         (donor, *pick))
            others[donor] -= 1
            taken.append(pick)
            break
        else:
            break
    return taken


def enrol(conn: sqlite3.Connection, annotator_id: int, name: str, meta: dict[str, str]) -> None:
    """A new annotator's share of a pairwise study: every askable item (full overlap) or an even share."""
    items = askable_items(conn) if meta["overlap"] == "all" else take_share(conn, annotator_id)
    append_pair_assignments(conn, annotator_id, name, items, int(meta["seed"]))


def assign_new_items(conn: sqlite3.Connection, items: Sequence[PairItem], meta: dict[str, str]) -> None:
    """Items new to a study go to everyone (full overlap) or to the K least loaded annotators."""
    people = {int(r[0]): r[1] for r in conn.execute("SELECT annotator_id, name FROM annotators")}
    if not items or not people:
        return
    k = len(people) if meta["overlap"] == "all" else min(int(meta["overlap"]), len(people))
    load = _loads(conn)
    plan: dict[int, list[PairItem]] = {a: [] for a in people}
    for item in sorted(items):
        for who in sorted(people, key=lambda a: (load[a], a))[:k]:
            plan[who].append(item)
            load[who] += 1
    for who, got in plan.items():
        append_pair_assignments(conn, who, people[who], got, int(meta["seed"]))


def progress_rows(conn: sqlite3.Connection) -> list[tuple[str, str, int, int]]:
    """(annotator, "model_a vs model_b", voted, assigned) over the active items."""
    rows = conn.execute(
        """SELECT n.name, s.model_a || ' vs ' || s.model_b, COUNT(p.pair_id),
                  COUNT(DISTINCT v.pair_id)
           FROM annotators n
           JOIN pair_assignments s ON s.annotator_id = n.annotator_id
           JOIN pair_items p ON p.question_id = s.question_id AND p.model_a = s.model_a AND p.model_b = s.model_b
                AND p.active = 1 AND p.identical = 0
           LEFT JOIN (SELECT DISTINCT annotator_id, pair_id FROM vote_events WHERE item_id IS NULL) v
                  ON v.annotator_id = n.annotator_id AND v.pair_id = p.pair_id
           GROUP BY n.name, s.model_a, s.model_b ORDER BY n.name, s.model_a, s.model_b"""
    ).fetchall()
    return [(r[0], r[1], int(r[3]), int(r[2])) for r in rows]


def identical_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM pair_items WHERE active = 1 AND identical = 1").fetchone()[0])
