"""Reading the judge's reply: a JSON object ``{"grade": "A".."D", "reason": "..."}``, alone, in a code fence or
inside other text. Anything else is a parse error (never a guessed grade), and several samples are combined by
their median grade, ties going to the lower grade."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from owleval.report.grades import GRADE_SCORES, SCORE_GRADES

_FENCE = re.compile(r"```[ \t]*(?:json)?[ \t]*\n?(.*?)```", re.DOTALL | re.IGNORECASE)


class ReplyError(ValueError):
    """The reply holds no usable grade; the message says why (it is recorded in raw.jsonl)."""


@dataclass(frozen=True)
class Verdict:
    grade: str
    reason: str


def _objects(text: str) -> list[dict]:
    """Every JSON object in ``text``, outermost first, in order of appearance."""
    decoder = json.JSONDecoder()
    found: list[dict] = []
    pos = text.find("{")
    while pos != -1:
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            pos = text.find("{", pos + 1)
            continue
        if isinstance(value, dict):
            found.append(value)
        pos = text.find("{", end)
    return found


def _verdict(obj: dict) -> Verdict:
    grade, reason = obj.get("grade"), obj.get("reason")
    if not isinstance(grade, str) or grade.strip().upper() not in GRADE_SCORES:
        raise ReplyError(f"grade {grade!r} is not one of A, B, C, D")
    if not isinstance(reason, str):
        raise ReplyError("the object has no \"reason\" string")
    return Verdict(grade.strip().upper(), reason.strip())


def parse_reply(text: str) -> Verdict:
    """The grade and reason in a judge's reply; raises :class:`ReplyError` when there is none, or when the
    reply offers several different grades (the judge's choice would be a guess)."""
    fenced = [obj for block in _FENCE.findall(text) for obj in _objects(block)]
    candidates = [obj for obj in (fenced or _objects(text)) if "grade" in obj]
    if not candidates:
        raise ReplyError("no JSON object with a \"grade\" in the reply")
    verdicts, problems = [], []
    for obj in candidates:
        try:
            verdicts.append(_verdict(obj))
        except ReplyError as exc:
            problems.append(str(exc))
    if not verdicts:
        raise ReplyError(problems[0])
    if len({v.grade for v in verdicts}) > 1:
        raise ReplyError(f"the reply gives several grades ({', '.join(v.grade for v in verdicts)})")
    return verdicts[0]


def median_grade(grades: Sequence[str]) -> str:
    """The median of ``grades``; with an even count the lower of the two middle grades (A,B -> B)."""
    if not grades:
        raise ValueError("no grades")
    scores = sorted(GRADE_SCORES[g] for g in grades)
    return SCORE_GRADES[scores[(len(scores) - 1) // 2]]
