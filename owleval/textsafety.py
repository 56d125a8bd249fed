"""Characters that change how text reads without being seen: bidi controls, zero-width and other format characters.

An answer holding U+202E (right-to-left override) followed by ``D edarg`` displays as "grade D"; a zero-width space
hides inside a name. Such characters are shown as visible markers wherever untrusted text is displayed, and refused
in names people choose. Unicode's general category ``Cf`` (format) holds all of them: the bidi embeddings,
overrides and isolates (U+202A-U+202E, U+2066-U+2069), the marks (U+200E, U+200F, U+061C), the zero-width
characters (U+200B-U+200D, U+2060, U+FEFF) and the invisible operators (U+2061-U+2064).
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

#: every format character (category Cf) of the Unicode version Python ships
_FORMAT_CHAR = re.compile(
    "[" + "".join(re.escape(chr(c)) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cf") + "]"
)


def is_format_char(char: str) -> bool:
    """True for one character of category Cf (bidi control, zero-width or other invisible format character)."""
    return unicodedata.category(char) == "Cf"


def format_chars_in(text: str) -> list[str]:
    """The format characters in ``text``, in order, each once (``["U+202E", ...]``)."""
    seen: dict[str, None] = {}
    for match in _FORMAT_CHAR.finditer(text):
        seen.setdefault(f"U+{ord(match.group()):04X}", None)
    return list(seen)


def mark_format_chars(text: str) -> str:
    """``text`` with each format character replaced by a visible marker such as ``[U+202E]``.

    The marker is plain ASCII, so it survives HTML escaping and cannot itself reorder or hide anything.
    """
    return _FORMAT_CHAR.sub(lambda m: f"[U+{ord(m.group()):04X}]", text)


def mark_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A pandas frame for display: :func:`mark_format_chars` on its text cells, index labels and column names."""
    def mark(value: object) -> object:
        return mark_format_chars(value) if isinstance(value, str) else value

    return frame.map(mark).rename(index=mark, columns=mark)
