"""Token probabilities from a local adapter's own logits (``GenerationConfig.top_logprobs``, what ``owleval judge
-o logprobs=true`` asks for), on a tiny random LLaVA checkpoint: same answers as without, each token's probability
equal to a teacher-forced forward pass, and the judge's request path hands them on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from owleval.adapters.base import Conversation, GenerationConfig, ImageRef, LoadOptions, ScoredText, Turn
from owleval.adapters.llava import LlavaAdapter
from owleval.judge.run import ask
from tests.llava_minigpt4_helpers import make_tiny_llava_checkpoint

TOP = 5


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> LlavaAdapter:
    checkpoint = make_tiny_llava_checkpoint(tmp_path_factory.mktemp("llava"))
    return LlavaAdapter.load(LoadOptions(checkpoint=str(checkpoint), device="cpu", batch_size=2))


def conversations(owl_data: Path) -> list[Conversation]:
    image = ImageRef(owl_data / "cases" / "1.jpg")
    return [Conversation((Turn("What is in the picture?", (image,)),), key="a"),
            Conversation((Turn("A much longer question about the same picture, to pad the other row?", (image,)),), key="b")]


def teacher_forced_logprobs(adapter: LlavaAdapter, conversation: Conversation, generated: list[int]) -> torch.Tensor:
    """log P(token | prompt, earlier tokens) from one forward pass over the prompt and the generated tokens."""
    inputs = adapter.processor(images=[r.load() for r in conversation.images], text=[adapter.prompt(conversation)], return_tensors="pt")
    prompt_len = inputs["input_ids"].shape[1]
    ids = torch.cat([inputs["input_ids"], torch.tensor([generated])], dim=1)
    with torch.inference_mode():
        logits = adapter.model(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=inputs["pixel_values"]).logits
    steps = logits[0, prompt_len - 1 : prompt_len - 1 + len(generated)].float().log_softmax(-1)
    return steps.gather(1, torch.tensor(generated)[:, None])[:, 0]


def test_llava_gives_each_tokens_probability_and_alternatives(adapter: LlavaAdapter, owl_data: Path) -> None:
    convs = conversations(owl_data)
    plain = adapter.generate(convs, GenerationConfig(max_new_tokens=6))
    scored = adapter.generate(convs, GenerationConfig(max_new_tokens=6, top_logprobs=TOP))
    assert scored == plain, "asking for probabilities does not change the answers"
    tokenizer = adapter.processor.tokenizer
    for conversation, answer in zip(convs, scored, strict=True):
        assert isinstance(answer, ScoredText) and answer.tokens
        for token in answer.tokens:
            assert len(token.top) == TOP and [lp for _, lp in token.top] == sorted((lp for _, lp in token.top), reverse=True)
            assert token.logprob == pytest.approx(token.top[0][1]), "greedy: the chosen token is the likeliest"
        generated = _ids_of(adapter, conversation)
        assert [t.token for t in answer.tokens] == [tokenizer.decode([i]) for i in generated]
        expected = teacher_forced_logprobs(adapter, conversation, generated)
        assert [t.logprob for t in answer.tokens] == pytest.approx(expected.tolist(), abs=1e-4)


def _ids_of(adapter: LlavaAdapter, conversation: Conversation) -> list[int]:
    """The greedy answer's token ids (up to the end of sequence), from plain generate."""
    inputs = adapter.processor(images=[r.load() for r in conversation.images], text=[adapter.prompt(conversation)], return_tensors="pt")
    with torch.inference_mode():
        out = adapter.model.generate(**inputs, max_new_tokens=6, do_sample=False, pad_token_id=adapter.processor.tokenizer.pad_token_id)
    new = out[0, inputs["input_ids"].shape[1] :].tolist()
    eos = adapter.processor.tokenizer.eos_token_id
    return new[: new.index(eos)] if eos in new else new


def test_the_judges_request_path_hands_the_tokens_on(adapter: LlavaAdapter, owl_data: Path) -> None:
    convs = conversations(owl_data)
    config = GenerationConfig(max_new_tokens=4, top_logprobs=3)
    completions = ask(adapter, [(c, config) for c in convs])
    assert [c.key for c in completions] == ["a", "b"] and all(c.tokens and len(c.tokens[0].top) == 3 for c in completions)
    assert all(c.tokens is None for c in ask(adapter, [(convs[0], GenerationConfig(max_new_tokens=4))]))


def _minigpt4(tmp: Path):
    from owleval.adapters.minigpt4 import MiniGPT4Adapter
    from tests.llava_minigpt4_helpers import make_tiny_minigpt4_checkpoint

    parts = make_tiny_minigpt4_checkpoint(tmp)
    options = {k: v for k, v in parts.items() if k != "checkpoint"}
    return MiniGPT4Adapter.load(LoadOptions(checkpoint=parts["checkpoint"], device="cpu", batch_size=2, options=options))


def _mplug_owl(tmp: Path):
    from owleval.adapters.mplug_owl import MplugOwlAdapter
    from tests.mplug_owl_helpers import make_tiny_mplug_owl_checkpoint

    return MplugOwlAdapter.load(LoadOptions(checkpoint=str(make_tiny_mplug_owl_checkpoint(tmp)), device="cpu", batch_size=2))


@pytest.mark.parametrize("make", [_minigpt4, _mplug_owl], ids=["minigpt4", "mplug-owl"])
def test_the_other_local_adapters_score_their_tokens_too(make, tmp_path: Path, owl_data: Path) -> None:
    adapter = make(tmp_path)
    convs = conversations(owl_data)
    plain = adapter.generate(convs, GenerationConfig(max_new_tokens=5))
    scored = adapter.generate(convs, GenerationConfig(max_new_tokens=5, top_logprobs=TOP))
    assert scored == plain, "asking for probabilities does not change the answers"
    for answer in scored:
        assert isinstance(answer, ScoredText) and 0 < len(answer.tokens) <= 5
        for token in answer.tokens:
            assert len(token.top) == TOP and token.logprob == pytest.approx(token.top[0][1]) and token.logprob <= 0
