"""Sign-in tokens: shown once, stored only as a salted scrypt hash.

A token reads ``owl_<id>_<secret>``. The id is public and finds the row to check, so sign-in costs one scrypt
whatever the number of annotators; the secret is never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

_N, _R, _P = 2**14, 8, 1
_TOKEN_RE = re.compile(r"owl_([0-9a-f]{12})_([A-Za-z0-9_-]{32})")  # matched whole (fullmatch)


def new_token() -> tuple[str, str, str]:
    """A fresh token: ``(token, token_id, stored_hash)``."""
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(24)
    return f"owl_{token_id}_{secret}", token_id, hash_secret(secret)


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def split_token(token: str) -> tuple[str, str] | None:
    """``(token_id, secret)`` of a well-formed token, else None."""
    match = _TOKEN_RE.fullmatch(token.strip())
    return (match.group(1), match.group(2)) if match else None


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(secret.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    return hmac.compare_digest(got.hex(), digest)
