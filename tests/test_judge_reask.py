"""Re-asking an unparsable judge reply stays within the judge's context, and a request refused as too long for
the context is recorded as unparsed (a final outcome), never as a failed request or a crash.

The loopback judge here counts tokens roughly (4 characters of message text a token, plus ``max_tokens``) and
refuses a request over its context with vLLM's HTTP 400 wording, as a real engine does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from owleval.cli import app
from owleval.judge.prompt import retry_request
from owleval.judge.run import REASK_REPLY_CHARS, cut_reply, is_context_refusal
from owleval.questions import load_questions
from tests.chat_server import ChatServer, ServerError, message_text
from tests.judge_helpers import answer_serial, write_answer_sets

LONG_PROSE = "The answer describes the picture at length without any grade. " * 40  # 2,520 characters


def text_chars(body: dict) -> int:
    return sum(len(message_text(m)) for m in body["messages"])


class ContextLimitedJudge:
    """Replies with long prose (never the JSON object) and refuses what does not fit ``context`` tokens."""

    def __init__(self, context: int):
        self.context = context

    def __call__(self, body: dict) -> str:
        prompt_tokens = text_chars(body) // 4
        wanted = prompt_tokens + int(body.get("max_tokens", 16))
        if wanted > self.context:
            raise ServerError(
                400,
                f"This model's maximum context length is {self.context} tokens. However, you requested {wanted} tokens "
                f"({prompt_tokens} in the messages, {body.get('max_tokens')} in the completion). Please reduce the "
                "length of the messages or completion.",
            )
        return LONG_PROSE


def judge(server: ChatServer, answers: Path, out: Path, *extra: str):
    args = ["judge", "--answers", str(answers), "--judge", "openai", "--checkpoint", "tiny-vlm", "--base-url",
            server.base_url, "--out", str(out), "--concurrency", "2", "-o", "backoff=0.01", "-o", "max_tokens=512", *extra]
    return CliRunner().invoke(app, args)


def raw_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "raw.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def questions(owl_data: Path):
    return list(load_questions(owl_data))


def test_reasks_carry_only_the_last_reply_cut_so_requests_do_not_grow(tmp_path: Path, questions) -> None:
    write_answer_sets(tmp_path / "answers", questions[:2], {"alpha-7b": lambda qid: "never-json"})
    # room for the first request and one cut reply, not for two whole replies (the old re-ask sent them all)
    first_prompt_tokens = 0
    with ChatServer(reply=lambda body: LONG_PROSE) as probe:
        judge(probe, tmp_path / "answers", tmp_path / "probe", "-o", "parse_retries=0")
        first_prompt_tokens = max(text_chars(r.body) for r in probe.answered()) // 4
    context = first_prompt_tokens + 512 + (REASK_REPLY_CHARS + len(retry_request())) // 4 + 40
    assert context < first_prompt_tokens + 512 + 2 * len(LONG_PROSE) // 4, "the limit must catch a growing prompt"

    with ChatServer(reply=ContextLimitedJudge(context)) as server:
        out = tmp_path / "judged"
        result = judge(server, tmp_path / "answers", out, "-o", "parse_retries=3")
        assert result.exit_code == 0, result.output
        assert all(r.status == 200 for r in server.chat_requests), "no re-ask was refused for its length"
        by_serial: dict[int, list[dict]] = {}
        for r in server.answered():
            by_serial.setdefault(answer_serial(r.body), []).append(r.body)
        for bodies in by_serial.values():
            assert len(bodies) == 4
            sizes = sorted(text_chars(b) for b in bodies)
            assert sizes[1] == sizes[-1], "every re-ask is the same size: it carries one cut reply, not all of them"
            reask = max(bodies, key=lambda b: len(b["messages"]))
            assert len(reask["messages"]) == 3
            assert reask["messages"][1]["content"] == cut_reply(LONG_PROSE) and len(cut_reply(LONG_PROSE)) <= REASK_REPLY_CHARS + 6
    lines = raw_lines(out)
    assert [(r["attempt"], r["status"], r["final"]) for r in lines if r["question_id"] == 1] == [
        (0, "unparsed", False), (1, "unparsed", False), (2, "unparsed", False), (3, "unparsed", True)]
    assert all(r["reply"] == LONG_PROSE for r in lines), "the log keeps each reply whole"
    assert json.loads((out / "meta.json").read_text())["counts"] == {"judged": 0, "unparsed": 2, "failed": 0}


def test_a_context_length_refusal_is_recorded_as_unparsed_and_not_asked_again(tmp_path: Path, questions) -> None:
    write_answer_sets(tmp_path / "answers", questions[:3], {"alpha-7b": lambda qid: "grade=B"})
    answers_file = tmp_path / "answers" / "alpha-7b.jsonl"
    rows = [json.loads(line) for line in answers_file.read_text().splitlines()]
    rows[1]["answer"] += " and so on" * 600  # about 1,500 tokens more than the others
    answers_file.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def reply(body: dict) -> str:
        if text_chars(body) // 4 + int(body["max_tokens"]) > 1600:
            ContextLimitedJudge(1600)(body)
        return json.dumps({"grade": "B", "reason": "fine"})

    with ChatServer(reply=reply) as server:
        out = tmp_path / "judged"
        result = judge(server, tmp_path / "answers", out)
        assert result.exit_code == 0, result.output
        assert "2 graded, 1 unparsed" in result.output
        refused = [r for r in server.chat_requests if r.status == 400]
        assert len(refused) == 1, "a context refusal is neither retried by the adapter nor re-asked by the judge"
        line = next(r for r in raw_lines(out) if r["question_id"] == 2)
        assert line["status"] == "unparsed" and line["final"] is True and line["grade"] is None
        assert line["error"].startswith("context length exceeded:") and "maximum context length is 1600" in line["error"]
        meta = json.loads((out / "meta.json").read_text())
        assert meta["counts"] == {"judged": 2, "unparsed": 1, "failed": 0}

        seen = len(server.chat_requests)
        again = judge(server, tmp_path / "answers", out)
        assert again.exit_code == 0 and len(server.chat_requests) == seen, "a re-run does not ask it again"


@pytest.mark.parametrize(
    "message, expected",
    [
        ("HTTP 400: This model's maximum context length is 2048 tokens. However, you requested 2600 tokens", True),
        ("HTTP 400: The decoder prompt (length 4100) is longer than the maximum model length of 4096.", True),
        ("HTTP 400: The input (5000 tokens) is longer than the model's context length (4096 tokens).", True),
        ("HTTP 400: This model's maximum context length is 8192 tokens... (context_length_exceeded)", True),
        ("HTTP 422: Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096", True),
        ("HTTP 400: this request was flagged by the content policy", False),
        ("did not answer after 9 tries; last: HTTP 503: Service Unavailable", False),
    ],
)
def test_context_refusals_are_told_from_other_errors(message: str, expected: bool) -> None:
    assert is_context_refusal(message) is expected
