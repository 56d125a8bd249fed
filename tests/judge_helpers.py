"""A loopback LLM judge for the ``owleval judge`` tests and benchmark: it grades from the request's content.

Each synthetic answer carries an opaque serial (``#17``) and a marker that says how the judge should reply:
``grade=B`` (a plain JSON reply), ``fenced=C`` / ``chatty=A`` (the object in a code fence / inside prose),
``garbled-once=D`` (prose first, JSON when asked again), ``never-json`` (prose every time), ``refuse``
(HTTP 400) and ``split=A,B,...`` (the grade depends on the request's seed: one per sample).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from owleval.questions import Question
from tests.chat_server import ServerError, message_text

SERIAL_RE = re.compile(r"#(\d+)\b")


def write_answer_sets(folder: Path, questions: list[Question], markers: Mapping[str, Callable[[int], str]]) -> dict[int, tuple[str, int]]:
    """One answers file per model (model_id -> marker for each question id); returns serial -> (model, question)."""
    folder.mkdir(parents=True, exist_ok=True)
    serials: dict[int, tuple[str, int]] = {}
    for model_id, marker in markers.items():
        lines = []
        for q in questions:
            serial = len(serials) + 1
            serials[serial] = (model_id, q.question_id)
            text = f"Answer #{serial} to question {q.question_id}: [{marker(q.question_id)}] It shows <b>things</b>."
            lines.append(json.dumps({"image": q.image, "question_id": q.question_id, "question": q.question, "answer": text, "model_id": model_id}))
        (folder / f"{model_id}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return serials


def prompt_of(body: dict) -> str:
    """The judge prompt: the text of the first user message (later messages are parse-retry turns)."""
    return message_text(body["messages"][0])


def quoted_field(prompt: str, label: str) -> object:
    """The JSON value the prompt shows on its one line ``label: <json>`` (the judge templates quote texts so)."""
    lines = [line for line in prompt.splitlines() if line.startswith(f"{label}: ")]
    assert len(lines) == 1, f"the prompt has {len(lines)} lines labelled {label!r}"
    return json.loads(lines[0][len(label) + 2:])


def answer_serial(body: dict) -> int:
    """Which answer a request grades: the serial in its "Answer to grade" line."""
    return int(SERIAL_RE.search(str(quoted_field(prompt_of(body), "Answer to grade"))).group(1))


def grade_from_content(body: dict) -> str:
    """The judge's reply, decided by the marker of the answer it is shown."""
    answer = str(quoted_field(prompt_of(body), "Answer to grade"))
    marker = re.search(r"\[([a-z-]+)(?:=([A-D,]+))?\]", answer)
    kind, grades = marker.group(1), (marker.group(2) or "").split(",")
    asked_again = len(body["messages"]) > 1
    reply = json.dumps({"grade": grades[0], "reason": f"graded {grades[0]} from the answer's content"})
    if kind == "grade":
        return reply
    if kind == "fenced":
        return f"Here is my judgement.\n```json\n{reply}\n```\n"
    if kind == "chatty":  # a reason with a comma, quotes, a line break and markup: text for the CSV to keep
        reason = 'right, "mostly";\n<script>alert(1)</script>'
        return f"Looking at the image, I would say: {json.dumps({'grade': grades[0], 'reason': reason})} I hope this helps!"
    if kind == "garbled-once":
        return reply if asked_again else "The answer seems mostly right, I would give it a good grade."
    if kind == "never-json":
        return "Grade: somewhere between B and C, hard to say."
    if kind == "refuse":
        raise ServerError(400, "this request was flagged by the content policy")
    if kind == "split":
        grade = grades[body["seed"] % len(grades)]
        return json.dumps({"grade": grade, "reason": f"sample with seed {body['seed']}"})
    raise AssertionError(f"unknown marker {kind}")
