"""Greedy decoding on a static KV cache with one compiled decode step, for a transformers causal LM fed embeddings.

Eager ``generate`` on a GPU spends most of a decode step in Python and in hundreds of small kernel launches. Here:

1. the prompt is prefilled eagerly, exactly as ``generate`` does it (a ``DynamicCache``, same positions and mask),
   so the first new token and the cached keys/values are the eager path's own;
2. the keys/values move into a transformers ``StaticCache`` of a fixed shape (batch and length rounded up to a
   *bucket*), so every later step has the same tensor shapes;
3. each step -- embed the last token, run the LM on the static cache, take the argmax, replace the tokens of
   finished rows by padding, advance the positions -- is one function, compiled with ``torch.compile``
   (``mode="reduce-overhead"``, i.e. CUDA graphs, on CUDA; plain inductor elsewhere) or run as is (``compile=False``,
   the same code path uncompiled).

Rows added to reach a batch bucket are dummies that start finished. Whether every row has finished is read back
every ``check_every`` steps (a read is a device sync); tokens past the end are padding and trimmed off, so the
result equals eager greedy ``generate`` with ``eos_token_id``: new tokens only, finished rows padded.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache, StaticCache

__all__ = [
    "BATCH_BUCKETS", "DecodeStats", "StaticCacheDecoder", "batch_bucket", "length_bucket",
    "unsupported_by_static_decoder",
]

#: batch sizes a decode step is compiled (and CUDA-graphed) for; a batch is padded up to the next one
BATCH_BUCKETS = (2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)  # not 1: a size-1 dim compiles apart
#: cache lengths are rounded up to a multiple of this
LENGTH_STEP = 128


#: generation settings that change which token is picked, with the value that leaves greedy decoding alone
_NEUTRAL_SETTINGS: dict[str, tuple[Any, ...]] = {
    "do_sample": (False, None),
    "num_beams": (1, None),
    "num_return_sequences": (1, None),
    "repetition_penalty": (1.0, None),
    "no_repeat_ngram_size": (0, None),
    "min_length": (0, None),
    "min_new_tokens": (0, None),
    "bad_words_ids": (None,),
    "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,),
    "sequence_bias": (None,),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "guidance_scale": (None, 1.0),
    "watermarking_config": (None,),
    "stop_strings": (None,),
    "max_time": (None,),
    "return_dict_in_generate": (False, None),
    "output_scores": (False, None),
    "output_logits": (False, None),
}


def unsupported_by_static_decoder(generation_config: Any, model_kwargs: dict[str, Any]) -> str | None:
    """Why ``generation_config`` (a transformers one) needs eager ``generate``, or None when plain greedy
    decoding to ``max_new_tokens`` with at most one end-of-sequence token is all it asks for."""
    problems = [
        f"{name}={getattr(generation_config, name, None)!r}"
        for name, neutral in _NEUTRAL_SETTINGS.items()
        if getattr(generation_config, name, None) not in neutral
    ]
    eos = generation_config.eos_token_id
    if isinstance(eos, (list, tuple)) and len(eos) > 1:
        problems.append(f"eos_token_id={list(eos)} (one end-of-sequence token only)")
    if not generation_config.max_new_tokens:
        problems.append("max_new_tokens unset")
    problems += [f"{key}=..." for key, value in model_kwargs.items() if value is not None]
    return ", ".join(problems) or None


def batch_bucket(rows: int) -> int:
    """The smallest bucket holding ``rows`` rows (multiples of 64 beyond the table)."""
    index = bisect.bisect_left(BATCH_BUCKETS, rows)
    if index < len(BATCH_BUCKETS):
        return BATCH_BUCKETS[index]
    return -(-rows // 64) * 64


def length_bucket(length: int, step: int = LENGTH_STEP) -> int:
    return -(-length // step) * step


@dataclass
class DecodeStats:
    """What the decoder did so far: calls, steps, shapes used and the seconds spent on first calls per shape
    (compilation and CUDA-graph capture happen there)."""

    calls: int = 0
    steps: int = 0
    shapes: dict[str, int] = field(default_factory=dict)
    first_call_seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "steps": self.steps, "shapes": dict(self.shapes),
                "first_call_seconds": {k: round(v, 3) for k, v in self.first_call_seconds.items()}}


class _Slot:
    """The static cache and the attention-mask buffer for one (batch bucket, length bucket) shape."""

    def __init__(self, config: Any, batch: int, length: int, heads: int, head_dim: int, dtype, device):
        self.batch, self.length = batch, length
        self.cache = StaticCache(config=config, max_cache_len=length)
        self.cache.early_initialization(batch_size=batch, num_heads=heads, head_dim=head_dim, dtype=dtype,
                                        device=device)
        self.mask = torch.zeros(batch, length, dtype=torch.long, device=device)
        torch._dynamo.mark_static_address(self.mask)  # like the cache: CUDA graphs read it in place, no copy a step

    def load(self, prefill: DynamicCache, mask: torch.Tensor) -> None:
        """Copy the prefilled keys/values into rows [0, B) and set every layer's length to the prompt's."""
        rows, prompt = mask.shape
        for static, dynamic in zip(self.cache.layers, prefill.layers, strict=True):
            static.keys[:rows, :, :prompt].copy_(dynamic.keys)
            static.values[:rows, :, :prompt].copy_(dynamic.values)
            static.cumulative_length.fill_(prompt)
        # real rows: their prompt mask, then every decode slot; dummy rows attend to everything (finite, unused)
        self.mask.fill_(1)
        self.mask[:rows, :prompt].copy_(mask)


class StaticCacheDecoder:
    """Greedy decoding of ``language_model`` (a transformers causal LM with ``.model`` and ``.lm_head``, as LLaMA)
    from prompt embeddings on a static cache.

    ``compile``: compile the decode step (``torch.compile``; CUDA graphs on CUDA); False runs the same step eagerly.
    One compiled step serves every shape: dynamo compiles it for the first bucket, once more with batch and length
    symbolic at the second, and never again; CUDA graphs are captured once per bucket. Batches start at 2 rows
    (a batch of one runs with a dummy row) so that a size-1 dimension does not need a compilation of its own.
    """

    def __init__(self, language_model: Any, *, compile: bool = True, check_every: int = 8):
        self.language_model = language_model
        self.compiled = compile
        self.check_every = max(1, check_every)
        self.stats = DecodeStats()
        self._slot: _Slot | None = None
        cuda = next(language_model.parameters()).device.type == "cuda"
        #: torch.compile mode: CUDA graphs on CUDA, plain inductor elsewhere; "uncompiled" without compile
        self.mode = ("reduce-overhead" if cuda else "default") if compile else "uncompiled"
        self._step = torch.compile(self._decode_step, mode=self.mode, fullgraph=True) if compile else self._decode_step

    # -- the compiled part ---------------------------------------------------------------------------------------

    def _decode_step(self, tokens, positions, finished, mask, cache, eos: int, pad: int):
        """One token for every row: [B] tokens at [B] positions -> next tokens, next positions, finished flags."""
        lm = self.language_model
        embeds = lm.get_input_embeddings()(tokens[:, None])
        hidden = lm.model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions[:, None], cache=cache,
                          use_cache=True).last_hidden_state
        logits = lm.lm_head(hidden[:, -1]).float()
        new = torch.where(finished, torch.full_like(tokens, pad), logits.argmax(-1))
        return new, positions + 1, finished | (new == eos)

    # -- the loop ------------------------------------------------------------------------------------------------

    def _slot_for(self, rows: int, length: int, prefill: DynamicCache, dtype, device) -> _Slot:
        batch, length = batch_bucket(rows), length_bucket(length)
        slot = self._slot
        if slot is None or slot.batch != batch or slot.length != length:
            self._slot = None  # free the old cache before allocating the new one
            keys = prefill.layers[0].keys
            slot = self._slot = _Slot(self.language_model.config, batch, length, keys.shape[1], keys.shape[-1],
                                      dtype, device)
        return slot

    @torch.no_grad()
    def generate(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        *,
        max_new_tokens: int,
        eos_token_id: int | None,
        pad_token_id: int,
    ) -> torch.Tensor:
        """New tokens [B, <= max_new_tokens] for the prompt rows; rows finished at ``eos_token_id`` are padded
        with ``pad_token_id`` and decoding stops once every row has finished."""
        lm = self.language_model
        rows, prompt = attention_mask.shape
        device = inputs_embeds.device
        eos = -1 if eos_token_id is None else int(eos_token_id)
        started = time.perf_counter()

        prefill = DynamicCache(config=lm.config)
        logits = lm(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                    cache=prefill, use_cache=True, logits_to_keep=1).logits
        first = logits[:, -1].float().argmax(-1)
        slot = self._slot_for(rows, prompt + max_new_tokens, prefill, inputs_embeds.dtype, device)
        slot.load(prefill, attention_mask.long())
        del prefill, logits

        batch = slot.batch
        tokens = torch.full((batch,), pad_token_id, dtype=torch.long, device=device)
        tokens[:rows] = first
        positions = torch.zeros(batch, dtype=torch.long, device=device)
        positions[:rows] = position_ids[:, -1] + 1
        finished = torch.ones(batch, dtype=torch.bool, device=device)
        finished[:rows] = first == eos
        out = torch.full((batch, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
        done = torch.ones(batch, max_new_tokens, dtype=torch.bool, device=device)  # finished after step t
        out[:, 0], done[:, 0] = tokens, finished

        steps = 1
        while steps < max_new_tokens:
            if steps % self.check_every == 0 and bool(finished.all()):
                break
            if self.mode == "reduce-overhead":
                torch.compiler.cudagraph_mark_step_begin()
            tokens, positions, finished = (
                t.clone() for t in self._step(tokens, positions, finished, slot.mask, slot.cache, eos, pad_token_id)
            )
            out[:, steps], done[:, steps] = tokens, finished
            steps += 1

        ended = done[:rows].all(0).nonzero()
        length = int(ended[0]) + 1 if len(ended) else steps
        self._record(f"b{batch}xl{slot.length}", steps, time.perf_counter() - started)
        return out[:rows, :length]

    def _record(self, shape: str, steps: int, seconds: float) -> None:
        stats = self.stats
        stats.calls += 1
        stats.steps += steps
        if shape not in stats.shapes:
            stats.first_call_seconds[shape] = seconds
        stats.shapes[shape] = stats.shapes.get(shape, 0) + 1
