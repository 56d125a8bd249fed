"""``owleval judge --retry-unparsed``: asks again only about the answers whose replies could not be read, keeps every
other judgement, and records both attempts in raw.jsonl (against a loopback chat-completions judge, real HTTP)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from typer.testing import CliRunner

from owleval.cli import app
from owleval.questions import load_questions
from tests.chat_server import ChatServer
from tests.judge_helpers import answer_serial, grade_from_content, write_answer_sets

UNREADABLE_AT_FIRST = {2, 4}  # question ids whose replies are prose until the judge is "fixed"


def judge(server: ChatServer, answers: Path, out: Path, *extra: str):
    args = ["judge", "--answers", str(answers), "--judge", "openai", "--checkpoint", "tiny-vlm", "--base-url", server.base_url,
            "--out", str(out), "--concurrency", "2", "-o", "backoff=0.01", *extra]
    return CliRunner().invoke(app, args)


def grades(out: Path) -> dict[int, dict[str, str]]:
    with open(out / "grades.csv", newline="", encoding="utf-8") as fh:
        return {int(r["question_id"]): r for r in csv.DictReader(fh)}


def test_retry_unparsed_asks_only_those_and_keeps_both_attempts(tmp_path: Path, owl_data: Path) -> None:
    questions = list(load_questions(owl_data))[:6]
    serials = write_answer_sets(tmp_path / "answers", questions, {"alpha-7b": lambda qid: f"grade={'ABCD'[qid % 4]}"})
    readable = {"now": False}

    def reply(body: dict) -> str:
        _, qid = serials[answer_serial(body)]
        if qid in UNREADABLE_AT_FIRST and not readable["now"]:
            return "I would say it is fairly good overall."
        return grade_from_content(body)

    out = tmp_path / "judged"
    with ChatServer(reply=reply) as server:
        first = judge(server, tmp_path / "answers", out)
        assert first.exit_code == 0, first.output
        assert "4 graded, 2 unparsed, 0 failed" in first.output and "--retry-unparsed" in first.output
        before = grades(out)
        assert set(before) == {1, 3, 5, 6}

        seen = len(server.chat_requests)
        plain = judge(server, tmp_path / "answers", out)
        assert "0 answers asked this run" in plain.output and len(server.chat_requests) == seen, "a plain re-run keeps unparsed"

        readable["now"] = True
        again = judge(server, tmp_path / "answers", out, "--retry-unparsed")
        assert again.exit_code == 0, again.output
        assert "2 answers asked this run (2 requests), 4 judged before" in again.output
        assert "6 graded, 0 unparsed, 0 failed" in again.output
        asked = sorted(serials[answer_serial(r.body)][1] for r in server.chat_requests[seen:])
        assert asked == sorted(UNREADABLE_AT_FIRST), "only the unparsed answers were asked again"

        after = grades(out)
        assert set(after) == set(range(1, 7))
        assert all(after[q] == before[q] for q in before), "the other judgements are kept as they were"
        assert {q: after[q]["grade"] for q in UNREADABLE_AT_FIRST} == {2: "C", 4: "A"}

        lines = [json.loads(x) for x in (out / "raw.jsonl").read_text(encoding="utf-8").splitlines()]
        for qid in UNREADABLE_AT_FIRST:
            mine = [r for r in lines if r["question_id"] == qid]
            assert [(r["attempt"], r["status"]) for r in mine] == [(0, "unparsed"), (1, "unparsed"), (2, "unparsed"), (0, "parsed")]
            assert len({r["judgement"] for r in mine}) == 2, "the first judgement and the retry are both in the log"
        meta = json.loads((out / "meta.json").read_text())
        assert meta["counts"] == {"judged": 6, "unparsed": 0, "failed": 0} and meta["unparsed"] == []
        assert meta["retry_unparsed"] is True and meta["runs"] == 3

        seen = len(server.chat_requests)
        nothing_left = judge(server, tmp_path / "answers", out, "--retry-unparsed")
        assert "0 answers asked this run" in nothing_left.output and len(server.chat_requests) == seen
