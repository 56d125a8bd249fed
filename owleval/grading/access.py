"""Who may see what: annotators sign in with their token (or their name alone in a local study), the owner
opens the admin page with the admin token."""

from __future__ import annotations

from dataclasses import dataclass

from owleval.errors import OwlEvalError
from owleval.grading.store import Store
from owleval.grading.study import AUTH_NAME, check_name, enrol_annotator
from owleval.grading.tokens import split_token, verify_secret


@dataclass(frozen=True)
class Annotator:
    annotator_id: int
    name: str


def sign_in_with_token(store: Store, token: str) -> Annotator | None:
    """The annotator whose token this is, or None (a wrong token and an unknown one look the same)."""
    parts = split_token(token)
    if parts is None:
        return None
    row = store.conn.execute("SELECT annotator_id, name, token_hash FROM annotators WHERE token_id = ?", (parts[0],)).fetchone()
    if row is None or not row["token_hash"] or not verify_secret(parts[1], row["token_hash"]):
        return None
    return Annotator(int(row["annotator_id"]), row["name"])


def sign_in_with_name(store: Store, name: str) -> Annotator:
    """Name-only sign-in (the local default study): a new name joins and gets every answer to grade."""
    meta = store.meta()
    if meta["auth"] != AUTH_NAME:
        raise OwlEvalError("this study needs a sign-in token")
    name = check_name(name)
    with store.write() as conn:  # look up and join in one transaction: two first sign-ins cannot collide
        row = conn.execute("SELECT annotator_id FROM annotators WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return Annotator(int(row[0]), name)
        annotator_id, _ = enrol_annotator(conn, name, meta)
    return Annotator(annotator_id, name)


def is_admin(store: Store, token: str) -> bool:
    """Whether ``token`` is the study's admin token (made with the study, stored hashed in its meta)."""
    meta = store.meta()
    parts = split_token(token)
    return parts is not None and parts[0] == meta.get("admin_token_id") and verify_secret(parts[1], meta["admin_token_hash"])
