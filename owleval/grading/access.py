"""Who may see what: annotators sign in with their token (or their name alone in a local study), the owner
opens the admin page with the admin token.

Guessing is made slow and blind: every well-formed token costs one scrypt whether its id exists or not (so the
answer time does not tell), and :class:`Throttle` makes each wrong token after the first few wait, per browser
session and per client address.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from owleval.errors import OwlEvalError
from owleval.grading.store import Store
from owleval.grading.study import AUTH_NAME, check_name, enrol_annotator
from owleval.grading.tokens import hash_secret, split_token, verify_secret

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
    if parts is None:
        return False
    secret_ok = verify_secret(parts[1], meta["admin_token_hash"])  # checked even for a wrong id: same time
    return hmac.compare_digest(parts[0], meta.get("admin_token_id", "")) and secret_ok


class Throttle:
    """Wrong sign-in attempts counted per key (a browser session, a client address).

    The first ``free - 1`` failures of a key cost nothing; the ``free``-th and each later one lock the key for
    ``first_wait`` seconds, doubling up to ``max_wait``. A key's count is forgotten ``forget_after`` seconds after
    its last failure, and at most ``max_keys`` keys are kept (the oldest go first), so the table stays bounded.
    Kept in memory: a restart forgets it.
    """

    def __init__(self, free: int = 5, first_wait: float = 30.0, max_wait: float = 900.0, forget_after: float = 3600.0,
                 max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self.free, self.first_wait, self.max_wait = free, first_wait, max_wait
        self.forget_after, self.max_keys, self.clock = forget_after, max_keys, clock
        self._failures: OrderedDict[str, tuple[int, float, float]] = OrderedDict()  # key -> (count, last, locked until)
        self._lock = threading.Lock()

    def wait_seconds(self, keys: Iterable[str]) -> float:
        """How long these keys must wait before the next attempt is checked (0: go ahead)."""
        now = self.clock()
        with self._lock:
            waits = [entry[2] - now for key in keys if (entry := self._failures.get(key)) and now - entry[1] < self.forget_after]
        return max([0.0, *waits])

    def failed(self, keys: Iterable[str]) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                count, last, _ = self._failures.pop(key, (0, now, now))
                count = 1 if now - last >= self.forget_after else count + 1
                wait = 0.0 if count < self.free else min(self.max_wait, self.first_wait * 2 ** (count - self.free))
                self._failures[key] = (count, now, now + wait)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def succeeded(self, keys: Iterable[str]) -> None:
        """Forget these keys' failures (pass the session only: a right token must not clear a shared address)."""
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
