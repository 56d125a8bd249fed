"""``owleval judge`` end to end against a loopback chat-completions judge (real HTTP) that grades from content."""

from __future__ import annotations

import base64
import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from owleval.cli import app
from owleval.study.export import EXPORT_COLUMNS
from owleval.questions import load_questions
from owleval.report.grades import read_grades
from owleval.judge.prompt import quote
from tests.chat_server import ChatServer, message_text
from tests.judge_helpers import answer_serial, grade_from_content, prompt_of, quoted_field, write_answer_sets
from tests.timing import budget

MODELS = ("alpha-7b", "beta-13b")
GRADES = "ABCD"


def plain_marker(index: int):
    return lambda qid: f"grade={GRADES[(qid + index) % 4]}"


@pytest.fixture
def questions(owl_data: Path):
    return list(load_questions(owl_data))


@pytest.fixture
def judge_server():
    with ChatServer(reply=grade_from_content) as server:
        yield server


def judge_cli(server: ChatServer, answers: Path, out: Path, *extra: str):
    args = ["judge", "--answers", str(answers), "--judge", "openai", "--checkpoint", "tiny-vlm", "--base-url", server.base_url,
            "--out", str(out), "--concurrency", "4", "-o", "backoff=0.01", *extra]
    return CliRunner().invoke(app, args)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def raw_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "raw.jsonl").read_text(encoding="utf-8").splitlines()]


def test_judges_every_answer_with_image_own_history_and_no_model_ids(tmp_path: Path, questions, judge_server: ChatServer, owl_data: Path) -> None:
    serials = write_answer_sets(tmp_path / "answers", questions, {m: plain_marker(i) for i, m in enumerate(MODELS)})
    out = tmp_path / "judged"
    result = judge_cli(judge_server, tmp_path / "answers", out)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "164 answers asked this run (164 requests)" in result.output and "164 graded, 0 unparsed, 0 failed" in result.output

    requests = judge_server.answered()
    assert len(requests) == len(judge_server.chat_requests) == 164, "one request per answer"
    by_answer = {serials[answer_serial(r.body)]: r.body for r in requests}
    assert len(by_answer) == 164
    answers = {(m, qid): json.loads(line)["answer"] for m in MODELS
               for qid, line in zip(range(1, 83), (tmp_path / "answers" / f"{m}.jsonl").read_text().splitlines(), strict=True)}
    for (model, qid), body in by_answer.items():
        question = questions[qid - 1]
        assert json.dumps(body).count(model) == 0 and all(m not in json.dumps(body) for m in MODELS), "a model id reached the judge"
        assert body["temperature"] == 0.0 and body["response_format"] == {"type": "json_object"}
        (message,) = body["messages"]
        image = next(p for p in message["content"] if p["type"] == "image_url")["image_url"]["url"]
        assert base64.b64decode(image.split(",", 1)[1]) == (owl_data / "cases" / question.image).read_bytes()
        prompt = message_text(message)
        assert quoted_field(prompt, "Question") == question.question and quoted_field(prompt, "Answer to grade") == answers[(model, qid)]
        for earlier in question.earlier_turns:  # a later turn: the earlier questions with this model's own answers
            assert quote(questions[earlier - 1].question) in prompt and quote(answers[(model, earlier)]) in prompt
            other = next(m for m in MODELS if m != model)
            assert quote(answers[(other, earlier)]) not in prompt
        if not question.earlier_turns:
            assert "This question is a later turn" not in prompt
    later = prompt_of(by_answer[("beta-13b", 8)])
    assert later.index(quote(answers[("beta-13b", 6)])) < later.index(quote(answers[("beta-13b", 7)])) < later.index(quote(answers[("beta-13b", 8)]))

    rows = read_csv(out / "grades.csv")
    assert list(rows[0]) == EXPORT_COLUMNS and len(rows) == 164
    for row in rows:
        index = MODELS.index(row["model_id"])
        assert row["annotator"] == "judge:tiny-vlm"
        assert row["grade"] == GRADES[(int(row["question_id"]) + index) % 4]
        assert row["comment"] == f"graded {row['grade']} from the answer's content" and row["graded_at"] and row["flags"] == ""
    frame = read_grades(out / "grades.csv", questions, models=set(MODELS))  # what `owleval report` reads
    assert len(frame) == 164 and set(frame["annotator"]) == {"judge:tiny-vlm"}

    meta = json.loads((out / "meta.json").read_text())
    assert meta["adapter"] == "openai" and meta["checkpoint"] == "tiny-vlm" and meta["base_url"] == judge_server.base_url
    assert meta["prompt_template"]["name"] == "judge_v2.j2" and len(meta["prompt_template"]["sha256"]) == 64
    assert meta["settings"] == {"samples": 1, "temperature": 0.0, "parse_retries": 2, "max_tokens": 512, "seed": 0, "concurrency": 4}
    assert meta["counts"] == {"judged": 164, "unparsed": 0, "failed": 0} and meta["unparsed"] == meta["failed"] == []
    assert meta["status"] == "finished" and meta["provenance"]["usage"]["prompt_tokens"] > 0
    lines = raw_lines(out)
    assert len(lines) == 164 and all(r["usage"]["total_tokens"] > 0 and r["seconds"] > 0 and len(r["prompt_sha256"]) == 64 for r in lines)


def test_reply_forms_parse_retries_unparsed_and_server_errors(tmp_path: Path, questions, judge_server: ChatServer) -> None:
    kinds = {1: "fenced=C", 2: "chatty=A", 3: "garbled-once=D", 4: "never-json", 5: "refuse"}
    write_answer_sets(tmp_path / "answers", questions[:6], {"alpha-7b": lambda qid: kinds.get(qid, "grade=B")})
    judge_server.fail(429, times=3, retry_after="0")
    judge_server.fail(500, times=2)
    out = tmp_path / "judged"
    result = judge_cli(judge_server, tmp_path / "answers", out)
    assert result.exit_code == 1, "an answer that failed makes the run exit non-zero"
    assert "4 graded, 1 unparsed, 1 failed" in result.output and "run the same command again" in result.output

    rows = read_csv(out / "grades.csv")
    grades = {int(r["question_id"]): r["grade"] for r in rows}
    assert grades == {1: "C", 2: "A", 3: "D", 6: "B"}, "unparsed and failed answers have no row; nothing is guessed"
    assert next(r["comment"] for r in rows if r["question_id"] == "2") == 'right, "mostly";\n<script>alert(1)</script>'
    frame = read_grades(out / "grades.csv", questions, models={"alpha-7b"})
    assert frame.set_index("question_id").loc[2, "comment"] == 'right, "mostly";\n<script>alert(1)</script>'
    lines = raw_lines(out)
    by_q: dict[int, list[dict]] = {}
    for line in lines:
        by_q.setdefault(line["question_id"], []).append(line)
    assert [(r["attempt"], r["status"], r["final"]) for r in by_q[3]] == [(0, "unparsed", False), (1, "parsed", True)]
    assert [(r["attempt"], r["status"], r["final"]) for r in by_q[4]] == [(0, "unparsed", False), (1, "unparsed", False), (2, "unparsed", True)]
    assert all(r["reply"] == "Grade: somewhere between B and C, hard to say." and "no JSON object" in r["error"] for r in by_q[4])
    assert [r["status"] for r in by_q[5]] == ["failed"] and "content policy" in by_q[5][0]["error"]
    # a parse retry shows the judge its own reply and asks again for the JSON object
    retried = [r.body for r in judge_server.answered() if len(r.body["messages"]) > 1]
    assert len(retried) == 1 + 2
    first = next(b for b in retried if len(b["messages"]) == 3 and answer_serial(b) == 3)
    assert first["messages"][1] == {"role": "assistant", "content": "The answer seems mostly right, I would give it a good grade."}
    assert "JSON object" in first["messages"][2]["content"]
    statuses = [r.status for r in judge_server.chat_requests]
    assert statuses.count(429) == 3 and statuses.count(500) == 2, "429 and 500 were retried by the adapter"
    meta = json.loads((out / "meta.json").read_text())
    assert meta["counts"] == {"judged": 4, "unparsed": 1, "failed": 1}
    assert meta["unparsed"] == [{"model_id": "alpha-7b", "question_id": 4}] and meta["failed"] == [{"model_id": "alpha-7b", "question_id": 5}]

    # a second run asks again for the failed answer only (unparsed is a final outcome of the judge)
    seen = len(judge_server.chat_requests)
    again = judge_cli(judge_server, tmp_path / "answers", out)
    assert again.exit_code == 1 and "1 answers asked this run (1 requests), 5 judged before" in again.output
    assert [answer_serial(r.body) for r in judge_server.chat_requests[seen:]] == [5]


def test_samples_take_the_median_with_ties_to_the_lower_grade(tmp_path: Path, questions, judge_server: ChatServer) -> None:
    splits = {1: "split=A,B", 2: "split=D,A", 3: "split=C,C", 4: "split=B,A"}
    write_answer_sets(tmp_path / "answers", questions[:4], {"alpha-7b": lambda qid: splits[qid]})
    out = tmp_path / "judged"
    result = judge_cli(judge_server, tmp_path / "answers", out, "--samples", "2", "-o", "seed=10")
    assert result.exit_code == 0, result.output
    grades = {int(r["question_id"]): r["grade"] for r in read_csv(out / "grades.csv")}
    assert grades == {1: "B", 2: "D", 3: "C", 4: "B"}  # seeds 10, 11 pick (A,B)->B, (D,A)->D, (C,C)->C, (B,A)->B
    # the two samples are an empirical grade distribution: expected score and share of A or B, for the report's PPI
    soft = {int(r["question_id"]): (float(r["judge_score"]), float(r["p_acceptable"])) for r in read_csv(out / "grades.csv")}
    assert soft == {1: (2.5, 1.0), 2: (1.5, 0.5), 3: (1.0, 0.0), 4: (2.5, 1.0)}
    bodies = [r.body for r in judge_server.answered()]
    assert len(bodies) == 8 and {b["temperature"] for b in bodies} == {0.7} and {b["seed"] for b in bodies} == {10, 11}
    lines = raw_lines(out)
    assert sorted((r["question_id"], r["sample"]) for r in lines) == [(q, k) for q in range(1, 5) for k in (0, 1)], "all K samples are kept"
    assert json.loads((out / "meta.json").read_text())["settings"]["temperature"] == 0.7


def test_changed_settings_template_or_judge_are_refused_without_overwrite(tmp_path: Path, questions, monkeypatch: pytest.MonkeyPatch) -> None:
    write_answer_sets(tmp_path / "answers", questions[:3], {"alpha-7b": plain_marker(0)})
    out = tmp_path / "judged"
    with ChatServer(reply=grade_from_content, models_route=False) as server:  # accepts the served name as a second model
        assert judge_cli(server, tmp_path / "answers", out).exit_code == 0
        before = (out / "raw.jsonl").read_text()
        refused = judge_cli(server, tmp_path / "answers", out, "--samples", "3")
        assert refused.exit_code == 1 and "samples 1, this run has 3" in refused.output
        other = judge_cli(server, tmp_path / "answers", out, "--checkpoint", "tiny-vlm-2024-05-01")
        assert other.exit_code == 1 and "checkpoint 'tiny-vlm'" in other.output
        import owleval.judge.prompt as prompt

        monkeypatch.setattr(prompt, "template_source", lambda name="": b"an edited template")
        edited = judge_cli(server, tmp_path / "answers", out)
        assert edited.exit_code == 1 and "prompt template" in edited.output
        assert (out / "raw.jsonl").read_text() == before and len(server.chat_requests) == 3, "a refused run asks nothing"
        monkeypatch.undo()
        fresh = judge_cli(server, tmp_path / "answers", out, "--samples", "3", "--overwrite")
        assert fresh.exit_code == 0, fresh.output
    assert len(raw_lines(out)) == 9 and json.loads((out / "meta.json").read_text())["settings"]["samples"] == 3


def test_bad_answers_file_fails_before_any_request(tmp_path: Path, questions, judge_server: ChatServer) -> None:
    write_answer_sets(tmp_path / "answers", questions[:3], {"alpha-7b": plain_marker(0)})
    bad = tmp_path / "answers" / "beta.jsonl"
    bad.write_text(json.dumps({"image": "1.jpg", "question_id": 999, "question": "?", "answer": "x", "model_id": "beta"}) + "\n"
                   + json.dumps({"image": "1.jpg", "question_id": 1, "answer": "x", "model_id": "beta"}) + "\n")
    out = tmp_path / "judged"
    result = judge_cli(judge_server, tmp_path / "answers", out)
    assert result.exit_code == 1
    assert f"{bad}:1 [question_id]: error: unknown question id 999" in result.output
    assert f"{bad}:2 [question]: error: missing" in result.output
    assert judge_server.chat_requests == [] and not out.exists()


def test_unknown_option_is_refused_before_any_request(tmp_path: Path, questions, judge_server: ChatServer) -> None:
    write_answer_sets(tmp_path / "answers", questions[:3], {"alpha-7b": plain_marker(0)})
    out = tmp_path / "judged"
    result = judge_cli(judge_server, tmp_path / "answers", out, "-o", "parse_retrys=3")
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "unknown option -o parse_retrys=" in message and "did you mean 'parse_retries'" in message
    assert "max_retries" in message and "temperature" in message  # the adapter's options and the judge's settings
    assert judge_server.chat_requests == [] and not out.exists()


RUN_IN_SUBPROCESS = "import sys; from owleval.cli import main; sys.argv = ['owleval', *sys.argv[1:]]; main()"


def test_resume_after_kill_9_asks_only_the_missing_answers(tmp_path: Path, questions) -> None:
    serials = write_answer_sets(tmp_path / "answers", questions, {m: plain_marker(i) for i, m in enumerate(MODELS)})
    out = tmp_path / "judged"
    victim: dict[str, subprocess.Popen] = {}

    def kill_midway(body: dict) -> str:
        if len(server.chat_requests) == 60:
            os.kill(victim["proc"].pid, signal.SIGKILL)
        return grade_from_content(body)

    with ChatServer(reply=kill_midway) as server:
        args = ["judge", "--answers", str(tmp_path / "answers"), "--judge", "openai", "--checkpoint", "tiny-vlm",
                "--base-url", server.base_url, "--out", str(out), "--concurrency", "4"]
        victim["proc"] = subprocess.Popen([sys.executable, "-c", RUN_IN_SUBPROCESS, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        victim["proc"].communicate(timeout=budget(120))
        assert victim["proc"].returncode == -9
        logged = (out / "raw.jsonl").read_text(encoding="utf-8")
        complete = {(r["model_id"], r["question_id"]) for r in map(json.loads, logged.splitlines()[: logged.count("\n")]) if r["final"]}
        assert 0 < len(complete) < 164
        seen = len(server.chat_requests)
        result = judge_cli(server, tmp_path / "answers", out)
        assert result.exit_code == 0, result.output + repr(result.exception)
        asked = [serials[answer_serial(r.body)] for r in server.chat_requests[seen:]]
    assert len(asked) == len(set(asked)) == 164 - len(complete), "each missing answer is asked once, the judged ones never"
    assert not set(asked) & complete
    rows = read_csv(out / "grades.csv")
    assert sorted((r["model_id"], int(r["question_id"])) for r in rows) == sorted(serials.values())
    assert f"{len(complete)} judged before" in result.output


def test_a_judge_that_refuses_everything_stops_the_run(tmp_path: Path, questions, judge_server: ChatServer) -> None:
    write_answer_sets(tmp_path / "answers", questions, {"alpha-7b": plain_marker(0)})
    judge_server.fail(403, times=10**6, message="quota exceeded")
    out = tmp_path / "judged"
    result = judge_cli(judge_server, tmp_path / "answers", out)
    assert result.exit_code == 1 and "failed 8 answers in a row" in result.output and "quota exceeded" in result.output
    assert len(judge_server.chat_requests) == 8, "no more requests once the judge refused 8 answers in a row"
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "failed" and meta["counts"] == {"judged": 0, "unparsed": 0, "failed": 8}
    assert read_csv(out / "grades.csv") == [] and (out / "grades.csv").read_text().startswith(",".join(EXPORT_COLUMNS))


def test_models_and_limit_choose_what_is_judged(tmp_path: Path, questions, judge_server: ChatServer) -> None:
    serials = write_answer_sets(tmp_path / "answers", questions, {m: plain_marker(i) for i, m in enumerate(MODELS)})
    out = tmp_path / "judged"
    unknown = judge_cli(judge_server, tmp_path / "answers", out, "--models", "gamma")
    assert unknown.exit_code == 1 and "--models: gamma not in the answers (alpha-7b, beta-13b)" in unknown.output
    result = judge_cli(judge_server, tmp_path / "answers", out, "--models", "beta-13b", "--limit", "3")
    assert result.exit_code == 0, result.output
    assert sorted(serials[answer_serial(r.body)] for r in judge_server.chat_requests) == [("beta-13b", q) for q in (1, 2, 3)]
    assert json.loads((out / "meta.json").read_text())["limit"] == 3


def test_any_adapter_can_judge_and_one_failure_fails_only_its_answer(tmp_path: Path, questions) -> None:
    from owleval.adapters.base import AdapterError, LoadOptions, ModelAdapter
    from owleval.judge.run import JudgeSettings, run_judge
    from tests.chat_server import ServerError

    class LocalJudge(ModelAdapter):
        """A judge without HTTP: answers through ``generate`` only, as a local model adapter does."""

        name = "local-judge"

        def __init__(self) -> None:
            super().__init__(LoadOptions(checkpoint="local-judge-v1"))
            self.batches: list[int] = []

        @classmethod
        def load(cls, options: LoadOptions) -> LocalJudge:
            return cls()

        def generate(self, conversations, config):
            self.batches.append(len(conversations))
            try:
                return [grade_from_content({"messages": [{"role": "user", "content": c.turns[0].text}], "seed": config.seed}) for c in conversations]
            except ServerError as exc:
                raise AdapterError(exc.message) from None

    write_answer_sets(tmp_path / "answers", questions[:8], {"alpha-7b": lambda qid: "refuse" if qid == 6 else f"grade={GRADES[qid % 4]}"})
    judge = LocalJudge()
    result = run_judge("local-judge", answers=[tmp_path / "answers"], load_options=LoadOptions(batch_size=4),
                       settings=JudgeSettings(), out=tmp_path / "judged", adapter=judge)
    assert result.counts == {"judged": 7, "unparsed": 0, "failed": 1}
    assert judge.batches == [4, 4, 1, 1, 1, 1], "the failed batch is asked again one by one"
    rows = read_csv(tmp_path / "judged" / "grades.csv")
    assert {int(r["question_id"]): r["grade"] for r in rows} == {q: GRADES[q % 4] for q in range(1, 9) if q != 6}
    assert {r["annotator"] for r in rows} == {"judge:local-judge-v1"}


def test_out_never_replaces_peoples_grades_nor_files_the_judge_did_not_write(tmp_path: Path, questions, judge_server: ChatServer) -> None:
    write_answer_sets(tmp_path / "answers", questions[:2], {m: lambda qid: "grade=B" for m in MODELS})
    for name, pairwise in (("grades.csv", ()), ("votes.csv", ()), ("votes.csv", ("--pairwise",))):
        people = tmp_path / f"people-{name}-{len(pairwise)}"
        people.mkdir()
        (people / name).write_text("annotator,model_id,question_id,grade\nann,alpha-7b,1,A\n", encoding="utf-8")
        (people / "meta.json").write_text("{}", encoding="utf-8")  # a meta.json alone does not make it a judge's folder
        for extra in ((), ("--overwrite",)):
            refused = judge_cli(judge_server, tmp_path / "answers", people, *pairwise, *extra)
            assert refused.exit_code == 1 and "people's" in refused.output and "not even with --overwrite" in refused.output
        assert (people / name).read_text(encoding="utf-8").endswith("ann,alpha-7b,1,A\n")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine", encoding="utf-8")
    refused = judge_cli(judge_server, tmp_path / "answers", other)
    assert refused.exit_code == 1 and "notes.txt" in refused.output and "--overwrite" in refused.output
    assert not judge_server.chat_requests, "nothing was asked"
    judged = judge_cli(judge_server, tmp_path / "answers", other, "--overwrite")
    assert judged.exit_code == 0, judged.output
    assert (other / "notes.txt").read_text() == "mine" and (other / "grades.csv").is_file()
