"""``-o decode=eager|compiled`` for the local adapters: which decoding path a run asked for, which one each batch
took, and why a batch fell back to eager ``generate`` -- what the answers' provenance reports.

``compiled`` means a static KV cache and a ``torch.compile``'d decode step (CUDA graphs on CUDA). mplug-owl has
its own static-cache decoder (:mod:`owleval.models.mplug_owl.static_decode`); llava and minigpt4 use transformers'
``generate(cache_implementation="static", compile_config=...)`` through :func:`hf_generate`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from owleval.adapters.base import AdapterError, GenerationConfig

log = logging.getLogger(__name__)
DECODE_MODES = ("eager", "compiled")
DECODE_HELP = (
    "eager (transformers generate) or compiled (static KV cache, decode step compiled with torch.compile, "
    "CUDA graphs on CUDA; same greedy tokens); default compiled on CUDA, eager on the CPU"
)
DECODE_DEFAULT = "compiled on CUDA, eager on the CPU"


def decode_mode(options: Mapping[str, str], device: str) -> tuple[str, bool]:
    """(mode, chosen by default): ``-o decode=``, else compiled on CUDA and eager elsewhere."""
    mode = options.get("decode") or ""
    if mode and mode not in DECODE_MODES:
        raise AdapterError(f"option decode={mode!r}: use {' or '.join(DECODE_MODES)}")
    if mode:
        return mode, False
    return ("compiled" if device.startswith("cuda") else "eager"), True


def compile_error(exc: BaseException) -> str:
    """``Type: message`` of the innermost cause, one line (the compiler's own complaint, not dynamo's wrapper)."""
    while exc.__cause__ is not None or getattr(exc, "inner_exception", None) is not None:
        exc = getattr(exc, "inner_exception", None) or exc.__cause__
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]


class DecodeLog:
    """The decoding path asked for, the batches each path decoded, and the reasons for every fallback."""

    def __init__(self, options: Mapping[str, str], device: str):
        self.requested, self.default = decode_mode(options, device)
        self.device = device
        self.batches = dict.fromkeys(DECODE_MODES, 0)
        self.fallbacks: dict[str, int] = {}
        self.compile_failure: str | None = None  # once compiling failed, every later batch goes eager

    @property
    def wants_compiled(self) -> bool:
        return self.requested == "compiled" and self.compile_failure is None

    def used(self, mode: str) -> None:
        self.batches[mode] += 1

    def fell_back(self, reason: str) -> None:
        self.batches["eager"] += 1
        self.fallbacks[reason] = self.fallbacks.get(reason, 0) + 1

    def failed_to_compile(self, exc: BaseException) -> str:
        self.compile_failure = f"torch.compile failed: {compile_error(exc)}"
        return self.compile_failure

    def provenance(self) -> dict[str, Any]:
        """``decode``: the path the answers took (``compiled``, ``eager``, or ``compiled+eager`` when some batches
        fell back); ``decode_requested`` (and whether by default); ``decode_fallback``: why, with batch counts."""
        used = [mode for mode in DECODE_MODES[::-1] if self.batches[mode]]
        info: dict[str, Any] = {
            "decode": "+".join(used) or self.requested,
            "decode_requested": f"{self.requested} (default on {self.device})" if self.default else self.requested,
            "decode_batches": dict(self.batches),
        }
        if self.fallbacks:
            info["decode_fallback"] = "; ".join(f"{why} ({n} batches)" for why, n in self.fallbacks.items())
        return info


def greedy_only(config: GenerationConfig) -> str | None:
    """Why ``config`` needs eager decoding in a greedy-only compiled decoder, or None."""
    if config.do_sample:
        return "sampling is decoded eagerly (the compiled decoder is greedy)"
    if config.num_beams > 1:
        return "beam search is decoded eagerly"
    if config.repetition_penalty != 1.0:
        return "repetition_penalty is decoded eagerly"
    if config.top_logprobs > 0:
        return "token probabilities are decoded eagerly"
    return None


def hf_generate(model: Any, decode_log: DecodeLog, **kwargs: Any) -> Any:
    """``model.generate(**kwargs)``; with ``decode=compiled``, on transformers' static cache with its forward
    compiled (``mode="reduce-overhead"`` on CUDA; on the CPU plain inductor, which transformers only does when
    asked). Falls back to eager for good when compiling fails (the reason goes into provenance)."""
    import torch

    if decode_log.wants_compiled:
        from transformers import CompileConfig

        cuda = next(model.parameters()).device.type == "cuda"
        compile_config = getattr(model, "_owleval_compile_config", None)
        if compile_config is None:  # one instance per model: transformers keeps one compiled forward per config
            compile_config = CompileConfig(mode="reduce-overhead" if cuda else "default")
            compile_config._compile_all_devices = not cuda or None
            model._owleval_compile_config = compile_config
        try:
            output = model.generate(**kwargs, cache_implementation="static", compile_config=compile_config)
        except torch._dynamo.exc.TorchDynamoException as exc:  # e.g. no C++ compiler / Triton for inductor
            reason = decode_log.failed_to_compile(exc)
            log.warning("decoding eagerly from now on, %s", reason)
            decode_log.fell_back(reason)
        else:
            decode_log.used("compiled")
            return output
    elif decode_log.compile_failure:
        decode_log.fell_back(decode_log.compile_failure)
    else:
        decode_log.used("eager")
    return model.generate(**kwargs)
