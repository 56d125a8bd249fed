"""A real chat-completions server on a loopback port, for testing the ``openai`` adapter without any network.

Its "model" is deterministic: the answer is a hash of the whole message list (text, roles, image bytes) followed
by the last user text, so a test can tell from an answer which question it answers and whether anything in the
input changed. The server checks requests as strictly as a real one (model name, message shapes, data URLs whose
mime type matches the bytes, API key), logs every request, and can be told to fail requests with 429/500, to
answer slowly, or to crash and come back on the same port. A test may give its own ``reply(body) -> text`` (an
LLM judge that grades from the request's content), and a server without JSON mode (``json_mode=False``) refuses
requests that ask for ``response_format``. Asked for ``logprobs``/``top_logprobs``, it answers them in the OpenAI
format from a test's ``logprobs(body, text) -> content`` (see :func:`logprob_content`), or with ``null`` (a server
that gives none) when the test gave no such function.

    with ChatServer() as server:
        adapter = OpenAICompatAdapter.load(LoadOptions("tiny-vlm", options={"base_url": server.base_url}))
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAGIC = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF8": "image/gif"}


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int = 0
    response: Any = None
    started: float = 0.0
    finished: float = 0.0

    @property
    def last_user_text(self) -> str:
        """The text of the last user message: which question this request asks."""
        return message_text(self.body["messages"][-1])


@dataclass
class Failure:
    """A scripted failure: answer ``status`` to the next ``times`` chat requests that ``when`` accepts."""

    status: int
    times: int = 1
    retry_after: str | None = None
    message: str = "scripted failure"
    when: Callable[[dict], bool] = field(default=lambda body: True)


class ServerError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def message_text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "\n".join(p["text"] for p in content if p.get("type") == "text")


def sniff_mime(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in MAGIC.items() if data.startswith(magic)), None)


def check_messages(messages: Any) -> int:
    """Validate the message list like a strict server; returns the number of images."""
    if not isinstance(messages, list) or not messages:
        raise ServerError(400, "'messages' must be a non-empty list")
    images = 0
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("system", "user", "assistant"):
            raise ServerError(400, f"messages[{i}]: needs a role of system, user or assistant")
        content = msg.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list) or msg["role"] != "user":
            raise ServerError(400, f"messages[{i}].content must be a string (or a list of parts for user messages)")
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                continue
            if kind != "image_url":
                raise ServerError(400, f"messages[{i}].content[{j}]: unknown part {part!r:.80}")
            url = str(part.get("image_url", {}).get("url", ""))
            head, _, data = url.partition(",")
            if not head.startswith("data:") or not head.endswith(";base64"):
                raise ServerError(400, f"messages[{i}].content[{j}]: only base64 data URLs are accepted")
            try:
                raw = base64.b64decode(data, validate=True)
            except binascii.Error:
                raise ServerError(400, f"messages[{i}].content[{j}]: invalid base64") from None
            declared, actual = head[5:-7], sniff_mime(raw)
            if declared != actual:
                raise ServerError(400, f"messages[{i}].content[{j}]: declared {declared} but the bytes are {actual}")
            images += 1
    if messages[-1]["role"] != "user":
        raise ServerError(400, "the last message must come from the user")
    return images


def reply_for(messages: list[dict]) -> str:
    """The deterministic model: a digest of everything it was shown, then the question it answers."""
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:12]
    return f"[{digest}] you asked: {message_text(messages[-1])}"


_TOKENS = re.compile(r"\w+|\s+|[^\w\s]")
_GRADE_LETTER = re.compile(r'"grade"\s*:\s*"([A-D])')


def logprob_content(text: str, grade_probs: dict[str, float], merge_quote: bool = False, other: float = 0.2) -> list[dict]:
    """``logprobs.content`` for ``text`` as a tokeniser would give it: words, spaces and punctuation one token each
    (``merge_quote``: the quote before the grade letter merged with it, ``"B``). Every token is certain but the
    grade letter's: its alternatives are each letter of ``grade_probs`` (scaled by 1 - ``other``) and two tokens that
    are no grade (a bare quote; a word starting with D) sharing ``other``, likeliest first."""
    tokens = _TOKENS.findall(text)
    letter_at = _GRADE_LETTER.search(text).start(1)
    content, start = [], 0
    for token in tokens:
        end = start + len(token)
        if merge_quote and end == letter_at and token == '"':
            start = end
            continue  # joined to the letter's token
        if start <= letter_at < end:
            prefix = '"' if merge_quote else ""
            alternatives = [(prefix + g, p * (1 - other)) for g, p in grade_probs.items() if p > 0]
            alternatives += [('"', other / 2), (prefix + "Don", other / 2)]  # no grade: a bare quote, a word
            alternatives.sort(key=lambda a: -a[1])
            chosen = prefix + token
            top = [{"token": t, "logprob": math.log(p), "bytes": list(t.encode())} for t, p in alternatives]
            logprob = next(a["logprob"] for a in top if a["token"] == chosen)
            content.append({"token": chosen, "logprob": logprob, "bytes": list(chosen.encode()), "top_logprobs": top})
        else:
            content.append({"token": token, "logprob": 0.0, "bytes": list(token.encode()),
                            "top_logprobs": [{"token": token, "logprob": 0.0, "bytes": list(token.encode())}]})
        start = end
    return content


class ChatServer:
    """A ThreadingHTTPServer speaking ``POST /v1/chat/completions`` and ``GET /v1/models`` on 127.0.0.1."""

    def __init__(
        self,
        model: str = "tiny-vlm",
        served_name: str = "tiny-vlm-2024-05-01",
        api_key: str | None = None,
        models_route: bool = True,
        delay: float = 0.0,
        reply: Callable[[dict], str] | None = None,
        json_mode: bool = True,
        logprobs: Callable[[dict, str], list[dict]] | None = None,
    ):
        self.model, self.served_name, self.api_key = model, served_name, api_key
        self.models_route, self.delay = models_route, delay
        self.reply, self.json_mode, self.logprobs = reply, json_mode, logprobs
        self.port = 0
        self.requests: list[RecordedRequest] = []
        self.failures: list[Failure] = []
        self.max_in_flight = 0
        self.stalls: list[float] = []  # seconds the next chat requests wait before answering, one each
        self._in_flight = 0
        self._crash_at: tuple[int, float] | None = None
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._conns: set[socket.socket] = set()
        self.restarts = 0
        self._closed = False

    # -- life cycle -------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def start(self) -> ChatServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_for(self))
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection, as a crashing server would."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def come_back(self, downtime: float) -> None:
        """The second half of a crash (see :meth:`crash_at`): listen again on the same port after ``downtime``."""
        time.sleep(downtime)
        if self._closed:
            return
        self.start()
        self.restarts += 1

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop for good: a pending come-back does not start it again."""
        self._closed = True
        self.stop()

    # -- scripting --------------------------------------------------------------------------------------------
    def fail(self, status: int, times: int = 1, retry_after: str | None = None, when=None, message=None) -> None:
        """Answer ``status`` to the next ``times`` chat requests (those ``when(body)`` accepts)."""
        failure = Failure(status, times, retry_after, message or f"scripted {status}", when or (lambda body: True))
        with self._lock:
            self.failures.append(failure)

    def stall(self, seconds: float, times: int = 1) -> None:
        """Let the next ``times`` chat requests wait ``seconds`` before answering (a client timeout test)."""
        with self._lock:
            self.stalls += [seconds] * times

    def crash_at(self, n: int, downtime: float = 0.3) -> None:
        """Drop the ``n``-th chat request (1-based) unanswered, go down, and come back after ``downtime``."""
        self._crash_at = (n, downtime)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def answered(self) -> list[RecordedRequest]:
        return [r for r in self.chat_requests if r.status == 200]

    # -- protocol ---------------------------------------------------------------------------------------------
    def _scripted(self, body: dict) -> Failure | None:
        with self._lock:
            for failure in self.failures:
                if failure.times > 0 and failure.when(body):
                    failure.times -= 1
                    return failure
        return None

    def _check_key(self, headers: dict[str, str]) -> None:
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            raise ServerError(401, "Incorrect API key provided.")

    def models(self, headers: dict[str, str]) -> dict:
        self._check_key(headers)
        if not self.models_route:
            raise ServerError(404, "Not Found")
        return {"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "owleval-tests"}]}

    def complete(self, body: Any, headers: dict[str, str]) -> dict:
        self._check_key(headers)
        if not isinstance(body, dict):
            raise ServerError(400, "the request body must be a JSON object")
        if body.get("model") not in (self.model, self.served_name):
            raise ServerError(404, f"The model `{body.get('model')}` does not exist.")
        images = check_messages(body.get("messages"))
        max_tokens = body.get("max_tokens", 16)
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ServerError(400, "max_tokens must be a positive integer")
        if "response_format" in body:
            if not self.json_mode:
                raise ServerError(400, "response_format is not supported by this server")
            if body["response_format"] != {"type": "json_object"}:
                raise ServerError(400, f"unsupported response_format {body['response_format']!r}")
        top = body.get("top_logprobs")
        if top is not None and (not body.get("logprobs") or not isinstance(top, int) or not 0 <= top <= 20):
            raise ServerError(400, "top_logprobs must be an integer from 0 to 20, with logprobs true")
        failure = self._scripted(body)
        if failure is not None:
            extra = {"Retry-After": failure.retry_after} if failure.retry_after else {}
            raise ServerError(failure.status, failure.message, extra)
        # a test's own reply keeps its line breaks (a fenced JSON reply); the default one is a single line
        words = self.reply(body).split(" ") if self.reply else reply_for(body["messages"]).split()
        text = " ".join(words[:max_tokens])
        prompt_tokens = sum(len(message_text(m).split()) for m in body["messages"]) + 64 * images
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": min(len(words), max_tokens)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        logprobs = None
        if body.get("logprobs") and self.logprobs is not None:
            logprobs = {"content": [{**entry, "top_logprobs": entry["top_logprobs"][: top or 0]} for entry in self.logprobs(body, text)]}
        return {
            "id": "chatcmpl-" + hashlib.sha256(text.encode()).hexdigest()[:16],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.served_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": logprobs,
                    "finish_reason": "length" if len(words) > max_tokens else "stop",
                }
            ],
            "usage": usage,
        }


def _handler_for(owner: ChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so a restart really breaks pooled connections

        def setup(self) -> None:
            super().setup()
            # as real servers do: without it, the headers and body go out as two small writes and Nagle's
            # algorithm meets the client's delayed ACK, adding ~40 ms to every answer
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with owner._lock:
                owner._conns.add(self.connection)

        def finish(self) -> None:
            with owner._lock:
                owner._conns.discard(self.connection)
            try:
                super().finish()
            except OSError:
                pass

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the request log is the record
            pass

        def do_GET(self) -> None:
            self._serve(lambda body, headers: owner.models(headers) if self.path == "/v1/models" else None)

        def do_POST(self) -> None:
            self._serve(lambda body, headers: owner.complete(body, headers) if self.path == "/v1/chat/completions" else None)

        def _serve(self, route: Callable[[Any, dict[str, str]], dict | None]) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            record = RecordedRequest(self.command, self.path, headers, body, started=time.monotonic())
            with owner._lock:
                owner.requests.append(record)
                n_chat = sum(r.path.endswith("/chat/completions") for r in owner.requests)
                owner._in_flight += 1
                owner.max_in_flight = max(owner.max_in_flight, owner._in_flight)
            try:
                if self.command == "POST" and owner._crash_at and n_chat == owner._crash_at[0]:
                    downtime = owner._crash_at[1]
                    owner._crash_at = None
                    self.close_connection = True
                    owner.stop()  # down before this request's client can retry
                    threading.Thread(target=owner.come_back, args=(downtime,), daemon=True).start()
                    return  # no answer at all: the client sees the connection drop
                if self.command == "POST":
                    with owner._lock:
                        pause = owner.stalls.pop(0) if owner.stalls else owner.delay
                    time.sleep(pause)
                try:
                    payload = route(body, headers)
                    if payload is None:
                        raise ServerError(404, f"no route {self.command} {self.path}")
                    status, extra = 200, {}
                except ServerError as err:
                    payload = {"error": {"message": err.message, "type": "invalid_request_error", "code": err.status}}
                    status, extra = err.status, err.headers
                record.status, record.response = status, payload
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout) or the server was stopped meanwhile
                    record.status = -1
                    self.close_connection = True
            finally:
                record.finished = time.monotonic()
                with owner._lock:
                    owner._in_flight -= 1

    return Handler
