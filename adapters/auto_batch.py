"""``--batch-size auto``: split a wave of conversations into as few batches as the device's memory allows.

Prompts are sorted by length (so rows padded together are alike) and grouped greedily while the estimate of a
batch's memory -- static KV cache for prompt + ``max_new_tokens`` at the decoder's bucket sizes, plus the prefill's
own cache and activations -- stays within the budget (a share of the memory free once the weights are loaded).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: share of the free memory a batch may plan to use (the rest absorbs allocator slack and estimate error)
FREE_MEMORY_SHARE = 0.8
#: the most rows one batch may hold
MAX_ROWS = 256


@dataclass(frozen=True)
class MemoryProfile:
    """Per-token memory of a decoder-only language model, from its config and dtype."""

    kv_bytes_per_token: int  # keys + values, all layers, one token of one row
    activation_bytes_per_token: int  # prefill activations of one prompt token (one layer live at a time)
    score_bytes_per_token_pair: int  # prefill attention scores, per (query, key) pair
    logits_bytes_per_row: int

    @classmethod
    def from_config(cls, text_config: Any, dtype_bytes: int) -> MemoryProfile:
        hidden = text_config.hidden_size
        heads = text_config.num_attention_heads
        kv_heads = getattr(text_config, "num_key_value_heads", None) or heads
        head_dim = getattr(text_config, "head_dim", None) or hidden // heads
        layers = text_config.num_hidden_layers
        intermediate = getattr(text_config, "intermediate_size", 4 * hidden)
        return cls(
            kv_bytes_per_token=2 * layers * kv_heads * head_dim * dtype_bytes,
            activation_bytes_per_token=(6 * hidden + 3 * intermediate) * dtype_bytes,
            score_bytes_per_token_pair=heads * 4,  # float32 scores when SDPA falls back to the math kernel
            logits_bytes_per_row=text_config.vocab_size * 8,
        )

    def batch_bytes(self, rows: int, prompt: int, max_new_tokens: int) -> int:
        """Planned bytes for ``rows`` rows left-padded to ``prompt`` tokens, at the static decoder's buckets."""
        from owleval.models.mplug_owl.static_decode import batch_bucket, length_bucket

        rows = batch_bucket(rows)
        kv = rows * length_bucket(prompt + max_new_tokens) * self.kv_bytes_per_token
        # the prefill's own cache lives until its keys/values are copied into the static one
        prefill = rows * prompt * (self.kv_bytes_per_token + self.activation_bytes_per_token
                                   + prompt * self.score_bytes_per_token_pair)
        return kv + prefill + rows * self.logits_bytes_per_row


def free_memory_bytes(device: str) -> int:
    """Memory free on ``device`` now: the CUDA allocator's view of the GPU, or the system's available RAM."""
    if device.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not every platform reports it
        return 8 << 30


def plan_batches(
    prompt_tokens: Sequence[int], max_new_tokens: int, profile: MemoryProfile, budget_bytes: int,
    max_rows: int = MAX_ROWS,
) -> list[list[int]]:
    """Indices of the prompts grouped into batches, shortest prompts first, each batch within ``budget_bytes``
    (a prompt too large for the budget on its own still gets a batch of one)."""
    order = sorted(range(len(prompt_tokens)), key=lambda i: (prompt_tokens[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        rows = len(current) + 1
        fits = rows <= max_rows and profile.batch_bytes(rows, prompt_tokens[index], max_new_tokens) <= budget_bytes
        if current and not fits:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches
