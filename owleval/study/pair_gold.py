"""Gold pairs of a pairwise study: pairs whose right vote an expert has fixed, mixed blind into every queue.

``--gold gold.csv`` with ``question_id, model_a, model_b, winner[, note]`` in votes.csv's vocabulary (``model_a <
model_b``; winner ``model_a``, ``model_b``, ``tie`` or ``both_bad``). Each row must be an askable pair item of the study
(its design selected it and the two answers differ). Each annotator gets ``max(1, round(gold_rate x queue length))``
gold items, capped at the gold rows, placed at random in their queue with the left side drawn per annotator; a gold
item's votes carry it (``vote_events.item_id``) and never replace the annotator's regular vote of that pair.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from owleval.csvio import read_records
from owleval.errors import InputFileError, OwlEvalError, Problem
from owleval.study.special import blind_gold_count
from owleval.study.store import utc_now
from owleval.records.votes import WINNER_TOKENS

GOLD_PAIR_REQUIRED = ("question_id", "model_a", "model_b", "winner")


@dataclass(frozen=True)
class GoldPair:
    line: int
    question_id: int
    model_a: str
    model_b: str
    winner: str
    note: str
    pair_id: int


def read_gold_pairs(path: Path, conn: sqlite3.Connection) -> list[GoldPair]:
    """Every row of a gold-pairs file, checked against the study; :class:`InputFileError` names each problem."""
    path = Path(path)
    if not path.is_file():
        raise OwlEvalError(f"{path}: no such gold file (expected a CSV with {', '.join(GOLD_PAIR_REQUIRED)}[, note])")
    items = {(int(r[0]), r[1], r[2]): (int(r[3]), int(r[4])) for r in conn.execute(
        "SELECT question_id, model_a, model_b, pair_id, identical FROM pair_items WHERE active = 1")}
    rows, problems, seen = [], [], {}
    for line, rec in read_records(path, GOLD_PAIR_REQUIRED, known=("note",)):
        get = {c: str(rec.get(c) or "").strip() for c in (*GOLD_PAIR_REQUIRED, "note")}
        found = len(problems)
        qid = int(get["question_id"]) if get["question_id"].isdigit() else None
        if qid is None:
            problems.append(Problem(path, line, "question_id", f"{get['question_id']!r} is not a question id"))
        a, b = get["model_a"], get["model_b"]
        if a and b and a >= b:
            problems.append(Problem(path, line, "model_b", f"model_a must sort before model_b (got {a!r} and {b!r})"))
        if get["winner"] not in WINNER_TOKENS:
            problems.append(Problem(path, line, "winner", f"{get['winner']!r} is not one of {', '.join(WINNER_TOKENS)}"))
        item = items.get((qid, a, b)) if qid is not None else None
        if len(problems) == found and item is None:
            problems.append(Problem(path, line, "question_id", f"the study does not compare {a!r} and {b!r} on question {qid}"))
        elif len(problems) == found and item[1]:
            problems.append(Problem(path, line, "question_id", f"{a} and {b} gave the same text to question {qid}: not asked"))
        if len(problems) > found:
            continue
        if (qid, a, b) in seen:
            problems.append(Problem(path, line, "question_id", f"given twice (first on line {seen[(qid, a, b)]})"))
            continue
        seen[(qid, a, b)] = line
        rows.append(GoldPair(line, qid, a, b, get["winner"], get["note"], item[0]))
    if problems:
        raise InputFileError(problems)
    if not rows:
        raise InputFileError([Problem(path, None, None, "holds no gold pairs")])
    return rows


def insert_gold_pairs(conn: sqlite3.Connection, rows: list[GoldPair], path: Path) -> int:
    held = {int(r[0]): r[1] for r in conn.execute("SELECT pair_id, winner FROM gold_pairs")}
    conflicts = [Problem(path, r.line, "winner", f"this pair already has gold winner {held[r.pair_id]}")
                 for r in rows if r.pair_id in held and held[r.pair_id] != r.winner]
    if conflicts:
        raise InputFileError(conflicts)
    new = [r for r in rows if r.pair_id not in held]
    conn.executemany("INSERT INTO gold_pairs(pair_id, winner, note, source, added_at) VALUES (?, ?, ?, ?, ?)",
                     [(r.pair_id, r.winner, r.note, str(path.resolve()), utc_now()) for r in new])
    return len(new)


def add_gold_items(conn: sqlite3.Connection, annotator_id: int, name: str, gold_rate: float, seed: int) -> int:
    """Top the annotator's blind gold pairs up to ``max(1, round(gold_rate x queue length))`` (inside the caller's
    transaction), placed at random in their queue; returns how many were added."""
    positions = [int(r[0]) for r in conn.execute(
        "SELECT position FROM pair_assignments WHERE annotator_id = ? ORDER BY position", (annotator_id,))]
    gold = conn.execute(
        "SELECT g.pair_id, g.winner, p.model_a, p.model_b FROM gold_pairs g JOIN pair_items p ON p.pair_id = g.pair_id AND p.active = 1 "
        "WHERE NOT EXISTS (SELECT 1 FROM pair_special_items s WHERE s.annotator_id = ? AND s.pair_id = g.pair_id) ORDER BY g.pair_id",
        (annotator_id,)).fetchall()
    held = conn.execute("SELECT COUNT(*) FROM pair_special_items WHERE annotator_id = ?", (annotator_id,)).fetchone()[0]
    want = blind_gold_count(gold_rate, len(positions), len(gold) + held) - held
    rng = random.Random(f"pair-gold:{seed}:{name}:{held}")
    picked = rng.sample(gold, max(0, want))
    for pair_id, winner, model_a, model_b in picked:
        at = rng.randint(0, len(positions))
        position = positions[at] if at < len(positions) else (positions[-1] + 1 if positions else 0)
        conn.execute("INSERT INTO pair_special_items(annotator_id, item_kind, pair_id, left_model, position, expected_winner, added_at) "
                     "VALUES (?, 'gold', ?, ?, ?, ?, ?)", (annotator_id, pair_id, rng.choice((model_a, model_b)), position, winner, utc_now()))
    return len(picked)
