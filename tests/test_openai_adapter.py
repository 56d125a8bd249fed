"""The ``openai`` adapter against a real chat-completions server on a loopback port (tests/chat_server.py)."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import logging
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from owleval.adapters.base import AdapterError, Conversation, GenerationConfig, ImageRef, LoadOptions, Turn
from owleval.adapters.openai_compat import OpenAICompatAdapter, normalize_base_url
from owleval.cli import app
from owleval.questions import load_questions
from tests.chat_server import ChatServer, RecordedRequest, reply_for

SECRET = "sk-owleval-test-7f3c9a1d"


@pytest.fixture
def server() -> ChatServer:
    with ChatServer() as srv:
        yield srv


def load(server: ChatServer, checkpoint: str | None = "tiny-vlm", **options: str) -> OpenAICompatAdapter:
    opts = {"base_url": server.base_url, "backoff": "0.01", **options}
    return OpenAICompatAdapter.load(LoadOptions(checkpoint, options=opts))


def ask(text: str, *images: Path, key: str = "") -> Conversation:
    return Conversation((Turn(text, tuple(ImageRef(p) for p in images)),), key=key)


GREEDY = GenerationConfig(max_new_tokens=64)


# -- protocol ----------------------------------------------------------------------------------------------------
def test_request_carries_history_images_sampling_and_key(owl_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OWL_TEST_KEY", SECRET)
    png, jpeg = owl_data / "cases" / "49.jpg", owl_data / "cases" / "1.jpg"
    turns = (Turn("What is in both images?", (ImageRef(png), ImageRef(jpeg)), answer="A chart and a comic."), Turn("Which is older?"))
    with ChatServer(api_key=SECRET) as server:
        adapter = load(server, api_key_env="OWL_TEST_KEY")
        answers = adapter.generate([Conversation(turns, key="q9")], GenerationConfig(max_new_tokens=4, seed=3))
    (request,) = server.chat_requests
    body = request.body
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert (body["model"], body["max_tokens"], body["temperature"], body["top_p"], body["seed"]) == ("tiny-vlm", 4, 0.0, 1.0, 3)
    first, answer, second = body["messages"]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert [p["type"] for p in first["content"]] == ["image_url", "image_url", "text"]
    urls = [p["image_url"]["url"] for p in first["content"][:2]]
    assert urls[0].startswith("data:image/png;base64,") and urls[1].startswith("data:image/jpeg;base64,")
    assert base64.b64decode(urls[0].split(",", 1)[1]) == png.read_bytes()
    assert base64.b64decode(urls[1].split(",", 1)[1]) == jpeg.read_bytes()
    assert answer == {"role": "assistant", "content": "A chart and a comic."}
    assert second == {"role": "user", "content": "Which is older?"}
    assert answers == [" ".join(reply_for(body["messages"]).split()[:4])]


def test_sampling_settings_and_beams() -> None:
    from owleval.adapters.openai_compat import sampling_params

    sampled = sampling_params(GenerationConfig(max_new_tokens=9, do_sample=True, temperature=0.7, top_p=0.9, top_k=40, seed=5))
    assert sampled == {"max_tokens": 9, "seed": 5, "temperature": 0.7, "top_p": 0.9, "top_k": 40}
    assert "top_k" not in sampling_params(GenerationConfig(top_k=40)), "greedy decoding sends no top_k"
    with pytest.raises(AdapterError, match="beam"):
        sampling_params(GenerationConfig(num_beams=4))


def test_images_other_than_jpeg_png_are_sent_as_png(tmp_path: Path) -> None:
    from PIL import Image

    from owleval.adapters.openai_compat import image_data_url

    Image.new("RGB", (5, 4), (200, 10, 10)).save(tmp_path / "red.jpg", format="BMP")
    url = image_data_url(tmp_path / "red.jpg")
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]).startswith(b"\x89PNG")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(AdapterError, match="cannot read image .*broken.png"):
        image_data_url(tmp_path / "broken.png")


def test_base_url_forms(server: ChatServer) -> None:
    assert normalize_base_url("http://h:8000") == "http://h:8000/v1"
    assert normalize_base_url("http://h:8000/v1/") == "http://h:8000/v1"
    assert normalize_base_url("https://api.example.com/openai/v1") == "https://api.example.com/openai/v1"
    with pytest.raises(AdapterError, match="not an http"):
        normalize_base_url("localhost:8000")
    for url in (server.url, server.base_url + "/"):
        adapter = OpenAICompatAdapter.load(LoadOptions("tiny-vlm", options={"base_url": url}))
        assert adapter.generate([ask("hello?")], GREEDY)[0].endswith("you asked: hello?")


def test_server_messages_and_retry_after_forms() -> None:
    import httpx

    from owleval.adapters.openai_compat import retry_after_seconds, server_message

    def response(status: int, body: object = None, text: str = "", **headers: str) -> httpx.Response:
        if body is not None:
            return httpx.Response(status, json=body, headers=headers)
        return httpx.Response(status, text=text, headers=headers)

    assert server_message(response(400, {"error": {"message": "openai style"}})) == "openai style"
    assert server_message(response(400, {"object": "error", "message": "vllm style"})) == "vllm style"
    assert server_message(response(422, {"error": "tgi style", "error_type": "validation"})) == "tgi style"
    assert server_message(response(400, {"detail": "fastapi style"})) == "fastapi style"
    assert server_message(response(502, text="<html>Bad Gateway</html>")) == "<html>Bad Gateway</html>"
    assert retry_after_seconds(response(429, {}, **{"Retry-After": "7"})) == 7.0
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= retry_after_seconds(response(429, {}, **{"Retry-After": later})) <= 31
    assert retry_after_seconds(response(429, {})) is None
    assert retry_after_seconds(response(429, {}, **{"Retry-After": "soon"})) is None


# -- load-time errors --------------------------------------------------------------------------------------------
def test_load_errors_are_clear(server: ChatServer) -> None:
    with pytest.raises(AdapterError, match="--base-url"):
        OpenAICompatAdapter.load(LoadOptions("tiny-vlm"))
    down = ChatServer().start()
    down.close()
    with pytest.raises(AdapterError, match=f"cannot reach the server at http://127.0.0.1:{down.port}/v1"):
        OpenAICompatAdapter.load(LoadOptions("tiny-vlm", options={"base_url": down.base_url}))
    with pytest.raises(AdapterError, match="does not serve 'llava-13b'; it serves: tiny-vlm"):
        load(server, "llava-13b")
    with pytest.raises(AdapterError, match="--device cuda"):
        OpenAICompatAdapter.load(LoadOptions("tiny-vlm", device="cuda", options={"base_url": server.base_url}))
    with pytest.raises(AdapterError, match="--dtype bfloat16"):
        OpenAICompatAdapter.load(LoadOptions("tiny-vlm", dtype="bfloat16", options={"base_url": server.base_url}))
    with pytest.raises(AdapterError, match="concurrency='0' must be at least 1"):
        load(server, concurrency="0")
    with pytest.raises(AdapterError, match="max_retries='2.5' must be a whole number"):
        load(server, max_retries="2.5")
    with pytest.raises(AdapterError, match="timeout='nan' must be at least"):
        load(server, timeout="nan")
    assert load(server, None).options.checkpoint == "tiny-vlm", "the one served model is the default"


def test_server_without_models_route_is_tolerated() -> None:
    with ChatServer(models_route=False) as server:
        adapter = load(server)
        assert adapter.generate([ask("still there?")], GREEDY)[0].endswith("still there?")
        with pytest.raises(AdapterError, match="name the served model with --checkpoint"):
            load(server, None)
        # the served name is then only checked by the server itself: a clear 404, not retried
        with pytest.raises(AdapterError, match="404.*The model `nope` does not exist"):
            load(server, "nope").generate([ask("x")], GREEDY)
        assert [r.status for r in server.chat_requests][-1] == 404


def test_wrong_or_missing_key_is_refused_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    with ChatServer(api_key=SECRET) as server:
        monkeypatch.delenv("OWL_TEST_KEY", raising=False)
        with pytest.raises(AdapterError, match="environment variable OWL_TEST_KEY is not set"):
            load(server, api_key_env="OWL_TEST_KEY")
        monkeypatch.setenv("OWL_TEST_KEY", "sk-wrong-key-123")
        with pytest.raises(AdapterError, match="refused the API key") as caught:
            load(server, api_key_env="OWL_TEST_KEY")
        assert "sk-wrong-key-123" not in str(caught.value)


# -- retries and failures ----------------------------------------------------------------------------------------
def test_retries_429_honouring_retry_after_then_500s(server: ChatServer) -> None:
    adapter = load(server)
    server.fail(429, retry_after="0.4")
    server.fail(500, times=2)
    assert adapter.generate([ask("busy?")], GREEDY)[0].endswith("you asked: busy?")
    requests = server.chat_requests
    assert [r.status for r in requests] == [429, 500, 500, 200]
    assert requests[1].started - requests[0].finished >= 0.35, "Retry-After: 0.4 was not honoured"
    assert adapter.provenance()["requests"] == {"answered": 1, "http_requests": 4, "retries": 3, "failed": 0}


def test_timeouts_and_a_crashed_server_are_retried(server: ChatServer) -> None:
    adapter = load(server, timeout="0.5")
    server.stall(1.2)
    assert adapter.generate([ask("slow?")], GREEDY)[0].endswith("slow?")
    server.crash_at(len(server.chat_requests) + 1, downtime=0.3)
    assert adapter.generate([ask("crash?")], GREEDY)[0].endswith("crash?")
    assert server.restarts == 1
    assert adapter.provenance()["requests"]["retries"] >= 2


def test_gives_up_after_max_retries(server: ChatServer) -> None:
    adapter = load(server, max_retries="2")
    server.fail(503, times=10, message="overloaded")
    with pytest.raises(AdapterError, match=r"did not answer conversation q7 after 3 tries; last: HTTP 503: overloaded"):
        adapter.generate([ask("hello?", key="q7")], GREEDY)
    assert len(server.chat_requests) == 3
    assert adapter.provenance()["requests"]["failed"] == 1


@pytest.mark.parametrize("status", [400, 401, 413, 422])
def test_client_errors_fail_fast_with_the_servers_message(server: ChatServer, status: int) -> None:
    adapter = load(server)
    server.fail(status, message="image too large: 99 MB")
    with pytest.raises(AdapterError, match=f"refused conversation q3 with HTTP {status}: image too large: 99 MB"):
        adapter.generate([ask("big?", key="q3")], GREEDY)
    assert len(server.chat_requests) == 1, "a client error is not retried"


def test_one_failed_request_fails_the_batch(server: ChatServer) -> None:
    adapter = load(server, concurrency="2")
    server.fail(400, message="bad one", when=lambda body: body["messages"][-1]["content"] == "q2?")
    with pytest.raises(AdapterError, match="bad one"):
        adapter.generate([ask(f"q{i}?", key=f"q{i}") for i in range(8)], GREEDY)


# -- concurrency and provenance ----------------------------------------------------------------------------------
@pytest.mark.parametrize("concurrency", [1, 4])
def test_requests_overlap_up_to_the_concurrency_and_keep_order(concurrency: int) -> None:
    with ChatServer(delay=0.25) as server:
        adapter = load(server, concurrency=str(concurrency))
        texts = [f"question number {i}?" for i in range(2 * concurrency + 1)]
        answers = adapter.generate([ask(t) for t in texts], GREEDY)
    assert [a.split("you asked: ")[1] for a in answers] == texts
    assert server.max_in_flight == concurrency


def test_provenance_reports_served_model_usage_and_no_secrets(owl_data: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OWL_TEST_KEY", SECRET)
    with ChatServer(api_key=SECRET) as server:
        url = server.base_url.replace("http://", "http://user:pw-in-url@")
        with pytest.raises(AdapterError, match="leave credentials out of the URL") as caught:
            OpenAICompatAdapter.load(LoadOptions("tiny-vlm", options={"base_url": url}))
        assert "pw-in-url" not in str(caught.value)
        adapter = load(server, api_key_env="OWL_TEST_KEY", backoff="0")
        server.fail(429)
        adapter.generate([ask("one?", owl_data / "cases" / "2.jpg"), ask("two?")], GREEDY)
        adapter.generate([ask("three?")], GenerationConfig(max_new_tokens=2))
    record = adapter.provenance()
    sent = [r.response["usage"] for r in server.answered()]
    assert record["served_model"] == "tiny-vlm-2024-05-01" and record["checkpoint"] == "tiny-vlm"
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert record["usage"][name] == sum(u[name] for u in sent) > 0
    assert record["requests"] == {"answered": 3, "http_requests": 4, "retries": 1, "failed": 0}
    assert record["finish_reasons"] == {"stop": 2, "length": 1}
    assert record["base_url"] == f"http://127.0.0.1:{server.port}/v1"
    assert SECRET not in json.dumps(record) + caplog.text


# -- end to end through `owleval generate` ------------------------------------------------------------------------
def question_of(request: RecordedRequest, questions: dict[tuple[str, str], int]) -> int:
    """Which question a request asks: its last user text and the image of its first message."""
    first = request.body["messages"][0]["content"]
    url = next(p["image_url"]["url"] for p in first if p["type"] == "image_url")
    image = hashlib.sha256(base64.b64decode(url.split(",", 1)[1])).hexdigest()
    return questions[(request.last_user_text, image)]


@pytest.fixture
def question_index(owl_data: Path) -> dict[tuple[str, str], int]:
    def sha(name: str) -> str:
        return hashlib.sha256((owl_data / "cases" / name).read_bytes()).hexdigest()

    return {(q.question, sha(q.image)): q.question_id for q in load_questions(owl_data)}


def generate_cli(server: ChatServer, out: Path, *extra: str):
    args = ["generate", "--model", "openai", "--checkpoint", "tiny-vlm", "--base-url", server.base_url, "--out", str(out),
            "--batch-size", "8", "--concurrency", "4", "-o", "backoff=0.01", "-o", "api_key_env=OWL_TEST_KEY", *extra]
    return CliRunner().invoke(app, args)


def read_answers(out: Path) -> dict[int, str]:
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    answers = {row["question_id"]: row["answer"] for row in rows}
    assert len(answers) == len(rows), "a question was answered twice"
    return answers


def test_generate_all_82_through_429_500_and_a_restart(owl_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, question_index: dict) -> None:
    monkeypatch.setenv("OWL_TEST_KEY", SECRET)
    questions = {q.question_id: q for q in load_questions(owl_data)}
    out = tmp_path / "openai.jsonl"
    with ChatServer(api_key=SECRET) as server:
        server.fail(429, times=4, retry_after="0")
        server.fail(500, times=3)
        server.crash_at(30, downtime=0.3)
        result = generate_cli(server, out)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert server.restarts == 1
    answers = read_answers(out)
    assert sorted(answers) == sorted(questions)
    answered = {question_of(r, question_index): r for r in server.answered()}
    assert len(answered) == len(server.answered()) == 82, "each question is answered by the server exactly once"
    for qid, q in questions.items():
        messages = answered[qid].body["messages"]
        assert answers[qid] == reply_for(messages).strip()  # answers files hold stripped text
        assert answers[qid].endswith(f"you asked: {q.question.strip()}")
        # the model's own earlier answers come back as the dialogue's history
        history = [(m["role"], m["content"]) for m in messages[1:-1:2]]
        assert history == [("assistant", answers[e]) for e in q.earlier_turns]
    meta_text = out.with_name(out.name + ".meta.json").read_text(encoding="utf-8")
    meta = json.loads(meta_text)["provenance"]
    assert meta["served_model"] == "tiny-vlm-2024-05-01"
    assert meta["requests"]["answered"] == 82 and meta["requests"]["retries"] >= 8
    assert meta["usage"]["prompt_tokens"] == sum(r.response["usage"]["prompt_tokens"] for r in server.answered())
    assert SECRET not in meta_text + result.output + out.read_text(encoding="utf-8")


def test_resumed_run_sends_no_request_for_answered_questions(owl_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, question_index: dict) -> None:
    monkeypatch.setenv("OWL_TEST_KEY", SECRET)
    q40 = {q.question_id: q for q in load_questions(owl_data)}[40].question
    out = tmp_path / "openai.jsonl"
    with ChatServer() as server:
        server.fail(400, times=10**6, message="content policy", when=lambda body: body["messages"][-1]["content"] == q40)
        first = generate_cli(server, out)
        assert first.exit_code == 1 and "content policy" in first.output, first.output
        kept = read_answers(out)
        assert 0 < len(kept) < 82 and 40 not in kept
        server.failures.clear()
        seen = len(server.chat_requests)
        second = generate_cli(server, out)
        assert second.exit_code == 0, second.output + repr(second.exception)
        asked = [question_of(r, question_index) for r in server.chat_requests[seen:]]
    assert not set(asked) & set(kept), "the resumed run asked again for questions already answered"
    assert sorted(asked) == sorted(set(range(1, 83)) - set(kept))
    final = read_answers(out)
    assert len(final) == 82 and all(final[q] == a for q, a in kept.items())


# -- per-request outcomes and JSON mode (what `owleval judge` uses) ----------------------------------------------
def test_complete_each_returns_every_outcome_without_stopping_at_a_failure() -> None:
    with ChatServer(delay=0.05) as server:
        adapter = load(server, concurrency="4", max_retries="1")
        server.fail(400, message="bad one", when=lambda body: body["messages"][-1]["content"] == "q2?")
        server.fail(503, times=10, when=lambda body: body["messages"][-1]["content"] == "q5?")
        outcomes = adapter.complete_each([(ask(f"q{i}?", key=f"q{i}"), GenerationConfig(max_new_tokens=64, seed=i)) for i in range(8)])
    assert [o.key for o in outcomes] == [f"q{i}" for i in range(8)]
    assert "bad one" in outcomes[2].error and "after 2 tries" in outcomes[5].error
    assert outcomes[2].text is None and outcomes[5].text is None
    for i in (0, 1, 3, 4, 6, 7):
        assert outcomes[i].error is None and outcomes[i].text.endswith(f"you asked: q{i}?")
        assert outcomes[i].usage["total_tokens"] > 0 and outcomes[i].finish_reason == "stop" and outcomes[i].seconds >= 0.05
    assert server.max_in_flight == 4
    assert sorted(r.body["seed"] for r in server.answered()) == [0, 1, 3, 4, 6, 7]


def test_json_mode_is_asked_for_and_dropped_when_the_server_refuses_it() -> None:
    with ChatServer() as server:
        adapter = load(server, response_format="json_object")
        adapter.generate([ask("json?")], GREEDY)
        assert server.chat_requests[-1].body["response_format"] == {"type": "json_object"}
        assert adapter.provenance()["response_format"] == "json_object"
    with ChatServer(json_mode=False) as server:
        adapter = load(server, response_format="json_object", concurrency="1")
        answers = adapter.generate([ask("one?"), ask("two?")], GREEDY)
        assert [a.split("you asked: ")[1] for a in answers] == ["one?", "two?"]
        assert [(r.status, "response_format" in r.body) for r in server.chat_requests] == [(400, True), (200, False), (200, False)]
        assert adapter.provenance()["response_format"] is None
        server.fail(400, message="image too large")  # other refusals are not taken for a missing JSON mode
        with pytest.raises(AdapterError, match="image too large"):
            adapter.generate([ask("three?")], GREEDY)
    with pytest.raises(AdapterError, match="response_format='yaml' must be none or json_object"):
        load(server, response_format="yaml")
