"""Helpers shared by the adapters built on transformers checkpoints: where a checkpoint is, loading that refuses
missing or mis-shaped weights, ``GenerationConfig`` as ``generate()`` arguments, what provenance says about the
run, and batching (with seeding) by the load-time batch size."""

from __future__ import annotations

import abc
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from owleval.adapters.base import AdapterError, Conversation, GenerationConfig, ModelAdapter, ScoredText, TokenLogprob

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def generation_kwargs(config: GenerationConfig) -> dict[str, Any]:
    """``GenerationConfig`` as ``generate()`` keyword arguments; sampling knobs only when sampling."""
    kwargs: dict[str, Any] = {
        "max_new_tokens": config.max_new_tokens,
        "do_sample": config.do_sample,
        "num_beams": config.num_beams,
        "repetition_penalty": config.repetition_penalty,
    }
    if config.do_sample:
        kwargs.update(temperature=config.temperature, top_p=config.top_p, top_k=config.top_k or 0)
    if config.top_logprobs > 0:  # the raw logits of every step, for the tokens' probabilities
        kwargs.update(output_logits=True, return_dict_in_generate=True)
    return kwargs


def split_scored(output: Any, tokenizer: Any, top: int) -> tuple[Any, list[tuple[TokenLogprob, ...]] | None]:
    """``generate()``'s output as (sequences, per row its new tokens with their ``top`` likeliest alternatives)
    when it was asked for logits (see :func:`generation_kwargs`), else (output, None).

    Probabilities are the model's own (softmax of the raw logits, temperature 1), whatever the decoding settings;
    a row's tokens end at its end-of-sequence or padding token. Each token is decoded on its own.
    """
    if not hasattr(output, "sequences"):
        return output, None
    import torch

    steps = len(output.logits)
    new = output.sequences[:, output.sequences.shape[1] - steps :]
    logprobs = torch.stack(output.logits, dim=1).float().log_softmax(-1)
    values, ids = logprobs.topk(min(top, logprobs.shape[-1]), dim=-1)
    stop = {i for i in (tokenizer.eos_token_id, tokenizer.pad_token_id) if i is not None}
    text: dict[int, str] = {}

    def piece(token_id: int) -> str:
        if token_id not in text:
            text[token_id] = tokenizer.decode([token_id])
        return text[token_id]

    rows = []
    for b in range(new.shape[0]):
        tokens = []
        for s in range(steps):
            token_id = int(new[b, s])
            if token_id in stop:
                break
            top_k = tuple((piece(int(i)), float(v)) for i, v in zip(ids[b, s], values[b, s], strict=True))
            tokens.append(TokenLogprob(piece(token_id), float(logprobs[b, s, token_id]), top_k))
        rows.append(tuple(tokens))
    return output.sequences, rows


def with_tokens(texts: Sequence[str], scored: Sequence[tuple[TokenLogprob, ...]] | None) -> list[str]:
    """The answers, each carrying its tokens (:class:`ScoredText`) when they were asked for."""
    if scored is None:
        return list(texts)
    return [ScoredText(text, tokens) for text, tokens in zip(texts, scored, strict=True)]


def checkpoint_source(checkpoint: str, what: str, markers: tuple[str, ...] = ("config.json",)) -> str:
    """A local directory holding one of ``markers`` (checked) or a hub id (left to ``from_pretrained``); anything
    else is an error naming ``checkpoint``."""
    path = Path(checkpoint).expanduser()
    if path.is_file():
        raise AdapterError(f"{what} {checkpoint!r} is a file: give the folder that holds {' or '.join(markers)}")
    if path.is_dir():
        if not any((path / marker).is_file() for marker in markers):
            raise AdapterError(f"{what} {checkpoint!r} is not a model directory (no {' nor '.join(markers)} in it)")
        return str(path)
    if _HUB_ID.match(checkpoint) and not _looks_local(checkpoint):
        return checkpoint
    if _looks_local(checkpoint):
        raise AdapterError(f"{what} {checkpoint!r} not found: the folder does not exist ({path.resolve()}); it is read as a "
                           "local path (it starts like one, or its first part is a folder here), never as a hub id")
    raise AdapterError(
        f"{what} {checkpoint!r} not found: the folder does not exist, and it is not a hub id such as org/name"
    )


def _looks_local(checkpoint: str) -> bool:
    """A path, not a hub id: it starts like one (``/``, ``./``, ``../``, ``~``, a drive) or its first part is a
    folder here (``ckpts/tiny`` when ``ckpts/`` exists): a mistyped folder is refused at once, never looked up."""
    if checkpoint.startswith(("/", "./", "../", "~", ".\\", "..\\")) or re.match(r"^[A-Za-z]:[\\/]", checkpoint):
        return True
    head = checkpoint.replace("\\", "/").split("/", 1)[0]
    return "/" in checkpoint.replace("\\", "/") and bool(head) and Path(head).is_dir()


def load_errors() -> tuple[type[BaseException], ...]:
    """What a broken or foreign checkpoint makes transformers raise while reading it."""
    from huggingface_hub.errors import StrictDataclassError

    return (OSError, ValueError, TypeError, RuntimeError, ImportError, KeyError, StrictDataclassError)


def first_few(items: Sequence[str], limit: int = 5) -> str:
    """``a, b, c (and 7 more)``: enough of a long list of tensor names for an error message."""
    more = f" (and {len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def check_model_type(source: str, what: str, allowed: tuple[str, ...]) -> Any:
    """The checkpoint's config, refused unless its ``model_type`` is one of ``allowed``.

    Checked before loading weights: transformers would otherwise build a default-sized model around a foreign
    config (a 7B LLaMA for a LLaVA config that is missing its sub-configs).
    """
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source)
    except load_errors() as exc:
        raise AdapterError(f"cannot read the config of {what} {source!r}: {exc}") from exc
    if config.model_type not in allowed:
        raise AdapterError(f"{what} {source!r} is a {config.model_type!r} model, expected {' or '.join(allowed)}")
    return config


def load_pretrained(model_cls: Any, source: str, what: str, **kwargs: Any) -> Any:
    """``model_cls.from_pretrained`` that refuses missing or mis-shaped weights instead of initialising them."""
    try:
        model, info = model_cls.from_pretrained(source, output_loading_info=True, **kwargs)
    except load_errors() as exc:
        raise AdapterError(f"cannot load {what} {source!r}: {exc}") from exc
    missing = sorted(info.get("missing_keys") or ())
    mismatched = sorted(str(m) for m in info.get("mismatched_keys") or ())
    for label, items in (("missing", missing), ("wrong shape", mismatched)):
        if items:
            raise AdapterError(f"{what} {source!r}: {len(items)} {label} weight(s): {first_few(items)}")
    return model


def runtime_provenance(device: str, dtype: Any, model_config: Any) -> dict[str, Any]:
    """How the weights ran, as resolved (never ``auto``): device, dtype and the language model's attention kernel.

    Package versions are not repeated here: the generate runner records them for every adapter.
    """
    return {
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
        "attn_implementation": model_config._attn_implementation,
    }


class LocalModelAdapter(ModelAdapter):
    """An adapter that runs a model in this process: ``generate`` answers in chunks of ``LoadOptions.batch_size``
    (so a long list from the Python API does not become one giant batch); subclasses answer one chunk.

    ``batch_size="auto"`` groups the conversations by prompt length into as few batches as memory allows
    (:mod:`owleval.adapters.auto_batch`); answers still come back in the order asked.

    When sampling, torch's generator is seeded with ``GenerationConfig.seed`` before every chunk, so a chunk's
    answers do not depend on what was sampled before it (a resumed run repeats an uninterrupted one).
    """

    #: set by subclasses: where the weights run ("cpu", "cuda", "cuda:1")
    device: str = "cpu"
    dtype: Any = None

    def generate(self, conversations: Sequence[Conversation], config: GenerationConfig) -> list[str]:
        import torch

        answers: list[str | None] = [None] * len(conversations)
        for indices in self.plan_batches(conversations, config):
            if config.do_sample:
                torch.manual_seed(config.seed)  # seeds the CUDA generators too
            texts = self._generate_batch([conversations[i] for i in indices], config)
            for index, text in zip(indices, texts, strict=True):
                answers[index] = text
        return answers  # type: ignore[return-value]  # every index is in exactly one batch

    def plan_batches(self, conversations: Sequence[Conversation], config: GenerationConfig) -> list[list[int]]:
        """Indices of ``conversations`` per batch: consecutive chunks of ``batch_size``, or under ``auto`` the
        memory-budgeted groups of :func:`~owleval.adapters.auto_batch.plan_batches`."""
        if self.options.batch_size != "auto":
            size = max(1, int(self.options.batch_size))
            return [list(range(start, min(start + size, len(conversations))))
                    for start in range(0, len(conversations), size)]
        import torch

        from owleval.adapters.auto_batch import FREE_MEMORY_SHARE, MemoryProfile, free_memory_bytes, plan_batches

        dtype_bytes = torch.empty((), dtype=self.dtype or torch.float32).element_size()
        profile = MemoryProfile.from_config(self.language_config(), dtype_bytes)
        budget = int(free_memory_bytes(self.device) * FREE_MEMORY_SHARE)
        lengths = [self.prompt_tokens(c) for c in conversations]
        return plan_batches(lengths, config.max_new_tokens, profile, budget)

    def language_config(self) -> Any:
        """The language model's config (sizes the KV cache for ``--batch-size auto``)."""
        return self.model.config.get_text_config(decoder=True)  # type: ignore[attr-defined]

    def prompt_tokens(self, conversation: Conversation) -> int:
        """Prompt length in tokens, for sorting and budgeting ``--batch-size auto``; this default is a generous
        estimate (about 3 characters a token, 600 tokens an image), adapters that tokenize cheaply override it."""
        text = sum(len(t.text) + len(t.answer or "") for t in conversation.turns)
        return 64 + text // 3 + 600 * len(conversation.images)

    @abc.abstractmethod
    def _generate_batch(self, conversations: Sequence[Conversation], config: GenerationConfig) -> list[str]:
        """Answer one batch (at most ``batch_size`` conversations), in order."""


IMAGE_ASPECTS = ("pad", "crop")


def expand_to_square(image: Any, fill: Sequence[float]) -> Any:
    """``image`` centred on a square of its longer side, the rest filled with ``fill`` (mean colour, 0-1 floats).

    This is LLaVA-1.5's ``expand2square`` (``image_aspect_ratio: pad`` in its released config): the whole image
    reaches the model, where a centre crop would cut off the sides of a wide image.
    """
    from PIL import Image

    image = image.convert("RGB")
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    square = Image.new("RGB", (side, side), tuple(int(round(255 * c)) for c in fill))
    square.paste(image, ((side - width) // 2, (side - height) // 2))
    return square


def center_crops(image_processor: Any) -> bool:
    """Whether the image processor cuts non-square images to a centred square (CLIP-style, as LLaVA-1.5's)."""
    return bool(getattr(image_processor, "do_center_crop", False))


def image_aspect(options: Any, image_processor: Any, default_pad: bool) -> tuple[str, bool]:
    """(``pad`` or ``crop``, chosen by default): ``-o image_aspect=``, else pad when ``default_pad``.

    ``crop`` leaves images to the processor (which crops or resizes as it was saved to do)."""
    value = options.get("image_aspect") or ""
    if value and value not in IMAGE_ASPECTS:
        raise AdapterError(f"option image_aspect={value!r}: use {' or '.join(IMAGE_ASPECTS)}")
    if value:
        return value, False
    return ("pad" if default_pad else "crop"), True


def chat_messages(conversation: Conversation, system: str | None = None) -> list[dict[str, Any]]:
    """The conversation as chat-template messages: each turn a user message (its images as image parts, then its
    text), each earlier answer an assistant message; ``system`` first when given."""
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
    for turn in conversation.turns:
        content: list[dict[str, Any]] = [{"type": "image"} for _ in turn.images]
        content.append({"type": "text", "text": turn.text})
        messages.append({"role": "user", "content": content})
        if turn.answer is not None:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": turn.answer}]})
    return messages
