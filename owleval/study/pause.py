"""Pausing an annotator: the study owner stops one person's grading (say, after a flag) and may resume it later.

Stored as append-only events (``pause_events``) with who did it and why; the admin has no name, so "who" is the id of
the admin token (the part before the dot, never the secret). The latest event of an annotator says whether they are
paused. A paused annotator's sign-in says the study is paused for them and nothing more: an annotator never sees
their quality-control figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from owleval.errors import OwlEvalError
from owleval.study.store import Store, utc_now

MAX_REASON_LEN = 500
PAUSED_MESSAGE = "The study is paused for you. Please contact the person who runs the study."


@dataclass(frozen=True)
class PauseEvent:
    annotator: str
    paused: bool
    by_token_id: str
    reason: str
    created_at: str


def is_paused(store: Store, annotator_id: int) -> bool:
    row = store.conn.execute(
        "SELECT paused FROM pause_events WHERE annotator_id = ? ORDER BY event_id DESC LIMIT 1", (annotator_id,)
    ).fetchone()
    return bool(row and row[0])


def set_paused(store: Store, annotator: str, paused: bool, reason: str, by_token_id: str) -> PauseEvent:
    """Pause (or resume) ``annotator`` by name; ``by_token_id`` is the admin token's id. Pausing needs a reason.
    Asking for the state the annotator is already in records nothing and returns the latest event."""
    reason = " ".join(reason.split())
    if paused and not reason:
        raise OwlEvalError("say why the annotator is paused (the reason is kept with the pause)")
    if len(reason) > MAX_REASON_LEN:
        raise OwlEvalError(f"the reason is {len(reason)} characters; the limit is {MAX_REASON_LEN}")
    with store.write() as conn:
        row = conn.execute("SELECT annotator_id FROM annotators WHERE name = ?", (annotator,)).fetchone()
        if row is None:
            raise OwlEvalError(f"no annotator {annotator!r} in this study")
        latest = conn.execute(
            "SELECT paused, by_token_id, reason, created_at FROM pause_events WHERE annotator_id = ? ORDER BY event_id DESC LIMIT 1",
            (row[0],),
        ).fetchone()
        if bool(latest and latest[0]) == paused:
            if latest is None:
                return PauseEvent(annotator, False, "", "", "")
            return PauseEvent(annotator, bool(latest[0]), latest[1], latest[2], latest[3])
        now = utc_now()
        conn.execute("INSERT INTO pause_events(annotator_id, paused, by_token_id, reason, created_at) VALUES (?, ?, ?, ?, ?)",
                     (row[0], int(paused), by_token_id, reason, now))
    return PauseEvent(annotator, paused, by_token_id, reason, now)


def pause_frame(store: Store) -> pd.DataFrame:
    """Every pause and resume, oldest first (the Admin page's log)."""
    rows = store.conn.execute(
        "SELECT n.name, CASE e.paused WHEN 1 THEN 'paused' ELSE 'resumed' END, e.by_token_id, e.reason, e.created_at "
        "FROM pause_events e JOIN annotators n USING (annotator_id) ORDER BY e.event_id"
    ).fetchall()
    return pd.DataFrame([tuple(r) for r in rows], columns=["annotator", "action", "by", "reason", "at"])


def paused_names(store: Store) -> list[str]:
    """Annotators paused now."""
    rows = store.conn.execute(
        "SELECT n.name, (SELECT paused FROM pause_events e WHERE e.annotator_id = n.annotator_id ORDER BY event_id DESC LIMIT 1) "
        "FROM annotators n ORDER BY n.name"
    )
    return [r[0] for r in rows if r[1]]
