"""The API key never reaches disk or a terminal, even from a server (or proxy) that echoes the request back.

An echoing loopback HTTP server answers with 400, 401, 429, 500, or a 200 whose reply content is the request's
headers; ``owleval judge`` and ``owleval generate`` run against it, and the key must be in none of raw.jsonl,
the answers file, the command's output or its log lines.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from owleval.cli import app
from owleval.questions import load_questions
from owleval.redact import MARK, redact, register_secret
from tests.judge_helpers import write_answer_sets

KEY = "sk-echo-3f9a1c7e5b2d4a68"


def encodings(auth: str) -> list[str]:
    """``Authorization: Bearer KEY`` as an echo may carry it: base64 (standard, URL-safe, unpadded) of the key and of
    ``Bearer KEY``, percent-encoded, split by spaces and zero-width spaces, and a 16-character run of the key."""
    key = auth.removeprefix("Bearer ")
    forms = [base64.b64encode(auth.encode()).decode(), base64.urlsafe_b64encode(auth.encode()).decode().rstrip("="),
             base64.b64encode(key.encode()).decode(), base64.urlsafe_b64encode(key.encode()).decode().rstrip("="),
             urllib.parse.quote(key, safe=""), "".join(f"%{b:02X}" for b in key.encode()), " ".join(key), "\u200b".join(key),
             key[2:18], f"{key[:9]}\n{key[9:]}"]
    return forms


def leaked(text: str) -> list[str]:
    """The forms of KEY (see :func:`encodings`) found in ``text``, after taking out spaces and zero-width spaces."""
    flat = re.sub(r"[\s\u200b]", "", text)
    found = [f for f in encodings(f"Bearer {KEY}") if re.sub(r"[\s\u200b]", "", f)[:16] in flat]
    return found + [KEY[i:i + 16] for i in range(len(KEY) - 15) if KEY[i:i + 16] in flat]


class EchoServer:
    """Answers every chat request with ``status``; the body (error or reply) repeats the request's headers."""

    def __init__(self, status: int, models_status: int = 200):
        self.status, self.models_status = status, models_status
        self.seen_authorization: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: str, kind: str = "application/json") -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

            def _echo(self) -> str:
                return "\n".join(f"{k}: {v}" for k, v in self.headers.items())

            def do_GET(self) -> None:  # noqa: N802
                if server.models_status != 200:
                    self._send(server.models_status, json.dumps({"error": {"message": f"invalid key; you sent\n{self._echo()}"}}))
                else:
                    self._send(200, json.dumps({"data": [{"id": "echo-judge"}]}))

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                self.rfile.read(length)
                server.seen_authorization.append(self.headers.get("Authorization", ""))
                if server.status == 200:  # the key echoed in the reply, its model and finish_reason, encoded and split too
                    auth = self.headers.get("Authorization", "")
                    reply = {"choices": [{"message": {"role": "assistant", "content": f"I was sent:\n{self._echo()}\n{chr(10).join(encodings(auth))}"},
                                          "finish_reason": auth}], "model": f"echo-judge {auth}"}
                    self._send(200, json.dumps(reply))
                elif server.status == 500:  # a proxy's plain-text page
                    self._send(500, f"Internal error while forwarding request with headers\n{self._echo()}", "text/plain")
                else:
                    self._send(server.status, json.dumps({"error": {"message": f"request refused: {dict(self.headers)}"}}))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> EchoServer:
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def answers(tmp_path: Path, owl_data: Path) -> Path:
    questions = list(load_questions(owl_data))
    write_answer_sets(tmp_path / "answers", questions[:1], {"alpha-7b": lambda qid: "grade=A"})
    return tmp_path / "answers"


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    yield KEY


def _everything_written(out: Path, result, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture) -> str:
    files = "".join(p.read_text(encoding="utf-8") for p in sorted(out.rglob("*")) if p.is_file()) if out.exists() else ""
    captured = capfd.readouterr()
    return "\n".join([files, result.output, repr(result.exception), caplog.text, captured.out, captured.err])


@pytest.mark.parametrize("status", [400, 429, 500, 200])
def test_judge_keeps_no_key_from_an_echoing_server(status: int, tmp_path: Path, answers: Path, api_key: str,
                                                    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture) -> None:
    out = tmp_path / "judged"
    caplog.set_level(logging.INFO)
    with EchoServer(status) as server:
        result = CliRunner().invoke(app, ["judge", "--answers", str(answers), "--judge", "openai", "--checkpoint", "echo-judge",
                                          "--base-url", server.base_url, "--out", str(out), "-o", "backoff=0.01",
                                          "-o", "max_retries=1", "-o", "response_format=none"])
    assert server.seen_authorization and all(a == f"Bearer {KEY}" for a in server.seen_authorization), "the key was sent"
    raw = (out / "raw.jsonl").read_text(encoding="utf-8")
    assert "Bearer" not in raw.replace(f"Bearer {MARK}", "") and KEY not in raw
    record = json.loads(raw.splitlines()[0])
    assert MARK in (record["reply"] if status == 200 else record["error"]), "the echoed header is in the record, redacted"
    written = _everything_written(out, result, caplog, capfd)
    assert leaked(written) == []
    if status == 200:
        meta = json.loads((out / "meta.json").read_text())
        assert record["finish_reason"] == "other" and set(meta["provenance"]["finish_reasons"]) == {"other"}
        assert meta["provenance"]["served_model"] == f"echo-judge Bearer {MARK}"


def test_refused_key_is_not_printed(tmp_path: Path, answers: Path, api_key: str,
                                    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture) -> None:
    out = tmp_path / "judged"
    with EchoServer(200, models_status=401) as server:
        result = CliRunner().invoke(app, ["judge", "--answers", str(answers), "--judge", "openai", "--checkpoint", "echo-judge",
                                          "--base-url", server.base_url, "--out", str(out)])
    assert result.exit_code != 0 and "refused the API key" in result.output
    assert MARK in result.output
    assert KEY not in _everything_written(out, result, caplog, capfd)


@pytest.mark.parametrize("status", [200, 400])
def test_generate_keeps_no_key_from_an_echoing_server(status: int, tmp_path: Path, api_key: str,
                                                       caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture) -> None:
    out = tmp_path / "gen" / "echo.jsonl"
    with EchoServer(status) as server:
        result = CliRunner().invoke(app, ["generate", "--model", "openai", "--checkpoint", "echo-judge", "--base-url", server.base_url,
                                          "--questions", "1", "--out", str(out), "-o", "backoff=0.01", "-o", "max_retries=0"])
    if status == 200:
        assert result.exit_code == 0, result.output
        assert MARK in json.loads(out.read_text(encoding="utf-8"))["answer"]
    else:
        assert result.exit_code != 0 and MARK in result.output
    assert leaked(_everything_written(out.parent, result, caplog, capfd)) == []


def test_redact_removes_registered_secrets_and_credential_shapes() -> None:
    register_secret("sk-registered-0a1b2c3d")
    assert redact("the key sk-registered-0a1b2c3d was echoed") == f"the key {MARK} was echoed"
    assert redact('{"authorization": "Bearer abc.def-ghi", "x": 1}') == f'{{"authorization": "{MARK}", "x": 1}}'
    assert redact("Authorization: Basic dXNlcjpwYXNzd29yZA==\r\nHost: h") == f"Authorization: {MARK}\r\nHost: h"
    assert redact("proxy said: bearer tok_123") == f"proxy said: bearer {MARK}"
    assert redact("x-api-key: abc123") == f"x-api-key: {MARK}"
    # ordinary text stays as it is
    for text in ("max tokens 4096 exceeded", "a basic understanding", "the image is too large", ""):
        assert redact(text) == text


def test_every_encoded_or_split_form_of_a_key_is_redacted() -> None:
    assert len(leaked("\n".join(encodings(f"Bearer {KEY}")))) >= 10, "the check below can fail"
    key = "sk-forms-9c8b7a6f5e4d3c2b1a0+/"
    register_secret(key)
    for form in encodings(f"Bearer {key}"):
        assert key[5:21] not in re.sub(r"[\s\u200b]", "", redact(form)) and MARK in redact(form), form
    for text in ("sk-forms- is how keys start", "9c8b7a6f", "Zm9ybXM= is base64 of forms"):  # short runs stay
        assert redact(text) == text


def test_a_key_in_the_checkpoint_or_a_query_in_the_base_url_is_refused(tmp_path: Path, answers: Path, api_key: str) -> None:
    with EchoServer(200) as server:
        base = ["judge", "--answers", str(answers), "--judge", "openai", "--out", str(tmp_path / "judged")]
        in_checkpoint = CliRunner().invoke(app, [*base, "--checkpoint", f"model-{KEY}", "--base-url", server.base_url])
        in_query = CliRunner().invoke(app, [*base, "--checkpoint", "echo-judge", "--base-url", f"{server.base_url}?api-key={KEY[::-1]}"])
        assert not server.seen_authorization, "nothing was asked"
    assert in_checkpoint.exit_code != 0 and "--checkpoint" in in_checkpoint.output and "holds the API key" in in_checkpoint.output
    assert in_query.exit_code != 0 and "query string" in in_query.output and KEY[::-1] not in in_query.output
    assert leaked(in_checkpoint.output + in_query.output) == [] and not (tmp_path / "judged").exists()
