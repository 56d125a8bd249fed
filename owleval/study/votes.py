"""votes.csv: pairwise votes out of a study (``owleval grades export``), checked reading, and into a study
(``owleval grades import``).

Columns: ``annotator, question_id, model_a, model_b, left, winner, reason, voted_at``; ``model_a`` sorts before
``model_b``, ``left`` is the model shown on the left, ``winner`` is ``model_a``, ``model_b``, ``tie`` or
``both_bad``. The reader checks a whole file and names every problem by line and column: a model or question not in
the answers, an unknown winner token, a pair of one model with itself, a left side outside the pair. The export adds
``item_kind`` (regular|gold) and ``expected_winner`` (:data:`VOTES_CSV_COLUMNS`); import reads them back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from owleval.csvio import frame_to_csv, read_records
from owleval.errors import InputFileError, OwlEvalError, Problem
from owleval.fileio import atomic_write_text
from owleval.items import VOTE_ITEM_KINDS
from owleval.records.votes import QC_VOTE_COLUMNS, VOTE_COLUMNS, WINNER_TOKENS
from owleval.study.queue import MAX_COMMENT_LEN
from owleval.study.store import Store, utc_now
from owleval.questions import parse_question_id

#: an import into a study also needs ``left``: which answer the person saw on the left
IMPORT_REQUIRED_COLUMNS = ("annotator", "question_id", "model_a", "model_b", "left", "winner")
#: ``owleval grades export`` of a pairwise study adds them: ``item_kind`` regular|gold (missing or blank: regular) and
#: ``expected_winner`` (the gold pair's winner, in the winner vocabulary; blank on regular rows). A gold item's vote is
#: a row of its own beside the annotator's regular vote of that pair.
VOTES_CSV_COLUMNS = [*VOTE_COLUMNS, *QC_VOTE_COLUMNS]


@dataclass(frozen=True)
class Vote:
    line: int
    annotator: str
    question_id: int
    model_a: str
    model_b: str
    left: str
    winner: str
    reason: str
    voted_at: str  # the file's time, or the time of reading when it has none
    timed: bool = True  # False: the file gave no voted_at
    item_kind: str = "regular"
    expected_winner: str = ""


def current_votes_frame(store: Store) -> pd.DataFrame:
    """One row per current vote (each annotator's latest on each active pair item), in the votes.csv columns."""
    rows = store.conn.execute(
        """SELECT n.name, p.question_id, p.model_a, p.model_b, e.left_model, e.winner, e.reason, e.created_at
           FROM vote_events e
           JOIN pair_items p ON p.pair_id = e.pair_id AND p.active = 1
           JOIN annotators n ON n.annotator_id = e.annotator_id
           WHERE e.item_id IS NULL AND e.event_id = (SELECT MAX(x.event_id) FROM vote_events x
                               WHERE x.annotator_id = e.annotator_id AND x.pair_id = e.pair_id AND x.item_id IS NULL)
           ORDER BY n.name, p.question_id, p.model_a, p.model_b"""
    ).fetchall()
    return pd.DataFrame([tuple(r) for r in rows], columns=list(VOTE_COLUMNS)).astype({"question_id": "int64"})


def votes_export_frame(store: Store) -> pd.DataFrame:
    """votes.csv as ``owleval grades export`` writes it: the current regular votes (``item_kind`` regular) and one
    row per voted gold item (its latest vote) with the expected winner."""
    regular = current_votes_frame(store).assign(item_kind="regular", expected_winner="")
    rows = store.conn.execute(
        """SELECT n.name, p.question_id, p.model_a, p.model_b, e.left_model, e.winner, e.reason, e.created_at, g.item_kind,
                  COALESCE(g.expected_winner, '')
           FROM pair_special_items g
           JOIN vote_events e ON e.event_id = (SELECT MAX(x.event_id) FROM vote_events x WHERE x.item_id = g.item_id)
           JOIN pair_items p ON p.pair_id = g.pair_id AND p.active = 1
           JOIN annotators n ON n.annotator_id = g.annotator_id"""
    ).fetchall()
    gold = pd.DataFrame([tuple(r) for r in rows], columns=VOTES_CSV_COLUMNS)
    frame = pd.concat([regular, gold], ignore_index=True) if len(gold) else regular
    frame = frame.astype({"question_id": "int64"})[VOTES_CSV_COLUMNS]
    return frame.sort_values(["annotator", "question_id", "model_a", "model_b", "item_kind"], kind="stable").reset_index(drop=True)


def write_votes_csv(store: Store, out: Path) -> int:
    frame = votes_export_frame(store)
    try:
        atomic_write_text(Path(out), frame_to_csv(frame))
    except OSError as exc:
        raise OwlEvalError(f"cannot write {out}: {exc.strerror or exc}") from exc
    return len(frame)


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def read_votes(path: Path, models: Collection[str] | None = None, question_ids: Collection[int] | None = None,
               origin: str = "the answers") -> list[Vote]:
    """Every vote of ``path``, checked; raises :class:`InputFileError` naming each problem (file:line [column]).

    ``models`` / ``question_ids``: what the answers hold (None: any); ``origin`` names them in messages.
    """
    path = Path(path)
    records = list(read_records(path, IMPORT_REQUIRED_COLUMNS, known=VOTE_COLUMNS, what="votes.csv holds"))
    problems: list[Problem] = []
    votes: list[Vote] = []
    seen: dict[tuple[str, int, str, str, str], int] = {}
    for line, rec in records:
        vote = _check(rec, path, line, models, question_ids, origin, problems)
        if vote is None:
            continue
        key = (vote.annotator, vote.question_id, vote.model_a, vote.model_b, vote.item_kind)
        if key in seen:
            problems.append(Problem(path, line, None, f"a second vote by {vote.annotator!r} on question {vote.question_id} "
                                                      f"{vote.model_a} vs {vote.model_b} (first on line {seen[key]})"))
            continue
        seen[key] = line
        votes.append(vote)
    if problems:
        raise InputFileError(problems)
    return votes


def _check(rec: dict[str, str], path: Path, line: int, models: Collection[str] | None, question_ids: Collection[int] | None,
           origin: str, problems: list[Problem]) -> Vote | None:
    before = len(problems)

    def problem(column: str, message: str) -> None:
        problems.append(Problem(path, line, column, message))

    get = {c: " ".join(str(rec.get(c) or "").split()) if c == "annotator" else str(rec.get(c) or "").strip() for c in VOTE_COLUMNS}
    get["reason"] = str(rec.get("reason") or "").strip()
    if not get["annotator"]:
        problem("annotator", "empty")
    qid = parse_question_id(get["question_id"])
    if qid is None:
        problem("question_id", f"{get['question_id']!r} is not a question id")
    if qid is not None and question_ids is not None and qid not in question_ids:
        problem("question_id", f"question {qid} is not in {origin}")
    a, b = get["model_a"], get["model_b"]
    for column, model in (("model_a", a), ("model_b", b)):
        if not model:
            problem(column, "empty")
        elif models is not None and model not in models:
            problem(column, f"model {model!r} is not in {origin} ({', '.join(sorted(models))})")
    if a and a == b:
        problem("model_b", f"a pair of one model with itself ({a!r})")
    elif a and b and a > b:
        problem("model_b", f"model_a must sort before model_b (got {a!r} and {b!r}); swap them and the winner")
    if get["left"] not in (a, b):
        problem("left", f"{get['left']!r} is neither model_a nor model_b")
    if get["winner"] not in WINNER_TOKENS:
        problem("winner", f"{get['winner']!r} is not one of {', '.join(WINNER_TOKENS)}")
    if len(get["reason"]) > MAX_COMMENT_LEN:
        problem("reason", f"longer than {MAX_COMMENT_LEN} characters")
    if get["voted_at"]:
        try:
            _instant(get["voted_at"])
        except ValueError:
            problem("voted_at", f"{get['voted_at']!r} is not an ISO 8601 time (e.g. 2024-05-01T09:30:00+00:00)")
    kind = str(rec.get("item_kind") or "").strip().lower() or "regular"
    expected = str(rec.get("expected_winner") or "").strip()
    if kind not in VOTE_ITEM_KINDS:
        problem("item_kind", f"{rec.get('item_kind')!r} is not an item kind of votes; allowed {', '.join(VOTE_ITEM_KINDS)}")
    elif kind == "gold" and expected not in WINNER_TOKENS:
        problem("expected_winner", f"a gold row needs its expected winner ({', '.join(WINNER_TOKENS)}), got {expected!r}")
    elif kind == "regular" and expected:
        problem("expected_winner", "a regular row has no expected winner; leave it blank")
    if len(problems) > before:
        return None
    return Vote(line, get["annotator"], int(qid), a, b, get["left"], get["winner"], get["reason"], get["voted_at"] or utc_now(),
                bool(get["voted_at"]), kind, expected)


@dataclass
class VoteImportSummary:
    imported: int = 0
    unchanged: int = 0
    assignments_added: int = 0
    created: dict[str, str | None] = field(default_factory=dict)


def import_votes(store: Store, path: Path, *, create_annotators: bool = False) -> VoteImportSummary:
    """Check ``path`` whole against the pairwise study, then add its votes as vote events in one transaction.

    A vote lands on the study's active pair item of its question and model pair (one the design did not select, or
    whose answers are the same text, is refused); a vote equal to the current one is skipped; one older than a vote
    the study holds for that annotator and item is refused; an item not in the annotator's queue is added to it,
    with the file's left side.
    """
    from owleval.study.manage import check_name, create_annotator

    conn = store.conn
    meta = store.meta()
    models = {r[0] for r in conn.execute("SELECT DISTINCT model_id FROM answers WHERE active = 1")}
    qids = {int(r[0]) for r in conn.execute("SELECT question_id FROM questions")}
    votes = read_votes(path, models, qids, origin=f"the study {store.path}")
    people = {r[0] for r in conn.execute("SELECT name FROM annotators")}
    items = {(int(r[0]), r[1], r[2]): (int(r[3]), int(r[4])) for r in conn.execute(
        "SELECT question_id, model_a, model_b, pair_id, identical FROM pair_items WHERE active = 1")}
    problems = []
    for v in votes:
        try:
            check_name(v.annotator)
        except OwlEvalError as exc:
            problems.append(Problem(path, v.line, "annotator", str(exc)))
        else:
            if v.annotator not in people and not create_annotators:
                problems.append(Problem(path, v.line, "annotator", f"unknown annotator {v.annotator!r} (the study has "
                                        f"{', '.join(sorted(people)) or 'none'}); pass --create-annotators to add them"))
        found = items.get((v.question_id, v.model_a, v.model_b))
        if found is None:
            problems.append(Problem(path, v.line, "question_id", f"the study does not compare {v.model_a} and {v.model_b} on "
                                    f"question {v.question_id} (not in its pair design)"))
        elif found[1]:
            problems.append(Problem(path, v.line, "question_id", f"{v.model_a} and {v.model_b} gave the same text to question "
                                    f"{v.question_id}: a tie nobody is asked about"))
    if problems:
        raise InputFileError(problems)
    summary = VoteImportSummary()
    with store.write() as conn:
        ids = {r[1]: int(r[0]) for r in conn.execute("SELECT annotator_id, name FROM annotators")}
        held = {(int(r[0]), int(r[1]), r[2], r[3]) for r in conn.execute("SELECT annotator_id, question_id, model_a, model_b FROM pair_assignments")}
        conflicts = []
        for v in sorted(votes, key=lambda v: (_instant(v.voted_at), v.line)):
            if v.annotator not in ids:
                ids[v.annotator], summary.created[v.annotator] = create_annotator(conn, v.annotator, meta)
            who, pair_id = ids[v.annotator], items[(v.question_id, v.model_a, v.model_b)][0]
            item_id = None
            if v.item_kind == "gold":
                item_id, problem = _gold_item(conn, who, pair_id, v, path)
                if problem is not None:
                    conflicts.append(problem)
                    continue
            current = conn.execute("SELECT left_model, winner, reason, created_at FROM vote_events WHERE annotator_id = ? AND pair_id = ? "
                                   "AND item_id IS ? ORDER BY event_id DESC LIMIT 1", (who, pair_id, item_id)).fetchone()
            same = current is not None and tuple(current)[:3] == (v.left, v.winner, v.reason)
            if same and (not v.timed or current["created_at"] == v.voted_at):  # a row without a time: the same vote
                summary.unchanged += 1
                continue
            if current is not None and _instant(current["created_at"]) > _instant(v.voted_at):
                conflicts.append(Problem(path, v.line, "voted_at", f"the study holds a later vote by {v.annotator!r} on this pair "
                                         f"({current['winner']} at {current['created_at']}); importing this older one would replace it"))
                continue
            if item_id is None and (who, v.question_id, v.model_a, v.model_b) not in held:
                held.add((who, v.question_id, v.model_a, v.model_b))
                position = int(conn.execute("SELECT COALESCE(MAX(position), -1) FROM pair_assignments WHERE annotator_id = ?",
                                            (who,)).fetchone()[0]) + 1
                conn.execute("INSERT INTO pair_assignments(annotator_id, question_id, model_a, model_b, left_model, position) "
                             "VALUES (?, ?, ?, ?, ?, ?)", (who, v.question_id, v.model_a, v.model_b, v.left, position))
                summary.assignments_added += 1
            conn.execute("INSERT INTO vote_events(annotator_id, pair_id, left_model, winner, reason, created_at, item_id) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)", (who, pair_id, v.left, v.winner, v.reason, v.voted_at, item_id))
            summary.imported += 1
        if conflicts:
            raise InputFileError(conflicts)  # rolls back: nothing written
    return summary


def _gold_item(conn: sqlite3.Connection, annotator_id: int, pair_id: int, vote: Vote, path: Path) -> tuple[int | None, Problem | None]:
    """The annotator's gold item of this pair, made (at the end of their queue, with the file's left side) when the
    study lacks it; the study's gold winner of the pair must be the row's expected winner (a pair without gold takes
    it as its gold)."""
    gold = conn.execute("SELECT winner FROM gold_pairs WHERE pair_id = ?", (pair_id,)).fetchone()
    if gold is None:
        conn.execute("INSERT INTO gold_pairs(pair_id, winner, note, source, added_at) VALUES (?, ?, '', ?, ?)",
                     (pair_id, vote.expected_winner, f"imported from {path}", utc_now()))
    elif gold[0] != vote.expected_winner:
        return None, Problem(path, vote.line, "expected_winner", f"the study's gold winner of this pair is {gold[0]}")
    found = conn.execute("SELECT item_id FROM pair_special_items WHERE annotator_id = ? AND item_kind = 'gold' AND pair_id = ?",
                         (annotator_id, pair_id)).fetchone()
    if found is not None:
        return int(found[0]), None
    end = conn.execute("SELECT MAX(p) FROM (SELECT MAX(position) AS p FROM pair_assignments WHERE annotator_id = ? "
                       "UNION ALL SELECT MAX(position) FROM pair_special_items WHERE annotator_id = ?)", (annotator_id, annotator_id)).fetchone()[0]
    cur = conn.execute("INSERT INTO pair_special_items(annotator_id, item_kind, pair_id, left_model, position, expected_winner, added_at) "
                       "VALUES (?, 'gold', ?, ?, ?, ?, ?)", (annotator_id, pair_id, vote.left, 0 if end is None else int(end) + 1,
                                                             vote.expected_winner, utc_now()))
    return int(cur.lastrowid), None
