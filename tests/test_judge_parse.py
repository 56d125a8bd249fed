"""Reading judge replies, the median of samples, and the judge prompt, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from owleval.answers import Answer
from owleval.judge.parse import ReplyError, median_grade, parse_reply
from owleval.judge.prompt import MISSING_EARLIER_ANSWER, judge_conversation, render_prompt, retry_request, template_sha256
from owleval.questions import questions_by_id
from tests.judge_helpers import quoted_field


@pytest.mark.parametrize(
    ("reply", "grade", "reason"),
    [
        ('{"grade": "A", "reason": "correct"}', "A", "correct"),
        ('{"reason": "lower case, spaced", "grade": " b "}', "B", "lower case, spaced"),
        ('Sure.\n```json\n{"grade": "C", "reason": "the count {3} is wrong"}\n```\nAnything else?', "C", "the count {3} is wrong"),
        ('```\n{"grade": "D", "reason": "off topic"}\n```', "D", "off topic"),
        ('My verdict: {"grade": "A", "reason": "fine"} -- done.', "A", "fine"),
        ('{"grade": "B", "reason": "x"}\n{"grade": "B", "reason": "repeated"}', "B", "x"),
        ('{"analysis": {"colour": "red"}, "grade": "C", "reason": "nested"}', "C", "nested"),
    ],
)
def test_json_objects_are_found_alone_fenced_or_in_text(reply: str, grade: str, reason: str) -> None:
    verdict = parse_reply(reply)
    assert (verdict.grade, verdict.reason) == (grade, reason)


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ("B", "no JSON object"),
        ("The grade is B because the answer is mostly right.", "no JSON object"),
        ('{"grade": "E", "reason": "no such grade"}', "'E' is not one of A, B, C, D"),
        ('{"grade": "A+", "reason": "almost"}', "'A+' is not one of"),
        ('{"grade": 3, "reason": "a number"}', "3 is not one of"),
        ('{"grade": "B"}', "no \"reason\""),
        ('{"grade": "A", "reason": "x"} or maybe {"grade": "C", "reason": "y"}', "several grades (A, C)"),
        ('{"grade": "A", "reason": "cut off', "no JSON object"),
        ("", "no JSON object"),
    ],
)
def test_anything_else_is_an_error_never_a_guess(reply: str, why: str) -> None:
    with pytest.raises(ReplyError, match=why.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        parse_reply(reply)


def test_median_takes_the_lower_of_two_middle_grades() -> None:
    assert median_grade(["A"]) == "A"
    assert median_grade(["A", "B"]) == "B" and median_grade(["B", "A"]) == "B"
    assert median_grade(["A", "D"]) == "D"
    assert median_grade(["A", "C", "B"]) == "B"
    assert median_grade(["A", "A", "D", "C"]) == "C"
    with pytest.raises(ValueError):
        median_grade([])


def test_prompt_shows_own_history_and_a_missing_earlier_answer(owl_data: Path) -> None:
    questions = questions_by_id(owl_data)
    own = {qid: Answer(qid, questions[qid].image, questions[qid].question, f"own answer {qid} <i>kept as text</i>", "m") for qid in (6, 8)}
    prompt = render_prompt(questions[8], own[8], own, questions)
    assert quoted_field(prompt, "Earlier turns") == [{"question": questions[6].question, "answer": own[6].answer},
                                                     {"question": questions[7].question, "answer": MISSING_EARLIER_ANSWER}]
    assert quoted_field(prompt, "Answer to grade") == own[8].answer and "&lt;" not in prompt, "answers are not HTML-escaped"
    assert prompt.rstrip().endswith('where "grade" is "A", "B", "C" or "D".')
    for letter in "ABCD":
        assert f"\n{letter}: " in prompt
    conversation = judge_conversation(prompt, owl_data / "cases" / "5.jpg", "k", ("first bad", "second bad"))
    assert [t.answer for t in conversation.turns] == ["first bad", "second bad", None]
    assert conversation.turns[0].images and conversation.turns[1].text == conversation.turns[2].text == retry_request()
    assert len(template_sha256()) == 64
