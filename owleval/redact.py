"""One redaction step for every text that comes back from a server before it is stored, printed or logged.

A server (or a proxy in front of it) may echo the request in an error body, a reply or an exception message: the
API key would then land in ``raw.jsonl``, an answers file or a terminal. :func:`redact` removes the value of every
secret registered with :func:`register_secret` (the adapter registers its API key when it loads) and the value
of anything shaped like a credential: ``Bearer …``/``Basic …`` and ``Authorization:``/``api-key:`` headers.
"""

from __future__ import annotations

import re
import threading

MARK = "[redacted]"
_MIN_SECRET_LEN = 4  # shorter "keys" (e.g. "x" for a local server) would blank ordinary words

_secrets: set[str] = set()
_lock = threading.Lock()

# header lines and JSON/dict items naming a credential: the value runs to the end of the line or the quote
_HEADER = re.compile(
    r"""(?P<name>\b(?:proxy-)?authorization|\bx-api-key|\bapi[-_]key|\bcookie)(?P<sep>["']?\s*[:=]\s*["']?)(?P<value>[^"'\r\n,}]+)""",
    re.IGNORECASE,
)
_SCHEME = re.compile(r"\b(?P<scheme>(?i:bearer)|Basic(?=\s+\S{8}))(?P<space>\s+)(?P<value>[A-Za-z0-9._~+/=:-]+)")


def register_secret(value: str | None) -> None:
    """Redact ``value`` from every text from now on (for the life of the process)."""
    if value and len(value.strip()) >= _MIN_SECRET_LEN:
        with _lock:
            _secrets.add(value.strip())


def redact(text: str) -> str:
    """``text`` with every registered secret and every credential-shaped value replaced by ``[redacted]``."""
    if not text:
        return text
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)  # a key that contains another goes first
    for secret in known:
        text = text.replace(secret, MARK)
    text = _HEADER.sub(lambda m: f"{m['name']}{m['sep']}{MARK}", text)
    return _SCHEME.sub(lambda m: f"{m['scheme']}{m['space']}{MARK}", text)
