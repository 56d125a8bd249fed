"""``--batch-size auto``: whole waves of answerable questions per generate call, split by the adapter to fit memory."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from owleval.adapters.auto_batch import MemoryProfile, plan_batches
from owleval.adapters.base import Conversation, GenerationConfig, ImageRef, LoadOptions, Turn
from owleval.cli import app
from owleval.commands.generate import _parse_batch_size
from owleval.errors import OwlEvalError
from owleval.generate import run_generation
from owleval.questions import load_questions

TESTS = Path(__file__).resolve().parent
PROFILE = MemoryProfile(kv_bytes_per_token=1000, activation_bytes_per_token=10, score_bytes_per_token_pair=0,
                        logits_bytes_per_row=0)


def test_plan_sorts_by_length_and_keeps_each_batch_within_budget():
    lengths = [300, 20, 900, 25, 310, 40, 880]
    budget = 8_000_000  # 8 rows (the bucket of 5) fit with 512 cached tokens each, not with 1024
    batches = plan_batches(lengths, 124, PROFILE, budget)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat)
    for batch in batches:
        assert PROFILE.batch_bytes(len(batch), max(lengths[i] for i in batch), 124) <= budget
    assert [[lengths[i] for i in b] for b in batches] == [[20, 25, 40, 300, 310], [880, 900]]


def test_plan_gives_a_prompt_too_large_for_the_budget_a_batch_of_its_own():
    assert plan_batches([10, 5000, 12], 100, PROFILE, budget_bytes=1) == [[0], [2], [1]]
    assert plan_batches([10] * 5, 10, PROFILE, budget_bytes=1 << 40, max_rows=2) == [[0, 1], [2, 3], [4]]


def test_memory_profile_of_the_7b_language_model():
    from transformers import LlamaConfig

    profile = MemoryProfile.from_config(LlamaConfig(), dtype_bytes=2)  # the released LLaMA-7B shape
    assert profile.kv_bytes_per_token == 2 * 32 * 4096 * 2  # 512 KiB a token


def test_runner_asks_for_whole_waves(tmp_path, owl_data):
    sys.path.insert(0, str(TESTS))
    try:
        from generate_helpers import EchoAdapter
    finally:
        sys.path.remove(str(TESTS))
    class PlanningEcho(EchoAdapter):  # a local model: it splits each wave itself (LocalModelAdapter.plan_batches)
        def plan_batches(self, conversations, config):
            return [list(range(len(conversations)))]

    adapter = PlanningEcho()
    out = tmp_path / "echo.jsonl"
    result = run_generation("echo", load_options=LoadOptions(batch_size="auto"),
                            config=GenerationConfig(max_new_tokens=8), out=out, adapter=adapter)
    questions = load_questions(owl_data)
    deepest = max(len(q.earlier_turns) for q in questions) + 1
    assert result.generated == 82 and len(adapter.calls) == deepest
    assert len(adapter.calls[0]) == sum(1 for q in questions if not q.earlier_turns)
    meta = json.loads(result.meta_path.read_text())
    assert meta["batch_size"] == "auto" and meta["status"] == "finished"
    first = json.loads(out.read_text().splitlines()[0])
    assert first["metadata"]["batch_size"] == len(adapter.calls[0])


def test_auto_gives_an_adapter_that_plans_no_batches_its_preferred_size(tmp_path, owl_data):
    """A server or a replay under --batch-size auto (the CUDA default) is asked in its own batch size, so a kill
    loses one batch, not a whole wave."""
    sys.path.insert(0, str(TESTS))
    try:
        from generate_helpers import EchoAdapter
    finally:
        sys.path.remove(str(TESTS))

    class Concurrent(EchoAdapter):
        preferred_batch_size = 4

    adapter = Concurrent()
    run_generation("echo", load_options=LoadOptions(batch_size="auto"), config=GenerationConfig(max_new_tokens=8),
                   out=tmp_path / "echo.jsonl", adapter=adapter)
    assert max(len(call) for call in adapter.calls) == 4 and sum(len(call) for call in adapter.calls) == 82


def test_batch_size_option():
    assert _parse_batch_size(None, "cpu") == 1 and _parse_batch_size(None, "cuda:0") == "auto"
    assert _parse_batch_size("auto", "cpu") == "auto" and _parse_batch_size("8", "cpu") == 8
    for bad in ("0", "eight", "-2"):
        with pytest.raises(OwlEvalError, match="--batch-size"):
            _parse_batch_size(bad, "cpu")
    result = CliRunner().invoke(app, ["generate", "--model", "answers-file", "--batch-size", "many"])
    assert result.exit_code == 1 and "--batch-size 'many'" in result.output


def test_mplug_owl_auto_batches_answer_in_the_order_asked(tmp_path, owl_data, monkeypatch):
    from owleval.adapters import auto_batch
    from owleval.adapters.mplug_owl import MplugOwlAdapter
    from tests.mplug_owl_helpers import make_tiny_mplug_owl_checkpoint

    checkpoint = make_tiny_mplug_owl_checkpoint(tmp_path / "tiny")
    images = [ImageRef(owl_data / "cases" / name) for name in ("1.jpg", "10.jpg", "11.jpg")]
    conversations = [
        Conversation((Turn("Describe this image in detail, please, with every object you see.", (images[0],)),)),
        Conversation((Turn("What?", (images[1],)),)),
        Conversation((Turn("What is it?", (images[2],), answer="A chart."), Turn("Read the numbers.")),),
        Conversation((Turn("Why?", (images[0],)),)),
    ]
    config = GenerationConfig(max_new_tokens=6)
    auto = MplugOwlAdapter.load(LoadOptions(checkpoint=str(checkpoint), device="cpu", batch_size="auto"))
    lengths = [auto.prompt_tokens(c) for c in conversations]
    profile = MemoryProfile.from_config(auto.language_config(), 4)
    two_rows = profile.batch_bytes(2, max(lengths), config.max_new_tokens)
    monkeypatch.setattr(auto_batch, "FREE_MEMORY_SHARE", 1.0)
    monkeypatch.setattr(auto_batch, "free_memory_bytes", lambda device: two_rows)  # room for two rows at a time
    plan = auto.plan_batches(conversations, config)
    assert [len(b) for b in plan] == [2, 2] and [lengths[i] for b in plan for i in b] == sorted(lengths)
    one_by_one = MplugOwlAdapter.load(LoadOptions(checkpoint=str(checkpoint), device="cpu", batch_size=1))
    assert auto.generate(conversations, config) == one_by_one.generate(conversations, config)
