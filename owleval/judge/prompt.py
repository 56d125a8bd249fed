"""The judge's prompt: one versioned jinja2 template (plain text) rendered per answer, and the one-turn
conversation that carries it with the question's image. Model ids never enter the prompt.

Answers, questions and earlier turns are untrusted: the templates show each through :func:`quote`, one JSON value
on one line, so a text cannot end its quote, begin a line of the prompt (a forged note, rubric or turn) or spell a
chat control token; the prompt is the same for the same texts (no random boundary), so resumes and hashes hold."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jinja2

from owleval.adapters.base import Conversation, ImageRef, Turn
from owleval.answers import Answer
from owleval.questions import GRADES, Question

TEMPLATE = "judge_v2.j2"
PAIRWISE_TEMPLATE = "judge_pairwise_v2.j2"
#: templates of earlier versions, whose folders are refused on resume (they quoted answers between fixed marks)
RETIRED_TEMPLATES = ("judge_v1.j2", "judge_pairwise_v1.j2")
#: shown in the judge's view of a later turn when the model's answer to an earlier turn is not in its file
MISSING_EARLIER_ANSWER = "(no answer to this turn in the answers file)"


@dataclass(frozen=True)
class EarlierTurn:
    question: str
    answer: str


def _escaped(char: str) -> str:
    code = ord(char)
    if code > 0xFFFF:  # JSON spells it as a UTF-16 surrogate pair
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def _needs_escape(char: str) -> bool:
    # "<" and ">": no chat control token (<|im_end|>, <start_of_turn>, <image>) survives; Cc/Cf/Zl/Zp: no line
    # break a tokenizer or the judge would read as one (U+2028, NEL) and no invisible or bidi character
    return char in "<>" or unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp")


def quote(value: object) -> str:
    """``value`` (a text, an earlier turn or a list of them) as one line of JSON that :func:`json.loads` reads back
    unchanged: quotes, backslashes, "<", ">", control, format and line-separator characters are ``\\u`` escapes."""
    if isinstance(value, (list, tuple)):
        value = [dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for v in value]  # type: ignore[arg-type]
    text = json.dumps(value, ensure_ascii=False)
    return "".join(_escaped(c) if _needs_escape(c) else c for c in text)


@functools.cache
def _environment() -> jinja2.Environment:
    # Plain text, not HTML: autoescaping would show the judge "&lt;" for every "<" in an answer; untrusted texts
    # are quoted by the templates themselves (the `quote` filter)
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("owleval.judge", "templates"),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["quote"] = quote
    return env


def template_source(name: str = TEMPLATE) -> bytes:
    return (resources.files("owleval.judge") / "templates" / name).read_bytes()


def template_sha256(name: str = TEMPLATE) -> str:
    """The hash recorded in meta.json: a changed template must not silently continue an old judgement run."""
    return hashlib.sha256(template_source(name)).hexdigest()


def render_prompt(question: Question, answer: Answer, own_answers: Mapping[int, Answer], questions: Mapping[int, Question], template: str = TEMPLATE) -> str:
    """The prompt text for one answer. A later turn shows the dialogue's earlier questions with the *same*
    model's earlier answers (``own_answers``: that model's answers by question id)."""
    history = [
        EarlierTurn(questions[qid].question, own_answers[qid].answer if qid in own_answers else MISSING_EARLIER_ANSWER)
        for qid in question.earlier_turns
    ]
    return _environment().get_template(template).render(
        grades=GRADES, history=history, question=question.question, answer=answer.answer
    ).strip()


@dataclass(frozen=True)
class PairSide:
    """One answer of a pair as the pairwise judge sees it: its own assistant's earlier turns, then the answer."""

    history: tuple[EarlierTurn, ...]
    answer: str


def pair_side(question: Question, answer: Answer, own_answers: Mapping[int, Answer], questions: Mapping[int, Question]) -> PairSide:
    """``answer`` with the dialogue's earlier questions and the *same* model's earlier answers."""
    history = tuple(
        EarlierTurn(questions[qid].question, own_answers[qid].answer if qid in own_answers else MISSING_EARLIER_ANSWER)
        for qid in question.earlier_turns
    )
    return PairSide(history, answer.answer)


def render_pairwise_prompt(question: Question, first: PairSide, second: PairSide, template: str = PAIRWISE_TEMPLATE) -> str:
    """The pairwise judge's prompt for one order of a pair (no model ids: only the two sides' texts)."""
    return _environment().get_template(template).render(question=question.question, first=first, second=second).strip()


def retry_request(template: str = TEMPLATE) -> str:
    """What the judge is told after a reply that is not the JSON object asked for."""
    empty = PairSide((), "")
    module = _environment().get_template(template).make_module(
        {"grades": GRADES, "history": [], "question": "", "answer": "", "first": empty, "second": empty})
    return str(module.retry_request()).strip()  # type: ignore[attr-defined]


def judge_conversation(prompt: str, image: Path, key: str, bad_replies: tuple[str, ...] = (), template: str = TEMPLATE) -> Conversation:
    """The prompt as one user turn holding the image; after unparsable replies, each is followed by a request to
    answer again in the JSON form, so a greedy judge does not just repeat itself."""
    turns = [Turn(prompt, (ImageRef(image),), answer=bad_replies[0] if bad_replies else None)]
    for i, _ in enumerate(bad_replies):
        later = bad_replies[i + 1] if i + 1 < len(bad_replies) else None
        turns.append(Turn(retry_request(template), (), answer=later))
    return Conversation(tuple(turns), key=key)
