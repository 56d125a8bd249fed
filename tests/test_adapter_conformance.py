"""Every built-in adapter through the one conformance suite (owleval.testing.conformance).

Tiny random checkpoints come from each adapter's helper module; ``openai`` runs against the loopback server.
A target whose helper module or adapter module is not there yet is reported as skipped, naming what is missing.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from owleval.adapters.base import Conversation, GenerationConfig, LoadOptions, ModelAdapter
from owleval.adapters.registry import BUILTIN_ADAPTERS, get_adapter_class
from owleval.testing.conformance import AdapterConformance, ConformanceTarget
from tests.chat_server import ChatServer

Factory = Callable[[pytest.TempPathFactory, pytest.FixtureRequest], ConformanceTarget]


def _answers_file(tmp: pytest.TempPathFactory, request: pytest.FixtureRequest) -> ConformanceTarget:
    published: Path = request.getfixturevalue("published_answers_dir")
    return ConformanceTarget(get_adapter_class("answers-file"), str(published / "llava-13b.jsonl"), local=False, replays=True)


def _openai(tmp: pytest.TempPathFactory, request: pytest.FixtureRequest) -> ConformanceTarget:
    server = ChatServer().start()
    request.addfinalizer(server.close)

    def observe(adapter: ModelAdapter, conversation: Conversation, config: GenerationConfig) -> dict[str, str]:
        before = len(server.chat_requests)
        adapter.generate([conversation], config)
        sent = [r.body for r in server.chat_requests[before:] if r.status == 200]
        assert len(sent) == 1, f"expected one answered request, the server saw {len(sent)}"
        return {"request": hashlib.sha256(json.dumps(sent[0], sort_keys=True).encode()).hexdigest()}

    def missing(where: Path) -> list[tuple[LoadOptions, str]]:
        return [(LoadOptions("no-such-model", options={"base_url": server.base_url}), "no-such-model")]

    return ConformanceTarget(
        get_adapter_class("openai"), "tiny-vlm", {"base_url": server.base_url, "backoff": "0.01"},
        local=False, observe=observe, missing=missing, max_new_tokens=64,
    )


def _helper(module: str, function: str) -> Callable:
    return getattr(importlib.import_module(module), function)


def _mplug_owl(tmp: pytest.TempPathFactory, request: pytest.FixtureRequest) -> ConformanceTarget:
    ckpt = _helper("tests.mplug_owl_helpers", "make_tiny_mplug_owl_checkpoint")(tmp.mktemp("mplug_owl"))
    return ConformanceTarget(get_adapter_class("mplug-owl"), str(ckpt))


def _llava(tmp: pytest.TempPathFactory, request: pytest.FixtureRequest) -> ConformanceTarget:
    ckpt = _helper("tests.llava_minigpt4_helpers", "make_tiny_llava_checkpoint")(tmp.mktemp("llava"))
    return ConformanceTarget(get_adapter_class("llava"), str(ckpt))


def _minigpt4(tmp: pytest.TempPathFactory, request: pytest.FixtureRequest) -> ConformanceTarget:
    parts = dict(_helper("tests.llava_minigpt4_helpers", "make_tiny_minigpt4_checkpoint")(tmp.mktemp("minigpt4")))
    checkpoint = parts.pop("checkpoint", None)
    # the Q-Former and its query tokens stay float32 at any dtype, as transformers keeps them in BLIP-2
    in_fp32 = lambda name: "qformer" in name or "query_tokens" in name  # noqa: E731
    return ConformanceTarget(get_adapter_class("minigpt4"), checkpoint, parts, keeps_float32=in_fp32)


def _hf(tmp: pytest.TempPathFactory, request: pytest.FixtureRequest) -> ConformanceTarget:
    # one family here; tests/test_hf_adapter.py runs the suite on the other tested families
    ckpt = _helper("tests.hf_family_helpers", "make_tiny_checkpoint")("idefics3", tmp.mktemp("hf_idefics3"))
    return ConformanceTarget(get_adapter_class("hf"), str(ckpt))


#: adapter name -> (helper module that builds its tiny checkpoint, or None, and the target factory)
TARGETS: dict[str, tuple[str | None, Factory]] = {
    "answers-file": (None, _answers_file),
    "openai": (None, _openai),
    "mplug-owl": ("tests.mplug_owl_helpers", _mplug_owl),
    "llava": ("tests.llava_minigpt4_helpers", _llava),
    "minigpt4": ("tests.llava_minigpt4_helpers", _minigpt4),
    "hf": ("tests.hf_family_helpers", _hf),
}


def _missing_piece(name: str) -> str | None:
    helper = TARGETS[name][0]
    adapter_module = BUILTIN_ADAPTERS[name].split(":")[0]
    for module in (helper, adapter_module):
        if module and importlib.util.find_spec(module) is None:
            return module
    return None


def _params() -> list:
    params = []
    for name in TARGETS:
        missing = _missing_piece(name)
        marks = [pytest.mark.skip(reason=f"{missing} is not there yet")] if missing else []
        params.append(pytest.param(name, id=name, marks=marks))
    return params


def test_every_builtin_adapter_has_a_conformance_target() -> None:
    assert set(TARGETS) == set(BUILTIN_ADAPTERS)


class TestBuiltinAdapters(AdapterConformance):
    @pytest.fixture(scope="class", params=_params())
    @classmethod
    def target(cls, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConformanceTarget]:
        yield TARGETS[request.param][1](tmp_path_factory, request)
