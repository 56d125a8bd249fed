"""Special queue items for annotator quality control: gold, onboarding, attention checks and retests.

Each is an item of its own in an annotator's queue (``special_items``), shown just before the regular item at its
``position`` (past the last position: at the end). Its grade events carry the item, so they never replace the
annotator's regular grade of that answer, and the screen shows no earlier grade or history for it. The rules:

- ``--onboarding K``: the first K items are gold (training: the app shows the expected grade and its note after each).
- blind gold: ``max(1, round(gold_rate x queue length))`` items (queue length: the annotator's regular items), capped
  at the gold rows left after their onboarding rows (onboarding and blind gold never share a row for one annotator),
  placed at random after the onboarding items. Rows outside the annotator's own regular queue are used first.
- ``--attention-checks N``: N checks (instructed response and nonsense, alternating; see :mod:`owleval.study.checks`)
  placed at random after the first :data:`FIRST_FEW` regular answers.
- ``--retest N``: N of the annotator's regular answers shown again, at least :data:`RETEST_GAP` items later.

Every draw is seeded by the study's seed and the annotator's name, so a study is reproducible.
"""

from __future__ import annotations

import json
import random
import sqlite3
from dataclasses import asdict, dataclass

from owleval.errors import OwlEvalError
from owleval.items import ITEM_KINDS
from owleval.study import checks
from owleval.study.store import Store, utc_now

SPECIAL_KINDS = ITEM_KINDS[1:]
#: kinds whose item has an expected grade (and whose export row carries it)
EXPECTED_KINDS = ("gold", "onboarding", "attention")
FIRST_FEW = 3  # regular answers before the first attention check or retest
RETEST_GAP = 5  # items at least between an answer and its retest (fewer when the queue is short)
META_KEY = "quality_control"


@dataclass(frozen=True)
class QcSettings:
    """What ``owleval study create`` asked for; stored in the study's meta so later annotators get the same."""

    gold_rate: float = 0.1
    onboarding: int = 0
    attention_checks: int = 0
    retest: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.gold_rate <= 1:
            raise OwlEvalError(f"--gold-rate must be between 0 and 1, got {self.gold_rate}")
        for name in ("onboarding", "attention_checks", "retest"):
            if getattr(self, name) < 0:
                raise OwlEvalError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}")

    @property
    def any(self) -> bool:
        return bool(self.onboarding or self.attention_checks or self.retest)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def read_settings(meta: dict[str, str]) -> QcSettings:
    raw = meta.get(META_KEY)
    return QcSettings(**json.loads(raw)) if raw else QcSettings()


def blind_gold_count(gold_rate: float, queue_length: int, rows_left: int) -> int:
    """``max(1, round(gold_rate x queue_length))`` capped at the gold rows left (none without gold)."""
    return min(max(1, round(gold_rate * queue_length)), rows_left) if rows_left > 0 else 0


def _regular_positions(conn: sqlite3.Connection, annotator_id: int) -> tuple[list[int], list[int]]:
    """Positions and answer ids of the annotator's regular items that have a current answer, in queue order."""
    rows = conn.execute(
        "SELECT s.position, a.answer_id FROM assignments s JOIN answers a ON a.model_id = s.model_id "
        "AND a.question_id = s.question_id AND a.active = 1 WHERE s.annotator_id = ? ORDER BY s.position", (annotator_id,)
    ).fetchall()
    return [int(r[0]) for r in rows], [int(r[1]) for r in rows]


def _slot(positions: list[int], index: int) -> int:
    """The position value that puts an item before the regular item ``index`` (``len(positions)``: after all)."""
    if index < len(positions):
        return positions[index]
    return positions[-1] + 1 if positions else 0


def _insert(conn: sqlite3.Connection, annotator_id: int, kind: str, answer_id: int, position: int,
            expected: str | None = None, note: str = "") -> int:
    cur = conn.execute(
        "INSERT INTO special_items(annotator_id, item_kind, answer_id, position, expected_grade, note, added_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)", (annotator_id, kind, answer_id, position, expected, note, utc_now()))
    return int(cur.lastrowid)


def _gold_left(conn: sqlite3.Connection, annotator_id: int) -> list[tuple[int, str, str]]:
    """(answer id, grade, note) of gold rows this annotator has not had as onboarding or blind gold."""
    rows = conn.execute(
        "SELECT g.answer_id, g.grade, g.note FROM gold_answers g JOIN answers a ON a.answer_id = g.answer_id AND a.active = 1 "
        "WHERE NOT EXISTS (SELECT 1 FROM special_items p WHERE p.annotator_id = ? AND p.answer_id = g.answer_id "
        "AND p.item_kind IN ('gold', 'onboarding')) ORDER BY g.answer_id", (annotator_id,)
    ).fetchall()
    return [(int(r[0]), r[1], r[2]) for r in rows]


def _pick_gold(rows: list[tuple[int, str, str]], own: set[int], k: int, rng: random.Random) -> list[tuple[int, str, str]]:
    """k gold rows at random, those outside the annotator's own regular queue first."""
    outside = [r for r in rows if r[0] not in own]
    inside = [r for r in rows if r[0] in own]
    rng.shuffle(outside)
    rng.shuffle(inside)
    return (outside + inside)[:k]


def plan_new_annotator(conn: sqlite3.Connection, annotator_id: int, name: str, settings: QcSettings, seed: int) -> dict[str, int]:
    """Add every special item an annotator's fresh queue gets (inside the caller's transaction); kind -> count."""
    rng = random.Random(f"quality:{seed}:{name}")
    positions, answer_ids = _regular_positions(conn, annotator_id)
    n, own = len(positions), set(answer_ids)
    counts = dict.fromkeys(SPECIAL_KINDS, 0)
    gold = _gold_left(conn, annotator_id)
    if settings.onboarding > len(gold):
        raise OwlEvalError(f"--onboarding {settings.onboarding} needs at least that many gold rows; the study has {len(gold)}")
    for answer_id, grade, note in _pick_gold(gold, own, settings.onboarding, rng):
        _insert(conn, annotator_id, "onboarding", answer_id, _slot(positions, 0), grade, note)
        counts["onboarding"] += 1
    counts["gold"] = add_blind_gold(conn, annotator_id, settings.gold_rate, rng, start=0)
    check_questions = checks.check_questions(conn)
    rng.shuffle(check_questions)
    for i in range(min(settings.attention_checks, len(check_questions))):
        qid, image = check_questions[i]
        kind = checks.INSTRUCTED if i % 2 == 0 else checks.NONSENSE
        made = checks.make_check(conn, kind, qid, image, rng, f"attention check for {name}")
        _insert(conn, annotator_id, "attention", made.answer_id, _slot(positions, rng.randint(min(FIRST_FEW, n), n)), made.expected_grade)
        counts["attention"] += 1
    if n >= 2:
        for i in sorted(rng.sample(range(n - 1), min(settings.retest, n - 1))):
            earliest = min(n, max(i + 1 + min(RETEST_GAP, n - i - 1), FIRST_FEW))
            _insert(conn, annotator_id, "retest", answer_ids[i], _slot(positions, rng.randint(earliest, n)))
            counts["retest"] += 1
    return counts


def add_blind_gold(conn: sqlite3.Connection, annotator_id: int, gold_rate: float, rng: random.Random, start: int) -> int:
    """Top the annotator's blind gold up to ``max(1, round(gold_rate x queue length))``, placed at random among the
    regular items from index ``start`` on; returns how many were added."""
    positions, answer_ids = _regular_positions(conn, annotator_id)
    held = conn.execute("SELECT COUNT(*) FROM special_items WHERE annotator_id = ? AND item_kind = 'gold'", (annotator_id,)).fetchone()[0]
    rows = _gold_left(conn, annotator_id)
    want = blind_gold_count(gold_rate, len(positions), len(rows) + held) - held
    added = 0
    for answer_id, grade, note in _pick_gold(rows, set(answer_ids), max(0, want), rng):
        places = range(min(start, len(positions)), len(positions) + 1)
        if answer_id in answer_ids:  # not next to the regular item of the same answer, where the queue allows
            twin = answer_ids.index(answer_id)
            places = [i for i in places if not twin - RETEST_GAP <= i <= twin + 1 + RETEST_GAP] or list(places)
        _insert(conn, annotator_id, "gold", answer_id, _slot(positions, rng.choice(places)), grade, note)
        added += 1
    return added


def graded_regular_count(conn: sqlite3.Connection, annotator_id: int) -> int:
    """Index just past the annotator's last graded regular item (where newly added items are still ahead of them)."""
    positions, answer_ids = _regular_positions(conn, annotator_id)
    graded = {int(r[0]) for r in conn.execute(
        "SELECT DISTINCT answer_id FROM grade_events WHERE annotator_id = ? AND item_id IS NULL", (annotator_id,))}
    last = max((i for i, a in enumerate(answer_ids) if a in graded), default=-1)
    return last + 1


def special_counts(store: Store) -> dict[str, dict[str, int]]:
    """annotator -> special item kind -> number of items in their queue."""
    out: dict[str, dict[str, int]] = {}
    for name, kind, n in store.conn.execute(
        "SELECT n.name, p.item_kind, COUNT(*) FROM special_items p JOIN annotators n USING (annotator_id) GROUP BY n.name, p.item_kind ORDER BY n.name"
    ):
        out.setdefault(name, dict.fromkeys(SPECIAL_KINDS, 0))[kind] = int(n)
    return out
