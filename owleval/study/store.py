"""The SQLite file that holds a grading study: answers, annotators, assignments and every grade ever given.

Why SQLite and why this shape: several annotators grade at once from one server (or several), and the server
may be killed at any moment. WAL mode lets readers and one writer work side by side; a busy timeout makes a
writer wait instead of failing; every grade is an append-only event (triggers refuse UPDATE and DELETE), and
the current grade is simply the latest *regular* event of an annotator for an answer. Events from the grading app carry
the browser window and its action number (schema 2), so a window's actions apply once and in the order made. A grade is tied to the exact answer
text it was given for (``answers.answer_sha256``): refreshing a study with a changed answer adds a new answer
row, so old grades stay in history without silently carrying over. Schema 4 adds annotator quality control
(:mod:`owleval.study.special`): gold answers, special queue items (gold, onboarding, attention check, retest) whose
grade events carry the item and never count as the annotator's regular grade, and pause events.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timezone
from pathlib import Path

from owleval.errors import OwlEvalError

SCHEMA_VERSION = 4
BUSY_TIMEOUT_S = 30.0

_SCHEMA_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE questions (
    question_id INTEGER PRIMARY KEY,
    image TEXT NOT NULL,
    question TEXT NOT NULL,
    earlier_turns TEXT NOT NULL  -- JSON list of question ids
);
CREATE TABLE answers (
    answer_id INTEGER PRIMARY KEY,
    model_id TEXT NOT NULL,
    question_id INTEGER NOT NULL REFERENCES questions(question_id),
    answer TEXT NOT NULL,
    answer_sha256 TEXT NOT NULL,
    source TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    added_at TEXT NOT NULL,
    retired_at TEXT
);
CREATE UNIQUE INDEX answers_one_active ON answers(model_id, question_id) WHERE active = 1;
CREATE INDEX answers_by_slot ON answers(model_id, question_id, answer_sha256);
CREATE TABLE annotators (
    annotator_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_id TEXT UNIQUE,
    token_hash TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE assignments (
    annotator_id INTEGER NOT NULL REFERENCES annotators(annotator_id),
    model_id TEXT NOT NULL,
    question_id INTEGER NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (annotator_id, model_id, question_id),
    UNIQUE (annotator_id, position)
);
CREATE TABLE grade_events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT,
    annotator_id INTEGER NOT NULL REFERENCES annotators(annotator_id),
    answer_id INTEGER NOT NULL REFERENCES answers(answer_id),
    grade TEXT NOT NULL CHECK (grade IN ('A', 'B', 'C', 'D')),
    comment TEXT NOT NULL DEFAULT '',
    flags TEXT NOT NULL DEFAULT '',  -- comma-separated, see owleval.records.grades.FLAGS
    created_at TEXT NOT NULL,
    request_id TEXT UNIQUE  -- makes a retried click idempotent
);
CREATE INDEX grade_events_by_answer ON grade_events(annotator_id, answer_id, event_id);
CREATE TRIGGER grade_events_no_update BEFORE UPDATE ON grade_events
BEGIN SELECT RAISE(ABORT, 'grade events are append-only'); END;
CREATE TRIGGER grade_events_no_delete BEFORE DELETE ON grade_events
BEGIN SELECT RAISE(ABORT, 'grade events are append-only'); END;
CREATE VIEW current_grades AS
SELECT e.* FROM grade_events e
WHERE e.event_id = (
    SELECT MAX(x.event_id) FROM grade_events x
    WHERE x.annotator_id = e.annotator_id AND x.answer_id = e.answer_id
);
"""

#: schema version -> SQL that brings a database from that version to the next one
MIGRATIONS: dict[int, str] = {
    # 2: the browser window (a random id per page load) and that window's sequence number of the action that made
    # a grade, so each window's actions apply once and in the order they were made (see owleval.screens.gradebar)
    1: """
    ALTER TABLE grade_events ADD COLUMN window_id TEXT;
    ALTER TABLE grade_events ADD COLUMN window_seq INTEGER;
    CREATE UNIQUE INDEX grade_events_window_seq ON grade_events(window_id, window_seq) WHERE window_id IS NOT NULL;
    """,
    # 3: pairwise studies (owleval.study.pair_study). New tables only: an A-D study gains them empty and reads as before.
    # A pair item ties a question to the exact answer texts compared (answer ids); an annotator's queue holds items by
    # (question, model pair) with the side each model is shown on; votes are append-only events, like grades.
    2: """
    CREATE TABLE pair_items (
        pair_id INTEGER PRIMARY KEY,
        question_id INTEGER NOT NULL REFERENCES questions(question_id),
        model_a TEXT NOT NULL,
        model_b TEXT NOT NULL,
        answer_a INTEGER NOT NULL REFERENCES answers(answer_id),
        answer_b INTEGER NOT NULL REFERENCES answers(answer_id),
        identical INTEGER NOT NULL DEFAULT 0 CHECK (identical IN (0, 1)),  -- same text: a tie, not asked
        active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
        added_at TEXT NOT NULL,
        retired_at TEXT,
        CHECK (model_a < model_b)
    );
    CREATE UNIQUE INDEX pair_items_one_active ON pair_items(question_id, model_a, model_b) WHERE active = 1;
    CREATE TABLE pair_assignments (
        annotator_id INTEGER NOT NULL REFERENCES annotators(annotator_id),
        question_id INTEGER NOT NULL,
        model_a TEXT NOT NULL,
        model_b TEXT NOT NULL,
        left_model TEXT NOT NULL CHECK (left_model IN (model_a, model_b)),
        position INTEGER NOT NULL,
        PRIMARY KEY (annotator_id, question_id, model_a, model_b),
        UNIQUE (annotator_id, position)
    );
    CREATE TABLE vote_events (
        event_id INTEGER PRIMARY KEY AUTOINCREMENT,
        annotator_id INTEGER NOT NULL REFERENCES annotators(annotator_id),
        pair_id INTEGER NOT NULL REFERENCES pair_items(pair_id),
        left_model TEXT NOT NULL,
        winner TEXT NOT NULL CHECK (winner IN ('model_a', 'model_b', 'tie', 'both_bad')),
        reason TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        request_id TEXT UNIQUE,
        window_id TEXT,
        window_seq INTEGER
    );
    CREATE INDEX vote_events_by_pair ON vote_events(annotator_id, pair_id, event_id);
    CREATE UNIQUE INDEX vote_events_window_seq ON vote_events(window_id, window_seq) WHERE window_id IS NOT NULL;
    CREATE TRIGGER vote_events_no_update BEFORE UPDATE ON vote_events
    BEGIN SELECT RAISE(ABORT, 'vote events are append-only'); END;
    CREATE TRIGGER vote_events_no_delete BEFORE DELETE ON vote_events
    BEGIN SELECT RAISE(ABORT, 'vote events are append-only'); END;
    """,
    # 4: annotator quality control (owleval.study.special, owleval.study.pause). New tables, one new nullable
    # column: a study of schema 3 reads and grades as before. ``gold_answers``: an expert's grade of one exact answer
    # text. ``special_items``: an annotator's gold / onboarding / attention / retest items, each shown just before the
    # regular item at ``position`` of their queue (a position past the last one: at the end). Attention checks are
    # answers of the reserved model ``owleval:check`` stored inactive, so no regular path (queues, exports, refresh)
    # sees them. A grade event of a special item names it in ``item_id``; ``current_grades`` keeps regular events only.
    # ``pause_events``: the admin pausing or resuming an annotator, with the admin token's id and the reason.
    # Pairwise studies: ``gold_pairs`` (an expert's winner of one pair item) and ``pair_special_items`` (blind gold
    # pairs in a queue, with their own left side); a vote event of one names it in ``item_id``.
    3: """
    CREATE TABLE gold_answers (
        gold_id INTEGER PRIMARY KEY,
        answer_id INTEGER NOT NULL UNIQUE REFERENCES answers(answer_id),
        grade TEXT NOT NULL CHECK (grade IN ('A', 'B', 'C', 'D')),
        note TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL,
        added_at TEXT NOT NULL
    );
    CREATE TABLE special_items (
        item_id INTEGER PRIMARY KEY,
        annotator_id INTEGER NOT NULL REFERENCES annotators(annotator_id),
        item_kind TEXT NOT NULL CHECK (item_kind IN ('gold', 'onboarding', 'attention', 'retest')),
        answer_id INTEGER NOT NULL REFERENCES answers(answer_id),
        position INTEGER NOT NULL,
        expected_grade TEXT CHECK (expected_grade IN ('A', 'B', 'C', 'D')),
        note TEXT NOT NULL DEFAULT '',
        added_at TEXT NOT NULL,
        UNIQUE (annotator_id, item_kind, answer_id)
    );
    CREATE INDEX special_items_by_annotator ON special_items(annotator_id, position, item_id);
    ALTER TABLE grade_events ADD COLUMN item_id INTEGER REFERENCES special_items(item_id);
    CREATE INDEX grade_events_by_item ON grade_events(item_id, event_id) WHERE item_id IS NOT NULL;
    DROP VIEW current_grades;
    CREATE VIEW current_grades AS
    SELECT e.* FROM grade_events e
    WHERE e.item_id IS NULL AND e.event_id = (
        SELECT MAX(x.event_id) FROM grade_events x
        WHERE x.annotator_id = e.annotator_id AND x.answer_id = e.answer_id AND x.item_id IS NULL
    );
    CREATE TABLE pause_events (
        event_id INTEGER PRIMARY KEY AUTOINCREMENT,
        annotator_id INTEGER NOT NULL REFERENCES annotators(annotator_id),
        paused INTEGER NOT NULL CHECK (paused IN (0, 1)),
        by_token_id TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    );
    CREATE TRIGGER pause_events_no_update BEFORE UPDATE ON pause_events
    BEGIN SELECT RAISE(ABORT, 'pause events are append-only'); END;
    CREATE TRIGGER pause_events_no_delete BEFORE DELETE ON pause_events
    BEGIN SELECT RAISE(ABORT, 'pause events are append-only'); END;
    CREATE TABLE gold_pairs (
        gold_id INTEGER PRIMARY KEY,
        pair_id INTEGER NOT NULL UNIQUE REFERENCES pair_items(pair_id),
        winner TEXT NOT NULL CHECK (winner IN ('model_a', 'model_b', 'tie', 'both_bad')),
        note TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL,
        added_at TEXT NOT NULL
    );
    CREATE TABLE pair_special_items (
        item_id INTEGER PRIMARY KEY,
        annotator_id INTEGER NOT NULL REFERENCES annotators(annotator_id),
        item_kind TEXT NOT NULL CHECK (item_kind IN ('gold')),
        pair_id INTEGER NOT NULL REFERENCES pair_items(pair_id),
        left_model TEXT NOT NULL,
        position INTEGER NOT NULL,
        expected_winner TEXT CHECK (expected_winner IN ('model_a', 'model_b', 'tie', 'both_bad')),
        added_at TEXT NOT NULL,
        UNIQUE (annotator_id, item_kind, pair_id)
    );
    ALTER TABLE vote_events ADD COLUMN item_id INTEGER REFERENCES pair_special_items(item_id);
    """,
}


def answer_sha256(text: str) -> str:
    """What the ``answers`` table keys an answer text by (a refresh compares texts through it)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def utc_now() -> str:
    """A sortable UTC time stamp with microseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    conn.execute("PRAGMA foreign_keys = ON")
    # FULL: a grade the app confirmed is on disk, even if the machine (not only the server) goes down.
    conn.execute("PRAGMA synchronous = FULL")


def open_connection(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode; write through :func:`write_transaction`."""
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    _configure(conn)
    return conn


def initialise(conn: sqlite3.Connection, meta: dict[str, str]) -> None:
    """Create the schema in an empty database and record the schema version and ``meta``."""
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise OwlEvalError(f"cannot switch the database to WAL mode (got {mode!r}); is it on a network drive?")
    with write_transaction(conn):
        for script in [_SCHEMA_V1, *(MIGRATIONS[v] for v in range(1, SCHEMA_VERSION))]:
            for statement in _split_sql(script):
                conn.execute(statement)
        rows = {**meta, "schema_version": str(SCHEMA_VERSION)}
        conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)", sorted(rows.items()))


def _split_sql(script: str) -> list[str]:
    """Split a schema script into statements (triggers hold ``;`` inside BEGIN ... END)."""
    statements, current = [], ""
    for line in script.splitlines():
        line = line.split("--", 1)[0].rstrip()
        if not line:
            continue
        current += line + "\n"
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return statements


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``: takes the write lock up front, so two writers never deadlock."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        # also when COMMIT itself fails (disk full, I/O error): a connection left inside a transaction would
        # refuse every later BEGIN on this thread
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def read_meta(conn: sqlite3.Connection) -> dict[str, str]:
    """The study's settings (auth, overlap, seed, data_dir, ...) as written at creation."""
    return {row["key"]: row["value"] for row in conn.execute("SELECT key, value FROM meta")}


def check_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse files that are not studies or come from a newer owleval; migrate older ones."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise OwlEvalError(f"{path}: not an OwlEval grading study ({exc})") from exc
    if row is None:
        raise OwlEvalError(f"{path}: not an OwlEval grading study (no schema version)")
    version = int(row["value"])
    if version > SCHEMA_VERSION:
        raise OwlEvalError(f"{path}: made by a newer owleval (schema {version}, this one reads up to {SCHEMA_VERSION}); upgrade owleval")
    while version < SCHEMA_VERSION:
        with write_transaction(conn):
            for statement in _split_sql(MIGRATIONS[version]):
                conn.execute(statement)
            version += 1
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))


class Store:
    """An open study file. Keeps one connection per thread (Streamlit runs each session in its own thread)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise OwlEvalError(f"{self.path}: no such study; create one with `owleval study create`")
        self._local = threading.local()
        check_schema(self.conn, self.path)

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = open_connection(self.path)
            except sqlite3.DatabaseError as exc:
                raise OwlEvalError(f"{self.path}: cannot open the study ({exc})") from exc
            self._local.conn = conn
        return conn

    def write(self) -> AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self.conn)

    def meta(self) -> dict[str, str]:
        return read_meta(self.conn)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
