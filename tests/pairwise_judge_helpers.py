"""A loopback pairwise judge for the ``owleval judge --pairwise`` tests: it decides from the two answers' content.

Each synthetic answer carries an opaque serial (``#17``) and its model's true strength (``[s=1.5]``). The judge
prefers the stronger answer with the Bradley-Terry probability of the two strengths (a coin fixed per pair of
answers, so both orders of a pair see the same outcome); with probability ``bias`` per request it instead names
the answer shown first, whatever it says (position bias). An answer marked ``[neither]`` makes the judge reply
with a winner that names neither answer.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from owleval.questions import Question
from tests.judge_helpers import prompt_of, quoted_field

SERIAL_RE = re.compile(r"#(\d+)\b")
STRENGTH_RE = re.compile(r"\[s=(-?[0-9.]+)\]")


def write_strength_answers(folder: Path, questions: list[Question], strengths: Mapping[str, float],
                           special: Callable[[str, int], str | None] = lambda m, q: None) -> None:
    """One answers file per model; each answer names its serial and its model's strength (never the model id)."""
    folder.mkdir(parents=True, exist_ok=True)
    serial = 0
    for model, strength in strengths.items():
        lines = []
        for q in questions:
            serial += 1
            text = special(model, q.question_id) or f"Answer #{serial} to question {q.question_id} [s={strength}] <b>it shows</b>."
            lines.append(json.dumps({"image": q.image, "question_id": q.question_id, "question": q.question, "answer": text, "model_id": model}))
        (folder / f"{model}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _unit(*parts: object) -> float:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()
    return int(digest[:12], 16) / 16**12


def pair_judge(bias: float = 0.0) -> Callable[[dict], str]:
    """The judge's reply function for :class:`tests.chat_server.ChatServer` (see the module doc)."""
    def reply(body: dict) -> str:
        prompt = prompt_of(body)
        first, second = str(quoted_field(prompt, "First answer")), str(quoted_field(prompt, "Second answer"))
        if "[neither]" in first or "[neither]" in second:
            return json.dumps({"winner": "answer C", "reason": "names neither"})
        (s1, s2), (n1, n2) = ([float(STRENGTH_RE.search(t).group(1)) for t in (first, second)],
                              [int(SERIAL_RE.search(t).group(1)) for t in (first, second)])
        if _unit("bias", n1, n2) < bias:
            return json.dumps({"winner": "first", "reason": "the first one"})
        lo, hi = sorted((n1, n2))
        p_first = 1.0 / (1.0 + math.exp(-(s1 - s2)))
        coin = _unit("truth", lo, hi)  # the same for both orders of this pair of answers
        first_wins = coin < p_first if n1 == lo else coin >= 1.0 - p_first
        return json.dumps({"winner": "first" if first_wins else "second", "reason": "compared the content"})
    return reply
