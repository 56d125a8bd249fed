"""Untrusted text (questions, answers, earlier turns, an answer quoted in a judge's prompt) as plain text in a
model's prompt.

Processors expand image placeholders by string replacement and tokenizers match special-token strings anywhere
in their input, so an answer holding ``<|im_end|><|im_start|>system`` or ``<image>`` would become real control
tokens or an extra image. Splitting special tokens on the whole rendered prompt would split the template's own
tokens too, so each untrusted segment is neutralised *before* the chat template and the processor see it: every
occurrence of a marker string (the tokenizer's added and special tokens, the processor's image/video tokens, an
adapter's own placeholders and separators) gets a WORD JOINER (U+2060, invisible, no meaning) after its first
character. The text reads the same; no marker survives in it. :data:`SCHEME` names this in ``answer_settings`` so a
resumed answers file never mixes prompts built with and without it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from owleval.adapters.base import Conversation

BREAK = "\u2060"
#: recorded in ``answer_settings["untrusted_text"]``
SCHEME = "markers-broken-u2060-v1"


def marker_strings(tokenizer: Any = None, processor: Any = None, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The strings a tokenizer or processor would treat as more than text: added and special tokens, the
    processor's ``*_token`` attributes (image placeholders, begin-of-image markers), and ``extra``."""
    found: set[str] = set(extra)
    if tokenizer is not None:
        found.update(str(t) for t in getattr(tokenizer, "all_special_tokens", ()) or ())
        decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
        found.update(str(getattr(t, "content", t)) for t in decoder.values())
        extra_special = getattr(tokenizer, "extra_special_tokens", None) or ()
        values = extra_special.values() if isinstance(extra_special, dict) else extra_special
        found.update(str(getattr(v, "content", v)) for v in values)
    if processor is not None:
        for name in dir(processor):
            if name.endswith("_token") and not name.startswith("_"):
                value = getattr(processor, name, None)
                if isinstance(value, str):
                    found.add(value)
    return tuple(sorted((m for m in found if len(m.strip()) >= 2), key=lambda m: (-len(m), m)))


@functools.lru_cache(maxsize=64)
def _pattern(markers: tuple[str, ...]) -> re.Pattern[str] | None:
    return re.compile("|".join(re.escape(m) for m in markers)) if markers else None


def neutralise(text: str, markers: tuple[str, ...]) -> str:
    """``text`` with every occurrence of every marker broken (repeated until none is left: breaking ``##`` in
    ``###`` leaves a new ``##``)."""
    pattern = _pattern(markers)
    if pattern is None or not text:
        return text
    for _ in range(len(text) + 1):
        broken = pattern.sub(lambda m: m.group(0)[0] + BREAK + m.group(0)[1:], text)
        if broken == text:
            return text
        text = broken
    return text


def neutralise_conversation(conversation: Conversation, markers: tuple[str, ...]) -> Conversation:
    """The conversation with every question and earlier answer neutralised (images untouched)."""
    turns = tuple(
        replace(turn, text=neutralise(turn.text, markers),
                answer=None if turn.answer is None else neutralise(turn.answer, markers))
        for turn in conversation.turns
    )
    return replace(conversation, turns=turns)
