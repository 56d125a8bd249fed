"""Any OpenAI-compatible chat-completions server (vLLM, SGLang, TGI, a hosted API) as an OwlEval model.

The model runs on the server; this adapter turns each conversation into a chat-completions request (images as
base64 data URLs, earlier turns as user/assistant messages), keeps several requests in flight, and retries
what a busy or restarting server answers with (429, 5xx, timeouts, dropped connections). The API key is read
from an environment variable only, and goes nowhere but the ``Authorization`` header.
"""

from __future__ import annotations

import base64
import email.utils
import io
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from owleval.adapters.base import AdapterError, Completion, Conversation, GenerationConfig, LoadOptions, ModelAdapter, TokenLogprob
from owleval.adapters.options import number_option
from owleval.imagefiles import ImageRefused, open_image
from owleval.redact import holds_secret, redact, register_secret

log = logging.getLogger(__name__)

#: image formats every OpenAI-compatible server accepts as data URLs; anything else is re-encoded as PNG
_SENT_AS_IS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
_RETRY_STATUS = {408, 409, 425, 429}  # plus every 5xx
_MAX_RETRY_AFTER_S = 300.0
_MAX_BACKOFF_S = 60.0
_DEFAULT_KEY_ENV = "OPENAI_API_KEY"
_RESPONSE_FORMATS = ("json_object",)
_R = TypeVar("_R")


def image_data_url(path: Path) -> str:
    """A ``data:`` URL whose mime type comes from the file's content (``cases/49.jpg`` is a PNG)."""
    try:
        with open_image(path, formats=None) as img:  # any format (re-encoded below); over the pixel budget: refused
            fmt = img.format or ""
            if fmt in _SENT_AS_IS:
                return f"data:{_SENT_AS_IS[fmt]};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"
            buf = io.BytesIO()
            img.convert("RGB").save(buf, format="PNG")
    except ImageRefused as exc:
        raise AdapterError(str(exc)) from None
    except OSError as exc:
        raise AdapterError(f"cannot read image {path}: {exc}") from exc
    return f"data:image/png;base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def build_messages(
    conversation: Conversation, image_url: Callable[[Path], str] = image_data_url
) -> list[dict[str, Any]]:
    """The chat-completions message list: each turn a user message (images, then text), each answer an assistant one."""
    messages: list[dict[str, Any]] = []
    for turn in conversation.turns:
        if turn.images:
            parts: list[dict[str, Any]] = [
                {"type": "image_url", "image_url": {"url": image_url(ref.path)}} for ref in turn.images
            ]
            parts.append({"type": "text", "text": turn.text})
            messages.append({"role": "user", "content": parts})
        else:
            messages.append({"role": "user", "content": turn.text})
        if turn.answer is not None:
            messages.append({"role": "assistant", "content": turn.answer})
    return messages


def sampling_params(config: GenerationConfig) -> dict[str, Any]:
    """Decoding settings in the protocol's terms; greedy decoding is temperature 0."""
    if config.num_beams != 1:
        raise AdapterError("the openai adapter cannot do beam search (num_beams must be 1): the protocol has no beams")
    params: dict[str, Any] = {"max_tokens": config.max_new_tokens, "seed": config.seed}
    if config.do_sample:
        params.update(temperature=config.temperature, top_p=config.top_p)
    else:
        params.update(temperature=0.0, top_p=1.0)
    # Not in the OpenAI protocol, but vLLM and SGLang take them: send only when asked for, so hosted APIs still work.
    if config.do_sample and config.top_k is not None:
        params["top_k"] = config.top_k
    if config.repetition_penalty != 1.0:
        params["repetition_penalty"] = config.repetition_penalty
    if config.top_logprobs > 0:
        params.update(logprobs=True, top_logprobs=config.top_logprobs)
    return params


def token_logprobs(choice: Mapping[str, Any]) -> tuple[TokenLogprob, ...] | None:
    """A choice's ``logprobs.content`` (the chat-completions format: per token its text, logprob and
    ``top_logprobs``) as :class:`TokenLogprob`s; None when the server gave none or gave something else."""
    content = (choice.get("logprobs") or {}).get("content") if isinstance(choice.get("logprobs"), dict) else None
    if not isinstance(content, list) or not content:
        return None
    tokens = []
    try:
        for entry in content:
            top = tuple((str(alt["token"]), float(alt["logprob"])) for alt in entry.get("top_logprobs") or ())
            tokens.append(TokenLogprob(str(entry["token"]), float(entry["logprob"]), top))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return tuple(tokens)


#: the finish reasons servers give (OpenAI, vLLM, SGLang, TGI); any other value is kept as "other", so a server
#: cannot put arbitrary text (an echoed key) into the stored record through this field
FINISH_REASONS = frozenset({"stop", "length", "content_filter", "tool_calls", "function_call", "abort", "eos_token",
                            "stop_sequence", "error", "cancelled"})


def known_finish_reason(value: object) -> str:
    """``value`` when it is one of :data:`FINISH_REASONS`, ``unknown`` when absent, else ``other``."""
    if value is None or value == "":
        return "unknown"
    return value if isinstance(value, str) and value in FINISH_REASONS else "other"


def normalize_base_url(url: str) -> str:
    """``http://host:8000`` and ``http://host:8000/v1/`` both mean the API root ``http://host:8000/v1``."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AdapterError(f"--base-url {url!r} is not an http(s) URL, e.g. http://localhost:8000/v1")
    if parts.username or parts.password:  # it would end up in logs and provenance
        raise AdapterError(
            f"--base-url {public_url(url)}: leave credentials out of the URL; the API key is read from an "
            "environment variable (option api_key_env, default OPENAI_API_KEY)"
        )
    if parts.query or parts.fragment:  # a key in the query would be stored in provenance and sent with every path
        raise AdapterError(
            f"--base-url {public_url(url)}?...: leave the query string out of the URL (it may hold a key, and it would "
            "be stored with the results); the API key is read from an environment variable (option api_key_env, "
            "default OPENAI_API_KEY)"
        )
    path = parts.path.rstrip("/") or "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def public_url(url: str) -> str:
    """The URL without user:password or query string, safe for logs and provenance."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def server_message(response: httpx.Response) -> str:
    """The server's own error message (OpenAI, vLLM and TGI each nest it differently), else the body's start;
    redacted, since a server or proxy may echo the request's headers."""
    return redact(_server_text(response))


def _server_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500].strip() or response.reason_phrase
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        for key in ("message", "detail", "error"):
            if body.get(key):
                return str(body[key])
    return str(body)[:500]


def retry_after_seconds(response: httpx.Response) -> float | None:
    """``Retry-After`` as seconds (it may be a number or an HTTP date)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # neither seconds nor a date: fall back to our own backoff
    return max(0.0, when.timestamp() - time.time())


class _Cancelled(Exception):
    """A request not sent because another one of its batch failed."""


def _concurrency(options: Mapping[str, str]) -> int:
    return number_option(options, "concurrency", 8, minimum=1)


def _key_env(options: Mapping[str, str]) -> str:
    return options.get("api_key_env") or _DEFAULT_KEY_ENV


def _about_json_mode(problem: str) -> bool:
    """Whether a refusal names the JSON-mode setting (rather than, say, an image that is too large)."""
    text = problem.lower()
    return "response_format" in text or "json" in text


def _response_format(options: Mapping[str, str]) -> str | None:
    value = (options.get("response_format") or "none").strip()
    if value == "none":
        return None
    if value not in _RESPONSE_FORMATS:
        raise AdapterError(f"option response_format={value!r} must be none or {' or '.join(_RESPONSE_FORMATS)}")
    return value


class OpenAICompatAdapter(ModelAdapter):
    """A served model reached through ``POST {base_url}/chat/completions``."""

    name = "openai"
    description = "any OpenAI-compatible chat-completions server (vLLM, SGLang, TGI, hosted APIs)"
    default_checkpoint = None
    checkpoint_is_local = False  # --checkpoint is the served model's name, even if a folder of that name is here
    option_help = {
        "base_url": "API root, e.g. http://localhost:8000/v1 (required; --base-url)",
        "concurrency": "requests in flight at once (default 8; --concurrency)",
        "api_key_env": "name of the environment variable holding the API key (default OPENAI_API_KEY)",
        "timeout": "seconds to wait for one answer (default 120)",
        "max_retries": "retries of a request after 429/5xx/timeouts/lost connections (default 8)",
        "backoff": "first retry delay in seconds, doubled each retry, with jitter (default 1)",
        "response_format": "json_object asks for JSON mode; dropped with a warning if the server refuses it "
        "(default none; owleval judge sets json_object)",
    }
    option_defaults = {
        "base_url": "required",
        "concurrency": "8",
        "api_key_env": "OPENAI_API_KEY",
        "timeout": "120",
        "max_retries": "8",
        "backoff": "1",
        "response_format": "none",
    }

    def __init__(self, options: LoadOptions, base_url: str, client: httpx.Client, served: list[str]):
        super().__init__(options)
        opts = options.options
        self.base_url = base_url
        self.client = client
        self.served_models = served  # what GET /models listed, if the server has it
        self.concurrency = _concurrency(opts)
        self.max_retries = number_option(opts, "max_retries", 8, minimum=0)
        self.backoff = number_option(opts, "backoff", 1.0, minimum=0.0)
        self.api_key_env = _key_env(opts)
        self.response_format = _response_format(opts)
        self._format_refused = False  # the server said no to response_format once: stop sending it
        self._lock = threading.Lock()
        self._models: Counter[str] = Counter()  # ``model`` field of the responses
        self._usage: Counter[str] = Counter()
        self._counts: Counter[str] = Counter()
        self._finish: Counter[str] = Counter()
        self._images: dict[Path, str] = {}
        self._jitter = random.Random()  # its own generator: retries must not shift the run's seeded randomness

    @classmethod
    def load(cls, options: LoadOptions) -> OpenAICompatAdapter:
        opts = options.options
        if options.device not in ("auto", "cpu"):
            raise AdapterError(
                f"--device {options.device}: the openai adapter runs no model locally (the server chooses its "
                "devices); leave --device at auto"
            )
        if options.dtype != "auto":
            raise AdapterError(
                f"--dtype {options.dtype}: the openai adapter cannot choose the served model's dtype; set it on "
                "the server and leave --dtype at auto"
            )
        if not opts.get("base_url"):
            raise AdapterError("the openai adapter needs the server's address: --base-url http://HOST:PORT/v1")
        base_url = normalize_base_url(opts["base_url"])
        key_env = _key_env(opts)
        key = os.environ.get(key_env, "")
        register_secret(key)  # whatever comes back from the server is redacted before it is stored or printed
        if options.checkpoint and holds_secret(options.checkpoint):  # it would name model ids, folders and provenance
            raise AdapterError(f"--checkpoint {redact(options.checkpoint)!r} holds the API key (or a credential): "
                               "give the served model's name; the key is read from the environment only")
        timeout = number_option(opts, "timeout", 120.0, minimum=0.001)
        concurrency = _concurrency(opts)
        _response_format(opts)  # a bad value is refused before connecting
        client = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {key}"} if key else {},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            follow_redirects=True,
        )
        try:
            served = cls._probe(client, public_url(base_url), key_env, bool(key))
            checkpoint = cls._served_model(options.checkpoint, served, public_url(base_url))
            return cls(replace(options, checkpoint=checkpoint), base_url, client, served)
        except BaseException:
            client.close()
            raise

    @staticmethod
    def _served_model(asked: str | None, served: list[str], where: str) -> str:
        """The model to ask for: the one named, checked against what the server lists; else its only model."""
        if not asked:
            if len(served) != 1:
                listed = f"it serves {', '.join(served)}" if served else "it does not list its models"
                raise AdapterError(f"name the served model with --checkpoint MODEL_NAME ({listed})")
            return served[0]
        if served and asked not in served:
            raise AdapterError(f"the server at {where} does not serve {asked!r}; it serves: {', '.join(served)}")
        return asked

    @staticmethod
    def _probe(client: httpx.Client, where: str, key_env: str, has_key: bool) -> list[str]:
        """GET /models: fails clearly when nothing answers; servers without the route are tolerated."""
        try:
            response = client.get("/models")
        except httpx.HTTPError as exc:
            raise AdapterError(redact(f"cannot reach the server at {where}: {exc.__class__.__name__}: {exc}")) from None
        if response.status_code in (401, 403):
            hint = "" if has_key else f" (the environment variable {key_env} is not set)"
            raise AdapterError(f"{where} refused the API key{hint}: {server_message(response)}")
        if response.status_code != 200:
            return []
        try:
            data = response.json().get("data", [])
            return [redact(str(m["id"])) for m in data if isinstance(m, dict) and "id" in m]
        except (ValueError, AttributeError, TypeError):
            return []

    @property
    def preferred_batch_size(self) -> int:
        """Conversations per ``generate`` call that keep every connection busy (a hint for the runner)."""
        return self.concurrency

    def generate(self, conversations: Sequence[Conversation], config: GenerationConfig) -> list[str]:
        bodies = [self._body(c, config) for c in conversations]
        return self._in_pool(lambda b, c: self._complete(b, c.key), list(zip(bodies, conversations, strict=True)), stop_on_error=True)

    def complete_each(self, requests: Sequence[tuple[Conversation, GenerationConfig]]) -> list[Completion]:
        """Ask every (conversation, settings) pair, up to ``concurrency`` at once, and return each outcome in
        order. Unlike :meth:`generate`, one request that fails (after its retries) does not stop the others:
        it comes back as a :class:`Completion` with ``error`` set."""
        bodies = [self._body(c, config) for c, config in requests]

        def one(body: dict[str, Any], conversation: Conversation) -> Completion:
            started = time.perf_counter()
            try:
                text, details = self._send(body, conversation.key)
            except AdapterError as exc:
                return Completion(conversation.key, error=str(exc), seconds=time.perf_counter() - started)
            return Completion(conversation.key, text=text, seconds=time.perf_counter() - started, **details)

        return self._in_pool(one, list(zip(bodies, (c for c, _ in requests), strict=True)), stop_on_error=False)

    def _body(self, conversation: Conversation, config: GenerationConfig) -> dict[str, Any]:
        body = {"model": self.options.checkpoint, "messages": build_messages(conversation, self._image_url), **sampling_params(config)}
        if self.response_format:
            body["response_format"] = {"type": self.response_format}
        return body

    def _in_pool(self, fn: Callable[[dict[str, Any], Conversation], _R], items: list[tuple[dict[str, Any], Conversation]], stop_on_error: bool) -> list[_R]:
        """``fn`` over ``items`` with up to ``concurrency`` in flight, results in order. With ``stop_on_error``
        the first failure stops sending and is raised; Ctrl-C always stops sending."""
        if len(items) <= 1 or self.concurrency == 1:
            return [fn(*item) for item in items]
        stop = threading.Event()

        def one(item: tuple[dict[str, Any], Conversation]) -> _R:
            if stop.is_set():
                raise _Cancelled()
            try:
                return fn(*item)
            except BaseException:
                if stop_on_error:
                    stop.set()  # one request gave up: start no more, the batch fails anyway
                raise

        pool = ThreadPoolExecutor(min(self.concurrency, len(items)), thread_name_prefix="owleval-openai")
        try:
            futures = [pool.submit(one, item) for item in items]
            wait(futures)
        except BaseException:  # Ctrl-C: send nothing more; requests in flight end on their own
            stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        for future in futures:
            exc = future.exception()
            if exc is not None and not isinstance(exc, _Cancelled):
                raise exc
        return [f.result() for f in futures]

    def _image_url(self, path: Path) -> str:
        url = self._images.get(path)
        if url is None:
            url = self._images[path] = image_data_url(path)
        return url

    def _count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def _complete(self, body: dict[str, Any], key: str) -> str:
        return self._send(body, key)[0]

    def _send(self, body: dict[str, Any], key: str) -> tuple[str, dict[str, Any]]:
        """One request, retried with exponential backoff and jitter on what a busy server answers. Returns the
        answer text and what the server reported about it (usage, finish reason)."""
        what = f"conversation {key}" if key else "a conversation"
        attempt = 0
        while attempt <= self.max_retries:
            if self._format_refused:
                body = {k: v for k, v in body.items() if k != "response_format"}
            self._count("http_requests")
            retry_after: float | None = None
            try:
                response = self.client.post("/chat/completions", json=body)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                problem = redact(f"{exc.__class__.__name__}: {exc}")
            else:
                if response.status_code == 200:
                    return self._answer(response, what)
                problem = f"HTTP {response.status_code}: {server_message(response)}"
                status = response.status_code
                if status in (400, 422) and "response_format" in body and not self._format_refused and _about_json_mode(problem):
                    # JSON mode is optional: a server that does not offer it is asked again without it
                    log.warning("%s refused response_format (%s); asking without it from now on", public_url(self.base_url), problem)
                    self._format_refused = True
                    continue
                if status not in _RETRY_STATUS and status < 500:
                    self._count("failed")
                    raise AdapterError(
                        f"{public_url(self.base_url)}/chat/completions refused {what} with {problem}"
                    )
                retry_after = retry_after_seconds(response)
            if attempt == self.max_retries:
                break
            delay = min(self.backoff * 2**attempt, _MAX_BACKOFF_S) * self._jitter.uniform(0.5, 1.0)
            if retry_after is not None:  # the server knows best when it can take more
                delay = max(delay, min(retry_after, _MAX_RETRY_AFTER_S))
            log.warning("%s: %s; retry %d/%d in %.1fs", what, problem, attempt + 1, self.max_retries, delay)
            self._count("retries")
            time.sleep(delay)
            attempt += 1
        self._count("failed")
        raise AdapterError(
            f"{public_url(self.base_url)} did not answer {what} after {self.max_retries + 1} tries; last: {problem}"
        )

    def _answer(self, response: httpx.Response, what: str) -> tuple[str, dict[str, Any]]:
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise AdapterError(
                f"the server's answer to {what} is not a chat completion: {redact(response.text[:300])}"
            ) from None
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise AdapterError(f"the server's answer to {what} has non-text content: {redact(str(text)[:300])}")
        text = redact(text)  # a reply that echoes the request (a proxy's, a misbehaving server's) keeps no key
        reported = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        usage = {k: v for k, v in reported.items() if k in ("prompt_tokens", "completion_tokens", "total_tokens") and isinstance(v, int)}
        finish = known_finish_reason(choice.get("finish_reason"))
        # the tokens stay in memory (the judge keeps only the grade distribution they give), so they are not redacted
        details: dict[str, Any] = {"usage": usage, "finish_reason": finish, "tokens": token_logprobs(choice)}
        with self._lock:
            self._counts["answered"] += 1
            self._models[redact(str(data.get("model") or ""))] += 1
            self._finish[finish] += 1
            self._usage.update(usage)
        return text, details

    def provenance(self) -> dict[str, Any]:
        with self._lock:
            reported = [m for m, _ in self._models.most_common() if m]
            return {
                "adapter": self.name,
                "checkpoint": self.options.checkpoint,
                "served_model": reported[0] if len(reported) == 1 else (reported or None),
                "base_url": public_url(self.base_url),
                "device": "remote",
                "dtype": "served",
                "usage": {k: self._usage.get(k, 0) for k in ("prompt_tokens", "completion_tokens", "total_tokens")},
                "requests": {
                    "answered": self._counts["answered"],
                    "http_requests": self._counts["http_requests"],
                    "retries": self._counts["retries"],
                    "failed": self._counts["failed"],
                },
                "finish_reasons": dict(self._finish),
                "concurrency": self.concurrency,
                "api_key_env": self.api_key_env,
                "response_format": None if self._format_refused else self.response_format,
            }

    def close(self) -> None:
        self.client.close()
