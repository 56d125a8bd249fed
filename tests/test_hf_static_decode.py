"""``-o decode=compiled`` for llava and minigpt4: transformers' generate on a static KV cache with a compiled forward
gives the eager greedy answers on left-padded multi-turn batches, provenance says which path ran, and a compiler
that cannot run sends the batches to eager generate.

The forward's compilation itself is switched off here (``torch._dynamo.config.disable``), so these tests stay fast
and check the static-cache path; compiling is tested on the bundled mPLUG-Owl (test_mplug_owl_static_decode.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from owleval.adapters.base import AdapterError, Conversation, GenerationConfig, ImageRef, LoadOptions, Turn
from owleval.adapters.llava import LlavaAdapter
from owleval.adapters.minigpt4 import MiniGPT4Adapter
from tests.llava_minigpt4_helpers import make_tiny_llava_checkpoint, make_tiny_minigpt4_checkpoint

GREEDY = GenerationConfig(max_new_tokens=8)


@pytest.fixture()
def conversations(owl_data: Path) -> list[Conversation]:
    images = [ImageRef(owl_data / "cases" / name) for name in ("1.jpg", "5.jpg", "49.jpg")]
    return [
        Conversation((Turn("What is in the image? Describe it in detail, please.", (images[0],)),)),
        Conversation((Turn("Describe it.", (images[1],), answer="A man."), Turn("Why?", answer="He waits."),
                      Turn("For whom?"))),
        Conversation((Turn("Read the text.", (images[2],)),)),
    ]


def _both(load, conversations):
    eager, compiled = load({}), load({"decode": "compiled"})
    with torch._dynamo.config.patch(disable=True):
        static_answers = compiled.generate(conversations, GREEDY)
    return eager.generate(conversations, GREEDY), static_answers, compiled, eager


def test_llava_static_cache_gives_the_eager_answers(tmp_path, conversations):
    checkpoint = make_tiny_llava_checkpoint(tmp_path / "llava")

    def load(options):
        return LlavaAdapter.load(LoadOptions(checkpoint=str(checkpoint), device="cpu", batch_size=4, options=options))

    eager_answers, static_answers, compiled, eager = _both(load, conversations)
    assert static_answers == eager_answers
    assert compiled.provenance()["decode"] == "compiled" and eager.provenance()["decode"] == "eager"
    assert hasattr(compiled.model, "_compiled_call") and not hasattr(eager.model, "_compiled_call")
    assert eager.provenance()["decode_requested"] == "eager (default on cpu)"
    with pytest.raises(AdapterError, match="decode='graphs'"):
        load({"decode": "graphs"})


def test_minigpt4_static_cache_gives_the_eager_answers(tmp_path, conversations):
    parts = make_tiny_minigpt4_checkpoint(tmp_path / "minigpt4")

    def load(options):
        opts = {k: v for k, v in parts.items() if k != "checkpoint"} | options
        return MiniGPT4Adapter.load(LoadOptions(checkpoint=parts["checkpoint"], device="cpu", batch_size=4,
                                                options=opts))

    eager_answers, static_answers, compiled, _ = _both(load, conversations)
    assert static_answers == eager_answers
    assert compiled.provenance()["decode_batches"] == {"eager": 0, "compiled": 1}
    assert hasattr(compiled.parts["language_model"], "_compiled_call")  # transformers took the compiled route


def test_llava_falls_back_to_eager_when_inductor_cannot_compile(tmp_path, conversations):
    import torch._inductor.config

    checkpoint = make_tiny_llava_checkpoint(tmp_path / "llava")
    compiled, eager = (LlavaAdapter.load(LoadOptions(checkpoint=str(checkpoint), device="cpu", options=options))
                       for options in ({"decode": "compiled"}, {}))
    torch._dynamo.reset()  # nothing compiled earlier may be reused
    with torch._inductor.config.patch({"cpp.cxx": ("/nonexistent/c++",)}):  # inductor finds no C++ compiler
        answers = compiled.generate(conversations, GREEDY)
    assert answers == eager.generate(conversations, GREEDY)
    info = compiled.provenance()
    assert info["decode"] == "eager" and "No working C++ compiler" in info["decode_fallback"]
    assert info["decode_batches"] == {"eager": 3, "compiled": 0}  # batch_size 1: every later batch went eager too
