"""Any image-text-to-text checkpoint through transformers: ``AutoModelForImageTextToText``, ``AutoProcessor`` and the
checkpoint's own chat template (``--model hf --checkpoint ID_OR_DIR``).

A conversation becomes chat messages (each turn's images as image parts, earlier turns with the model's own
answers, an optional system prompt), the prompt is the checkpoint's ``apply_chat_template(add_generation_prompt=
True)``, and batches are left-padded so a batch gives the same greedy answers as one conversation at a time.
New families arrive with transformers releases, not with code here.

Some processors (Qwen2/2.5-VL, LLaVA-OneVision, SmolVLM) also hold a video processor that needs torchvision; when
``AutoProcessor`` cannot build one, the processor is built from the checkpoint's image processor and tokenizer
without it (OwlEval asks about images only), and provenance says so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from owleval.adapters.base import (
    AdapterError,
    Conversation,
    GenerationConfig,
    LoadOptions,
    resolve_device,
    resolve_dtype,
)
from owleval.adapters.decode import DECODE_DEFAULT, DECODE_HELP, DecodeLog, decode_mode, hf_generate
from owleval.adapters.hf_common import (
    LocalModelAdapter,
    center_crops,
    chat_messages,
    checkpoint_source,
    expand_to_square,
    generation_kwargs,
    image_aspect,
    load_pretrained,
    runtime_provenance,
    split_scored,
    with_tokens,
)
from owleval.adapters.hf_families import TESTED_FAMILIES, described_families, supported_families  # noqa: F401 - re-exported
from owleval.adapters.hf_load import image_only  # noqa: F401 - re-exported for checkpoint builders
from owleval.adapters.hf_load import chat_template, image_text_to_text_config, load_processor, pixel_options, plain
from owleval.adapters.hf_prompt import FIXED_CONVERSATION, dry_run, template_facts
from owleval.adapters.hub import check_hub_reachable
from owleval.adapters.untrusted import SCHEME, marker_strings, neutralise_conversation

_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no", "")


def _flag(options: Mapping[str, str], key: str) -> bool:
    value = (options.get(key) or "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise AdapterError(f"option {key}={options[key]!r}: use true or false")


class HFAdapter(LocalModelAdapter):
    name: ClassVar[str] = "hf"
    description: ClassVar[str] = (
        "any image-text-to-text checkpoint via transformers AutoModelForImageTextToText + its processor's chat "
        f"template; tested on tiny checkpoints of {len(TESTED_FAMILIES)} families (`owleval models hf` lists them)"
    )

    @classmethod
    def details(cls) -> str:
        """Which families were tested, which are refused here and which are only expected to work."""
        return described_families()
    default_checkpoint: ClassVar[str | None] = None
    option_help: ClassVar[Mapping[str, str]] = {
        "attn_implementation": "attention kernel: sdpa (default), eager or flash_attention_2",
        "decode": DECODE_HELP,
        "system": "a system prompt before the first turn (default none; the template's own default, if any, applies)",
        "chat_template": "which of the checkpoint's named chat templates (additional_chat_templates/) to use",
        "max_pixels": "pixel budget per image, for processors with dynamic resolution (Qwen2-VL family, GLM-4V)",
        "image_size": "longest image edge in pixels, for processors that resize to one (Idefics3, SmolVLM)",
        "image_aspect": "pad (to a square in the mean colour, as LLaVA-1.5 was trained; default for llava checkpoints "
        "whose processor centre-crops) or crop (images as the processor takes them; default otherwise)",
        "trust_remote_code": "true to run the checkpoint's own Python code (only for checkpoints you trust)",
    }
    option_defaults: ClassVar[Mapping[str, str]] = {
        "attn_implementation": "sdpa", "decode": DECODE_DEFAULT, "system": "none", "chat_template": "default",
        "max_pixels": "the processor's own", "image_size": "the processor's own",
        "image_aspect": "pad for llava checkpoints whose processor centre-crops, else crop", "trust_remote_code": "false",
    }

    def __init__(self, options: LoadOptions, model: Any, processor: Any, device: str, dtype: Any, facts: dict[str, Any]):
        super().__init__(options)
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype
        self.facts = facts
        self.system = options.options.get("system") or None
        self.call_kwargs: dict[str, Any] = facts["call_kwargs"]
        self.template: str = facts.pop("template")
        self.markers = marker_strings(processor.tokenizer, processor)
        self.decode_log = DecodeLog(options.options, device)

    @classmethod
    def load(cls, options: LoadOptions) -> HFAdapter:
        opts = options.options
        if not options.checkpoint:
            raise AdapterError("--model hf needs --checkpoint ID_OR_DIR (a hub id or a local checkpoint folder)")
        trust = _flag(opts, "trust_remote_code")
        source = checkpoint_source(options.checkpoint, "checkpoint")
        device = resolve_device(options.device)
        dtype = resolve_dtype(options.dtype, device)
        decode_mode(opts, device)  # a bad value fails before the weights load
        if not _is_dir(source):
            check_hub_reachable(source)
        config = image_text_to_text_config(source, trust)
        processor, processor_source = load_processor(source, config.model_type, trust)
        image_processor = getattr(processor, "image_processor", None)
        tokenizer = getattr(processor, "tokenizer", None)
        if image_processor is None or tokenizer is None:
            raise AdapterError(f"the processor of {source!r} ({type(processor).__name__}) has no image processor and tokenizer")
        if not getattr(processor, "chat_template", None):
            fix = " (or --model llava, which knows the LLaVA-1.5 prompt)" if config.model_type == "llava" else ""
            raise AdapterError(
                f"checkpoint {source!r} has no chat template, so its prompt format is unknown: add one to the folder "
                f"(chat_template.jinja){fix}"
            )
        template, template_name = chat_template(processor, source, opts.get("chat_template") or None)
        call_kwargs = pixel_options(opts, image_processor, source)
        aspect, aspect_default = image_aspect(opts, image_processor, config.model_type == "llava" and center_crops(image_processor))
        tokenizer.padding_side = "left"  # generation continues from the right end of every row
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
        facts = {
            "model_type": config.model_type,
            "encoder_decoder": bool(getattr(config, "is_encoder_decoder", False)),
            "processor": processor_source,
            "template": template,
            "chat_template": template_name,
            "chat_template_sha256": hashlib.sha256(template.encode("utf-8")).hexdigest(),
            "call_kwargs": call_kwargs,
            "image_aspect": aspect,
            "image_aspect_default": aspect_default,
        }
        adapter = cls(options, None, processor, device, dtype, facts)
        # the system role, the template and every -o processor setting on one tiny batch, before any weights load
        adapter.facts.update(template_facts(adapter.render, adapter.template))
        dry_run(adapter, source, opts)
        adapter.model = load_pretrained(  # device_map: weights go straight to the device, not through CPU memory first
            _auto_model(), source, "checkpoint", dtype=dtype, attn_implementation=opts.get("attn_implementation"),
            device_map=device, trust_remote_code=trust,
        )
        adapter.model.eval()
        return adapter

    def messages(self, conversation: Conversation) -> list[dict[str, Any]]:
        """Chat messages with every question and answer neutralised (:mod:`owleval.adapters.untrusted`)."""
        return chat_messages(neutralise_conversation(conversation, self.markers), self.system)

    def render(self, messages: list[dict[str, Any]]) -> str:
        """``messages`` through the checkpoint's chat template, ready for the answer."""
        return self.processor.apply_chat_template(messages, chat_template=self.template, add_generation_prompt=True,
                                                  tokenize=False)

    def prompt(self, conversation: Conversation) -> str:
        """The text prompt for one conversation: the checkpoint's own chat template, ready for the answer."""
        return self.render(self.messages(conversation))

    def _images(self, conversation: Conversation) -> list[Any]:
        return self.prepare_images([ref.load() for ref in conversation.images])

    def prepare_images(self, images: list[Any]) -> list[Any]:
        if self.facts["image_aspect"] == "pad":
            mean = getattr(self.processor.image_processor, "image_mean", None) or (0.5, 0.5, 0.5)
            images = [expand_to_square(img, mean) for img in images]
        return images

    def encode(self, prompts: list[str], images: list[list[Any]]) -> Any:
        """The processor's tensors for rendered prompts and their images (left-padded, on the CPU)."""
        bos = self.processor.tokenizer.bos_token
        # the template writes the special tokens itself; the tokenizer adds BOS only where it does not
        add_special = not (bos and all(p.startswith(bos) for p in prompts))
        return self.processor(
            images=images if any(images) else None, text=prompts, padding=True, return_tensors="pt",
            add_special_tokens=add_special, **self.call_kwargs,
        )

    def inputs(self, conversations: Sequence[Conversation]) -> Any:
        """The processor's tensors for a batch (left-padded), on the model's device and dtype."""
        import torch

        inputs = self.encode([self.prompt(c) for c in conversations], [self._images(c) for c in conversations])
        inputs = inputs.to(self.device)
        for key, value in inputs.items():
            if key.startswith("pixel_values") and torch.is_floating_point(value):
                inputs[key] = value.to(self.dtype)
        return inputs

    def _generate_batch(self, conversations: Sequence[Conversation], config: GenerationConfig) -> list[str]:
        import torch

        inputs = self.inputs(conversations)
        tokenizer = self.processor.tokenizer
        with torch.inference_mode():
            output = hf_generate(
                self.model, self.decode_log, **inputs, **generation_kwargs(config), pad_token_id=tokenizer.pad_token_id
            )
        output, scored = split_scored(output, tokenizer, config.top_logprobs)
        # a decoder-only model returns prompt + answer; an encoder-decoder one only its decoder's tokens
        new_tokens = output if self.facts["encoder_decoder"] else output[:, inputs["input_ids"].shape[1] :]
        return with_tokens([text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)], scored)

    def checkpoint_generation_config(self) -> dict[str, Any]:
        """The checkpoint's own generation defaults (generation_config.json, or those transformers derives from its
        config) that differ from transformers' defaults: ``generate()`` starts from them, so they change answers."""
        config = getattr(self.model, "generation_config", None)
        if config is None:
            return {}
        settings = config.to_diff_dict()
        settings.pop("transformers_version", None)
        return plain(dict(sorted(settings.items())))

    def answer_settings(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "image_aspect": self.facts["image_aspect"],
            "processor_call": plain(self.call_kwargs),
            "chat_template": self.facts["chat_template"],
            "chat_template_sha256": self.facts["chat_template_sha256"],
            "rendered_template_sha256": self.facts["rendered_template_sha256"],
            "template_uses_date": self.facts["template_uses_date"],
            "untrusted_text": SCHEME,
            "checkpoint_generation_config": self.checkpoint_generation_config(),
            # what the adapter itself sets on every generate() call beside the decoding flags
            "adapter_generate": {"pad_token_id": self.processor.tokenizer.pad_token_id, "padding_side": "left",
                                 "answer_tokens": "decoder output" if self.facts["encoder_decoder"] else "after the prompt"},
        }

    def processor_settings(self) -> dict[str, Any]:
        """The processor settings that change what the model sees: the image processor's saved settings and the
        processor's own (image tokens per image and the like)."""
        image_processor = self.processor.image_processor
        saved = {k: plain(v) for k, v in image_processor.to_dict().items() if not k.startswith("_")}
        own = {
            k: plain(getattr(self.processor, k))
            for k in ("image_seq_len", "image_seq_length", "num_image_tokens", "vision_feature_select_strategy",
                      "patch_size", "num_additional_image_tokens", "vision_aspect_ratio")
            if getattr(self.processor, k, None) is not None
        }
        return {"image_processor_class": type(image_processor).__name__, "image_processor": saved, **own}

    def provenance(self) -> dict[str, Any]:
        return {
            **super().provenance(),
            **runtime_provenance(self.device, self.dtype, self.model.config),
            "model_type": self.facts["model_type"],
            "model_class": type(self.model).__name__,
            "processor": self.facts["processor"],
            "chat_template": self.facts["chat_template"],
            "chat_template_sha256": self.facts["chat_template_sha256"],
            "rendered_template_sha256": self.facts["rendered_template_sha256"],
            "template_uses_date": self.facts["template_uses_date"],
            "fixed_conversation": FIXED_CONVERSATION,
            "system": self.system,
            "image_aspect": self.facts["image_aspect"] + (" (default)" if self.facts["image_aspect_default"] else ""),
            "processor_call": plain(self.call_kwargs),
            "processor_settings": self.processor_settings(),
            "checkpoint_generation_config": self.checkpoint_generation_config(),
            **self.decode_log.provenance(),
        }

    def close(self) -> None:
        self.model = None
        self.processor = None


def _is_dir(source: str) -> bool:
    from pathlib import Path

    return Path(source).expanduser().is_dir()


def _auto_model() -> Any:
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText
