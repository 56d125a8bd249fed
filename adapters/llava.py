"""LLaVA (llava-hf layout, e.g. ``llava-hf/llava-1.5-13b-hf``) through transformers' ``LlavaForConditionalGeneration``.

The prompt comes from the checkpoint's own chat template when it ships one; otherwise it is the LLaVA-1.5 form
documented for the llava-hf checkpoints, earlier turns first:
``USER: <image>\\n{q1} ASSISTANT: {a1}</s>USER: {q2} ASSISTANT:``. Prompts are batched with left padding, so a
batch gives the same greedy answers as asking one conversation at a time.

Images are padded to a square in the image processor's mean colour before the processor sees them
(``-o image_aspect=pad``, the default when the processor centre-crops, as the llava-hf LLaVA-1.5 ones do): LLaVA-1.5
was trained and evaluated that way (``image_aspect_ratio: pad``), while the llava-hf processors alone would
centre-crop, cutting off the sides of wide images. ``-o image_aspect=crop`` gives the processor's own crop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from owleval.adapters.base import (
    AdapterError,
    Conversation,
    GenerationConfig,
    ImageRef,
    LoadOptions,
    resolve_device,
    resolve_dtype,
)
from owleval.adapters.untrusted import SCHEME, marker_strings, neutralise_conversation
from owleval.adapters.decode import DECODE_DEFAULT, DECODE_HELP, DecodeLog, decode_mode, hf_generate
from owleval.adapters.hf_common import (
    LocalModelAdapter,
    center_crops,
    chat_messages,
    check_model_type,
    checkpoint_source,
    expand_to_square,
    generation_kwargs,
    image_aspect,
    load_errors,
    load_pretrained,
    runtime_provenance,
    split_scored,
    with_tokens,
)

IMAGE_TOKEN = "<image>"


def build_llava_prompt(conversation: Conversation, image_token: str = IMAGE_TOKEN, eos_token: str = "</s>") -> str:
    """The LLaVA-1.5 prompt: one ``USER: ... ASSISTANT:`` exchange per turn, each image as ``<image>\\n``.

    Earlier turns end with their answer and the end-of-sequence token, as in the llava-hf multi-turn format.
    """
    parts = []
    for turn in conversation.turns:
        images = f"{image_token}\n" * len(turn.images)
        part = f"USER: {images}{turn.text} ASSISTANT:"
        if turn.answer is not None:
            part += f" {turn.answer}{eos_token}"
        parts.append(part)
    return "".join(parts)


class LlavaAdapter(LocalModelAdapter):
    name: ClassVar[str] = "llava"
    description: ClassVar[str] = "LLaVA-1.5 (llava-hf checkpoints) via transformers LlavaForConditionalGeneration"
    default_checkpoint: ClassVar[str | None] = "llava-hf/llava-1.5-13b-hf"
    option_help: ClassVar[Mapping[str, str]] = {
        "attn_implementation": "attention kernel: sdpa (default), eager or flash_attention_2",
        "prompt": "auto (the checkpoint's chat template if it has one, else LLaVA-1.5), template, or llava-1.5",
        "decode": DECODE_HELP,
        "image_aspect": "pad (to a square in the mean colour before the processor, as LLaVA-1.5 was trained; default "
        "when the processor centre-crops) or crop (the processor's own centre crop)",
    }
    option_defaults: ClassVar[Mapping[str, str]] = {
        "attn_implementation": "sdpa", "prompt": "auto", "decode": DECODE_DEFAULT,
        "image_aspect": "pad when the processor centre-crops, else crop",
    }

    def __init__(self, options: LoadOptions, model: Any, processor: Any, device: str, dtype: Any, prompt_format: str):
        super().__init__(options)
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype
        self.prompt_format = prompt_format
        self.image_aspect, self.image_aspect_default = image_aspect(
            options.options, processor.image_processor, center_crops(processor.image_processor)
        )
        self.decode_log = DecodeLog(options.options, device)

    @classmethod
    def load(cls, options: LoadOptions) -> LlavaAdapter:
        source = checkpoint_source(options.checkpoint or cls.default_checkpoint or "", "LLaVA checkpoint")
        prompt = options.options.get("prompt", "auto")
        if prompt not in ("auto", "template", "llava-1.5"):
            raise AdapterError(f"option prompt={prompt!r}: use auto, template or llava-1.5")
        device = resolve_device(options.device)
        dtype = resolve_dtype(options.dtype, device)
        decode_mode(options.options, device)  # a bad value fails before the weights load
        image_aspect(options.options, None, False)  # so does a bad image_aspect
        from transformers import AutoProcessor, LlavaForConditionalGeneration

        check_model_type(source, "LLaVA checkpoint", ("llava",))
        try:
            processor = AutoProcessor.from_pretrained(source)
        except load_errors() as exc:
            raise AdapterError(f"cannot load the processor of LLaVA checkpoint {source!r}: {exc}") from exc
        if not hasattr(processor, "image_processor") or not hasattr(processor, "tokenizer"):
            raise AdapterError(f"{source!r} has no LLaVA processor (image processor + tokenizer)")
        attn = options.options.get("attn_implementation")
        model = load_pretrained(  # device_map: weights go straight to the device, not through CPU memory first
            LlavaForConditionalGeneration, source, "LLaVA checkpoint", dtype=dtype, attn_implementation=attn,
            device_map=device,
        )
        has_template = bool(getattr(processor, "chat_template", None))
        if prompt == "template" and not has_template:
            raise AdapterError(f"option prompt=template, but {source!r} has no chat template")
        prompt_format = "template" if prompt == "template" or (prompt == "auto" and has_template) else "llava-1.5"
        tokenizer = processor.tokenizer
        tokenizer.padding_side = "left"  # generation continues from the right end of every row
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
        model.to(device).eval()
        return cls(options, model, processor, device, dtype, prompt_format)

    def prompt(self, conversation: Conversation) -> str:
        """The text prompt for one conversation, in this checkpoint's format, its questions and answers neutralised
        (:mod:`owleval.adapters.untrusted`)."""
        if not hasattr(self, "_markers"):
            self._markers = marker_strings(self.processor.tokenizer, self.processor, (IMAGE_TOKEN,))
        conversation = neutralise_conversation(conversation, self._markers)
        if self.prompt_format == "template":
            return self.processor.apply_chat_template(
                chat_messages(conversation), add_generation_prompt=True, tokenize=False
            )
        image_token = getattr(self.processor, "image_token", IMAGE_TOKEN)
        return build_llava_prompt(conversation, image_token, self.processor.tokenizer.eos_token or "</s>")

    def image(self, ref: ImageRef) -> Any:
        """An image as the processor gets it: padded to a square in the processor's mean colour under ``pad``."""
        image = ref.load()
        if self.image_aspect == "pad":
            image = expand_to_square(image, self.processor.image_processor.image_mean)
        return image

    def answer_settings(self) -> dict[str, Any]:
        return {"image_aspect": self.image_aspect, "prompt_format": self.prompt_format, "untrusted_text": SCHEME}

    def _generate_batch(self, conversations: Sequence[Conversation], config: GenerationConfig) -> list[str]:
        import torch

        prompts = [self.prompt(c) for c in conversations]
        images = [self.image(ref) for c in conversations for ref in c.images]
        inputs = self.processor(images=images or None, text=prompts, padding=True, return_tensors="pt")
        inputs = inputs.to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        tokenizer = self.processor.tokenizer
        with torch.inference_mode():
            output = hf_generate(
                self.model, self.decode_log, **inputs, **generation_kwargs(config), pad_token_id=tokenizer.pad_token_id
            )
        output, scored = split_scored(output, tokenizer, config.top_logprobs)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return with_tokens([text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)], scored)

    def provenance(self) -> dict[str, Any]:
        return {
            **super().provenance(),
            **runtime_provenance(self.device, self.dtype, self.model.config),
            "prompt_format": self.prompt_format,
            "image_aspect": self.image_aspect + (" (default)" if self.image_aspect_default else ""),
            **self.decode_log.provenance(),
        }

    def close(self) -> None:
        self.model = None
        self.processor = None
