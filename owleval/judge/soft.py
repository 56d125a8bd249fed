"""The judge's grade distribution over A-D for one reply, from the probabilities of the token that carries the
grade letter (``-o logprobs=true``), or its letter alone when the judge gave none.

The reply is the JSON object ``{"grade": "B", ...}``. The letter's token is found by position in the reply's tokens,
whatever the tokeniser merged it with (``B``, ``"B``, ``":"B"``...): an alternative at that position counts for a
grade when it starts with the same text before the letter, then has that grade's letter, not followed by a letter or
digit (``"Bad`` is not a B). The grades' probabilities are renormalised over A-D, since part of the mass goes to
tokens that are no grade (a quote alone, a space).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from owleval.adapters.base import TokenLogprob

GRADES = "ABCD"
FROM_LOGPROBS = "logprobs"
#: the JSON value of "grade": the letter's position in the reply
_GRADE_VALUE = re.compile(r'"grade"\s*:\s*"\s*([A-Da-d])')


def letter_distribution(grade: str) -> dict[str, float]:
    """All the probability on ``grade``: what a reply without token probabilities says."""
    return {g: float(g == grade) for g in GRADES}


def grade_distribution(grade: str, tokens: Sequence[TokenLogprob] | None) -> tuple[dict[str, float], str]:
    """(P(A..D), where it came from): ``logprobs``, or ``letter: <why>`` when ``tokens`` cannot give it.

    ``grade`` is the letter the reply was parsed to; the first ``"grade": "X"`` of the tokens' text with that
    letter is the one read."""
    if not tokens:
        return letter_distribution(grade), "letter: the judge gave no token probabilities"
    text = "".join(t.token for t in tokens)
    position = next((m.start(1) for m in _GRADE_VALUE.finditer(text) if m.group(1).upper() == grade), None)
    if position is None:
        return letter_distribution(grade), "letter: the grade was not found in the reply's tokens"
    start = 0
    for token in tokens:
        if start + len(token.token) > position:
            break
        start += len(token.token)
    prefix = token.token[: position - start]
    alternatives = dict(token.top)
    alternatives.setdefault(token.token, token.logprob)
    mass = dict.fromkeys(GRADES, 0.0)
    for alternative, logprob in alternatives.items():
        if not alternative.startswith(prefix) or len(alternative) == len(prefix):
            continue
        letter, rest = alternative[len(prefix)].upper(), alternative[len(prefix) + 1 :]
        if letter in mass and not (rest[:1].isalnum()) and math.isfinite(logprob):
            mass[letter] += math.exp(logprob)
    total = sum(mass.values())
    if not total > 0:
        return letter_distribution(grade), "letter: no probability on any grade at the grade's token"
    return {g: p / total for g, p in mass.items()}, FROM_LOGPROBS


def expected_score(probs: dict[str, float]) -> tuple[float, float]:
    """(expected score 0-3, probability of A or B) of a distribution over A-D."""
    return sum(p * (3 - GRADES.index(g)) for g, p in probs.items()), probs["A"] + probs["B"]
