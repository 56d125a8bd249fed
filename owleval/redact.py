"""One redaction step for every text that comes back from a server before it is stored, printed or logged.

A server (or a proxy in front of it) may echo the request in an error body, a reply, a model name or an exception
message: the API key would then land in ``raw.jsonl``, an answers file or a terminal. :func:`redact` removes every
secret registered with :func:`register_secret` (the adapter registers its API key when it loads) in the forms an
echo takes, and the value of anything shaped like a credential: ``Bearer …``/``Basic …`` and
``Authorization:``/``api-key:`` headers. The forms of a registered secret:

- the secret itself, percent-encoded (any of its characters as ``%XX``, either case), and with whitespace or
  invisible format characters (zero-width, soft hyphen, bidi marks) between its characters;
- any run of :data:`MIN_RUN` or more of its consecutive characters (a cut or partly masked echo), in those forms;
- its base64, standard and URL-safe, padded or not, at each of the three byte alignments, so base64 of
  ``Bearer <key>`` (or of a whole ``Authorization`` header) is caught as well as base64 of the key alone.
"""

from __future__ import annotations

import base64
import functools
import re
import threading

MARK = "[redacted]"
_MIN_SECRET_LEN = 4  # shorter "keys" (e.g. "x" for a local server) would blank ordinary words
#: consecutive characters of a secret that count as the secret (shorter runs are too likely to occur by chance)
MIN_RUN = 16
#: what may be slipped between a secret's characters: whitespace and invisible characters (category Cf, soft hyphen)
_FILLER = r"[\s\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]*"

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


def _char(char: str) -> str:
    """A pattern for one character: itself or its percent-encoding (UTF-8 bytes, hex digits of either case)."""
    encoded = "".join("%" + "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in f"{b:02X}")
                      for b in char.encode("utf-8"))
    return f"(?:{re.escape(char)}|{encoded})"


def _spelled(text: str) -> str:
    """A pattern for ``text`` with fillers allowed between its characters."""
    return _FILLER.join(_char(c) for c in text)


def _runs(secret: str) -> str:
    """The secret whole, or any run of at least :data:`MIN_RUN` of its characters, each run as long as it goes."""
    if len(secret) <= MIN_RUN:
        return _spelled(secret)
    chars = [_char(c) for c in secret]
    branches = []
    for start in range(len(secret) - MIN_RUN + 1):
        tail = ""
        for c in reversed(chars[start + MIN_RUN:]):  # (?:c16(?:c17(...)?)?)? : greedy to the secret's end
            tail = f"(?:{_FILLER}{c}{tail})?"
        branches.append(_FILLER.join(chars[start:start + MIN_RUN]) + tail)
    return "|".join(branches)


def _base64_cores(secret: str) -> set[str]:
    """The base64 characters that depend on the secret's bytes alone, at each byte alignment, in both alphabets;
    padding and the characters shared with neighbouring bytes are left out, so every encoding of a text holding
    the secret contains one of them."""
    data = secret.encode("utf-8")
    cores = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data).decode("ascii")
        core = encoded[-(-8 * offset // 6):(8 * (offset + len(data))) // 6]
        if len(core) >= 8:
            cores |= {core, core.replace("+", "-").replace("/", "_")}
    return cores


@functools.lru_cache(maxsize=8)
def _pattern(secrets: frozenset[str]) -> re.Pattern[str] | None:
    branches = [_spelled(core) for secret in secrets for core in _base64_cores(secret)]
    branches += [_runs(secret) for secret in sorted(secrets, key=len, reverse=True)]
    return re.compile("|".join(f"(?:{b})" for b in branches)) if branches else None


def redact(text: str) -> str:
    """``text`` with every registered secret (in any of the forms above) and every credential-shaped value
    replaced by ``[redacted]``."""
    if not text:
        return text
    with _lock:
        known = frozenset(_secrets)
    pattern = _pattern(known)
    if pattern is not None:
        text = pattern.sub(MARK, text)
    text = _HEADER.sub(lambda m: f"{m['name']}{m['sep']}{MARK}", text)
    return _SCHEME.sub(lambda m: f"{m['scheme']}{m['space']}{MARK}", text)


def holds_secret(text: str) -> bool:
    """Whether ``text`` holds a registered secret or a credential in any form :func:`redact` removes."""
    return redact(text) != text
