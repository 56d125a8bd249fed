"""Who may see what: annotators sign in with their token (or their name alone in a local study), the owner
opens the admin page with the admin token.

Guessing is made slow and blind: every well-formed token costs one scrypt whether its id exists or not (so the
answer time does not tell), and :class:`owleval.screens.throttle.CheckGate` rations the checks (a server-wide
budget, spacing per browser session and per client address after a few wrong tokens, never a refused owner).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from owleval.errors import OwlEvalError
from owleval.study.store import Store
from owleval.study.manage import AUTH_NAME, check_name, collapse_name, enrol_annotator
from owleval.study.tokens import hash_secret, split_token, verify_secret

#: set by ``owleval rate --allow-name-sign-in`` to the address a name sign-in study is served on (admin page warns)
EXPOSED_ENV = "OWLEVAL_RATE_NAME_SIGN_IN_ON"


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
    stored = row["token_hash"] if row is not None and row["token_hash"] else _decoy_hash()
    if not verify_secret(parts[1], stored) or row is None or not row["token_hash"]:  # one scrypt either way
        return None
    return Annotator(int(row["annotator_id"]), row["name"])


_decoy: list[str] = []


def _decoy_hash() -> str:
    """A stored hash no token matches, checked in place of a token id that does not exist."""
    if not _decoy:
        _decoy.append(hash_secret("decoy"))  # a 24-byte secret is never "decoy"
    return _decoy[0]


def sign_in_with_name(store: Store, name: str) -> Annotator:
    """Name-only sign-in (the local default study): a new name joins and gets every answer to grade."""
    meta = store.meta()
    if meta["auth"] != AUTH_NAME:
        raise OwlEvalError("this study needs a sign-in token")
    known = collapse_name(name)
    with store.write() as conn:  # look up and join in one transaction: two first sign-ins cannot collide
        row = conn.execute("SELECT annotator_id FROM annotators WHERE name = ?", (known,)).fetchone()
        if row is not None:  # an existing name signs in as it is (one from before a rule was added is shown marked)
            return Annotator(int(row[0]), known)
        name = check_name(name)  # a new name must pass every rule
        annotator_id, _ = enrol_annotator(conn, name, meta)
    return Annotator(annotator_id, name)


def is_admin(store: Store, token: str) -> bool:
    """Whether ``token`` is the study's admin token (made with the study, stored hashed in its meta)."""
    meta = store.meta()
    parts = split_token(token)
    if parts is None:
        return False
    secret_ok = verify_secret(parts[1], meta["admin_token_hash"])  # checked even for a wrong id: same time
    return hmac.compare_digest(parts[0], meta.get("admin_token_id", "")) and secret_ok
