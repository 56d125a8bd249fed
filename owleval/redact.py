"""One redaction step for every text that comes back from a server before it is stored, printed or logged.

A server (or a proxy in front of it) may echo the request in an error body, a reply, a model name or an exception
message: the API key would then land in ``raw.jsonl``, an answers file or a terminal. :func:`redact` removes every
secret registered with :func:`register_secret` (the adapter registers its API key when it loads) in the forms an
echo takes, and the value of anything shaped like a credential: ``Bearer …``/``Basic …`` and
``Authorization:``/``api-key:`` headers. The forms of a registered secret:

- the secret itself, percent-encoded (any of its ASCII characters as ``%XX``, either case), and with whitespace or
  invisible format characters (zero-width, soft hyphen, bidi marks) between its characters;
- any run of :data:`MIN_RUN` or more of its consecutive characters (a cut or partly masked echo), in those forms;
- its base64, standard and URL-safe, padded or not, at each of the three byte alignments, so base64 of
  ``Bearer <key>`` (or of a whole ``Authorization`` header) is caught as well as base64 of the key alone (runs of
  :data:`MIN_RUN` of those characters too).

The text is searched once with fillers dropped and ``%XX`` decoded (keeping where each character came from), for
every :data:`MIN_RUN`-character window of each needle: linear in the text, whatever the key's length.
"""

from __future__ import annotations

import base64
import functools
import re
import threading
from dataclasses import dataclass

MARK = "[redacted]"
_MIN_SECRET_LEN = 4  # shorter "keys" (e.g. "x" for a local server) would blank ordinary words
#: consecutive characters of a secret that count as the secret (shorter runs are too likely to occur by chance)
MIN_RUN = 16
#: what may be slipped between a secret's characters: whitespace and invisible characters (category Cf, soft hyphen)
_FILLER = re.compile(r"[\s\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]")
_PERCENT = re.compile(r"%[0-7][0-9A-Fa-f]")  # an escaped ASCII character

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


def _base64_cores(secret: str) -> list[str]:
    """The base64 characters that depend on the secret's bytes alone, at each byte alignment, in both alphabets;
    padding and the characters shared with neighbouring bytes are left out, so every encoding of a text holding
    the secret (the key alone, ``Bearer <key>``, a whole header) contains one of them."""
    data = secret.encode("utf-8")
    cores = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data).decode("ascii")
        core = encoded[-(-8 * offset // 6):(8 * (offset + len(data))) // 6]
        if len(core) >= 8:
            cores += [core, core.replace("+", "-").replace("/", "_")]
    return cores


@dataclass(frozen=True)
class _Needles:
    """What to look for in a normalised text: every :data:`MIN_RUN`-character window of the long needles, and the
    short needles whole."""

    windows: frozenset[str]
    whole: tuple[str, ...]


@functools.lru_cache(maxsize=8)
def _needles(secrets: frozenset[str]) -> _Needles:
    windows: set[str] = set()
    whole: list[str] = []
    for secret in secrets:
        for needle in (_normalised(secret)[0], *_base64_cores(secret)):  # as the text is searched: a "%41" in a key too
            if len(needle) > MIN_RUN:
                windows.update(needle[i:i + MIN_RUN] for i in range(len(needle) - MIN_RUN + 1))
            else:
                whole.append(needle)
    return _Needles(frozenset(windows), tuple(sorted(set(whole), key=len, reverse=True)))


def _normalised(text: str) -> tuple[str, list[tuple[int, int]]]:
    """``text`` with fillers dropped and ``%XX`` escapes of ASCII characters decoded, and for each of its characters
    the span of ``text`` it came from."""
    chars: list[str] = []
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "%" and _PERCENT.match(text, i):
            chars.append(chr(int(text[i + 1:i + 3], 16)))
            spans.append((i, i + 3))
            i += 3
            continue
        if not _FILLER.match(char):
            chars.append(char)
            spans.append((i, i + 1))
        i += 1
    return "".join(chars), spans


def _secret_spans(text: str, needles: _Needles) -> list[tuple[int, int]]:
    """The spans of ``text`` that hold a needle (in any of the forms :func:`_normalised` undoes), merged."""
    flat, spans = _normalised(text)
    marked: list[tuple[int, int]] = []
    if needles.windows:
        marked += [(i, i + MIN_RUN) for i in range(len(flat) - MIN_RUN + 1) if flat[i:i + MIN_RUN] in needles.windows]
    for needle in needles.whole:
        start = flat.find(needle)
        while start >= 0:
            marked.append((start, start + len(needle)))
            start = flat.find(needle, start + 1)
    merged: list[tuple[int, int]] = []
    for start, end in sorted(marked):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return [(spans[start][0], spans[end - 1][1]) for start, end in merged]


def redact(text: str) -> str:
    """``text`` with every registered secret (in any of the forms above) and every credential-shaped value
    replaced by ``[redacted]``."""
    if not text:
        return text
    with _lock:
        known = frozenset(_secrets)
    if known:
        for start, end in reversed(_secret_spans(text, _needles(known))):
            text = text[:start] + MARK + text[end:]
    text = _HEADER.sub(lambda m: f"{m['name']}{m['sep']}{MARK}", text)
    return _SCHEME.sub(lambda m: f"{m['scheme']}{m['space']}{MARK}", text)


def holds_secret(text: str) -> bool:
    """Whether ``text`` holds a registered secret or a credential in any form :func:`redact` removes."""
    return redact(text) != text
