"""Checks shared by the local adapters' tests of token probabilities (``GenerationConfig.top_logprobs``, what
``owleval judge -o logprobs=true`` asks for)."""

from __future__ import annotations

from pathlib import Path

import pytest

from owleval.adapters.base import Conversation, GenerationConfig, ImageRef, ModelAdapter, ScoredText, Turn

TOP = 5


def image_conversations(owl_data: Path) -> list[Conversation]:
    """Two prompts of different lengths on one image: a batch that needs padding."""
    image = ImageRef(owl_data / "cases" / "1.jpg")
    return [Conversation((Turn("What is in the picture?", (image,)),), key="a"),
            Conversation((Turn("A much longer question about the same picture, to pad the other row?", (image,)),), key="b")]


def assert_scored_like_plain(adapter: ModelAdapter, conversations: list[Conversation], max_new_tokens: int = 5) -> list[ScoredText]:
    """Asking for probabilities leaves the greedy answers as they were; every answer carries its tokens, each with
    ``TOP`` alternatives, likeliest first, the chosen one the likeliest (greedy)."""
    plain = adapter.generate(conversations, GenerationConfig(max_new_tokens=max_new_tokens))
    scored = adapter.generate(conversations, GenerationConfig(max_new_tokens=max_new_tokens, top_logprobs=TOP))
    assert scored == plain, "asking for probabilities does not change the answers"
    for answer in scored:
        assert isinstance(answer, ScoredText) and 0 < len(answer.tokens) <= max_new_tokens
        for token in answer.tokens:
            values = [lp for _, lp in token.top]
            assert len(values) == TOP and values == sorted(values, reverse=True) and token.logprob <= 0
            assert token.logprob == pytest.approx(values[0]), "greedy: the chosen token is the likeliest"
    return scored
