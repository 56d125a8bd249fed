"""Reading the judge's reply: a JSON object ``{"grade": "A".."D", "reason": "..."}``, alone, in a code fence or
inside other text. Anything else is a parse error (never a guessed grade), and several samples are combined by
their median grade, ties going to the lower grade."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from owleval.records.grades import GRADE_SCORES, SCORE_GRADES

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


#: what a pairwise judge may name as the better answer
PAIR_WINNERS = ("first", "second", "tie", "both_bad")


@dataclass(frozen=True)
class PairVerdict:
    winner: str  # first, second, tie or both_bad
    reason: str


def parse_pair_reply(text: str) -> PairVerdict:
    """The winner and reason in a pairwise judge's reply ``{"winner": "first"|"second"|"tie"|"both_bad", "reason"}``;
    raises :class:`ReplyError` when the reply names neither answer (nor a tie / both bad) or several winners."""
    fenced = [obj for block in _FENCE.findall(text) for obj in _objects(block)]
    candidates = [obj for obj in (fenced or _objects(text)) if "winner" in obj]
    if not candidates:
        raise ReplyError("no JSON object with a \"winner\" in the reply")
    verdicts, problems = [], []
    for obj in candidates:
        winner, reason = obj.get("winner"), obj.get("reason")
        token = winner.strip().lower().replace(" ", "_").replace("-", "_") if isinstance(winner, str) else None
        if token not in PAIR_WINNERS:
            problems.append(f"winner {winner!r} names neither answer (expected one of {', '.join(PAIR_WINNERS)})")
        elif not isinstance(reason, str):
            problems.append("the object has no \"reason\" string")
        else:
            verdicts.append(PairVerdict(token, reason.strip()))
    if not verdicts:
        raise ReplyError(problems[0])
    if len({v.winner for v in verdicts}) > 1:
        raise ReplyError(f"the reply names several winners ({', '.join(v.winner for v in verdicts)})")
    return verdicts[0]

