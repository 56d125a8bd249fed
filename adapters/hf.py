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

import functools
import hashlib
import inspect
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
    load_errors,
    load_pretrained,
    runtime_provenance,
    split_scored,
    with_tokens,
)
from owleval.adapters.options import number_option

#: model types checked here on tiny random checkpoints (tests/test_hf_adapter.py); others that
#: AutoModelForImageTextToText loads are likely to work but are not claimed
TESTED_FAMILIES = ("gemma3", "idefics3", "llava", "llava_onevision", "qwen2_5_vl", "qwen2_vl", "smolvlm")
#: adapters for checkpoints this one cannot take, by model type
_OTHER_ADAPTERS = {"mplug-owl": "mplug-owl", "mplug_owl": "mplug-owl", "blip-2": "minigpt4"}
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no", "")


def supported_families() -> list[str]:
    """The tested families the installed transformers has (``owleval models hf`` lists them)."""
    try:
        from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
    except ImportError:
        return []
    return [family for family in TESTED_FAMILIES if family in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES]


class _NoVideoProcessor:
    """Stands in for a video processor that cannot be built here: OwlEval sends no videos, but some processors read
    a video processor's frame defaults while rendering any chat template."""

    num_frames = None
    fps = None


@functools.cache
def image_only(processor_cls: type) -> type:
    """``processor_cls`` without its video processor (whose construction needs torchvision).

    transformers reads a processor's parts from its ``__init__`` signature, so the subclass's signature is the
    original one less ``video_processor``; the class keeps the original's name, so it saves as that class.
    """

    class ImageOnly(processor_cls):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any):
            kwargs.pop("video_processor", None)
            super().__init__(*args, video_processor=None, **kwargs)
            self.video_processor = _NoVideoProcessor()

    signature = inspect.signature(processor_cls.__init__)
    ImageOnly.__init__.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p for name, p in signature.parameters.items() if name != "video_processor"]
    )
    ImageOnly.__name__ = ImageOnly.__qualname__ = processor_cls.__name__
    ImageOnly.__doc__ = f"{processor_cls.__name__} for images only (its video processor needs torchvision)"
    return ImageOnly


def build_image_only_processor(processor_cls: type, source: str, trust_remote_code: bool) -> Any:
    """The checkpoint's processor built from its image processor, tokenizer and saved processor settings."""
    from transformers import AutoImageProcessor, AutoTokenizer

    settings, _ = processor_cls.get_processor_dict(source)
    accepted = set(inspect.signature(processor_cls.__init__).parameters) - {"self", "image_processor", "tokenizer", "video_processor"}
    kwargs = {key: value for key, value in settings.items() if key in accepted}
    image_processor = AutoImageProcessor.from_pretrained(source, trust_remote_code=trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    return image_only(processor_cls)(image_processor=image_processor, tokenizer=tokenizer, **kwargs)


def _flag(options: Mapping[str, str], key: str) -> bool:
    value = (options.get(key) or "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise AdapterError(f"option {key}={options[key]!r}: use true or false")


def _image_text_to_text(source: str, trust_remote_code: bool) -> Any:
    """The checkpoint's config, refused (naming what is missing and what to use instead) unless
    ``AutoModelForImageTextToText`` takes it."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    except load_errors() as exc:
        if "trust_remote_code" in str(exc) and not trust_remote_code:
            raise AdapterError(
                f"checkpoint {source!r} needs its own Python code to load; if you trust it, pass -o trust_remote_code=true"
            ) from exc
        raise AdapterError(f"cannot read the config of checkpoint {source!r}: {exc}") from exc
    model_type = getattr(config, "model_type", None)
    remote = "AutoModelForImageTextToText" in (getattr(config, "auto_map", None) or {})
    if model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES or (remote and trust_remote_code):
        return config
    if remote:
        raise AdapterError(
            f"checkpoint {source!r} ({model_type!r}) loads through its own Python code; if you trust it, pass "
            "-o trust_remote_code=true"
        )
    other = _OTHER_ADAPTERS.get(str(model_type))
    instead = f"use --model {other}" if other else (
        "a text-only model cannot answer questions about images; for a vision-language model served elsewhere use "
        "--model openai"
    )
    raise AdapterError(
        f"checkpoint {source!r} is a {model_type!r} model, which AutoModelForImageTextToText does not load (not an "
        f"image-text-to-text model in transformers {_transformers_version()}): {instead}"
    )


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


def _load_processor(source: str, model_type: str, trust_remote_code: bool) -> tuple[Any, str]:
    """(processor, how it was built): ``AutoProcessor``, else the family's processor for images only."""
    from transformers import AutoProcessor
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    try:
        return AutoProcessor.from_pretrained(source, trust_remote_code=trust_remote_code), "AutoProcessor"
    except load_errors() as exc:
        first = exc
    name = PROCESSOR_MAPPING_NAMES.get(model_type)
    import transformers

    processor_cls = getattr(transformers, name, None) if isinstance(name, str) else None
    if processor_cls is None or "video_processor" not in inspect.signature(processor_cls.__init__).parameters:
        raise AdapterError(f"cannot load the processor of checkpoint {source!r}: {first}") from first
    try:
        processor = build_image_only_processor(processor_cls, source, trust_remote_code)
    except load_errors() as exc:
        raise AdapterError(f"cannot load the processor of checkpoint {source!r}: {first}; without its video "
                           f"processor either: {exc}") from exc
    return processor, f"{processor_cls.__name__} for images only (AutoProcessor failed: {str(first).splitlines()[0][:200]})"


def _pixel_options(options: Mapping[str, str], image_processor: Any, source: str) -> dict[str, Any]:
    """``-o max_pixels=`` / ``-o image_size=`` as processor-call arguments, refused where the processor has no such
    setting (a fixed-size processor would silently ignore them)."""
    hints: set[str] = set()
    for klass in getattr(getattr(image_processor, "valid_kwargs", None), "__mro__", ()):
        hints |= set(getattr(klass, "__annotations__", {}))
    name = type(image_processor).__name__
    call: dict[str, Any] = {}
    if options.get("max_pixels"):
        if "max_pixels" not in hints:
            raise AdapterError(f"option max_pixels: the image processor of {source!r} ({name}) has no pixel budget")
        budget = number_option(options, "max_pixels", 0, minimum=1)
        # Qwen-style processors keep their pixel bounds in ``size`` (shortest_edge = min_pixels, longest = max)
        least = getattr(getattr(image_processor, "size", None), "shortest_edge", None) or 1
        call["size"] = {"shortest_edge": min(least, budget), "longest_edge": budget}
    if options.get("image_size"):
        size = getattr(image_processor, "size", None)
        if "max_pixels" in hints or getattr(size, "longest_edge", None) is None:
            raise AdapterError(
                f"option image_size: the image processor of {source!r} ({name}) does not resize to a longest edge"
                + ("; use max_pixels" if "max_pixels" in hints else "")
            )
        call["size"] = {"longest_edge": number_option(options, "image_size", 0, minimum=1)}
    return call


def _plain(value: Any) -> Any:
    """A processor setting as JSON (SizeDicts and tuples become dicts and lists; None fields dropped)."""
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class HFAdapter(LocalModelAdapter):
    name: ClassVar[str] = "hf"
    description: ClassVar[str] = (
        "any image-text-to-text checkpoint via transformers AutoModelForImageTextToText + its processor's chat "
        "template; tested families here: " + (", ".join(supported_families()) or "none")
    )
    default_checkpoint: ClassVar[str | None] = None
    option_help: ClassVar[Mapping[str, str]] = {
        "attn_implementation": "attention kernel: sdpa (default), eager or flash_attention_2",
        "decode": DECODE_HELP,
        "system": "a system prompt before the first turn (default none; the template's own default, if any, applies)",
        "max_pixels": "pixel budget per image, for processors with dynamic resolution (Qwen2-VL family)",
        "image_size": "longest image edge in pixels, for processors that resize to one (Idefics3, SmolVLM)",
        "image_aspect": "pad (to a square in the mean colour, as LLaVA-1.5 was trained; default for llava checkpoints "
        "whose processor centre-crops) or crop (images as the processor takes them; default otherwise)",
        "trust_remote_code": "true to run the checkpoint's own Python code (only for checkpoints you trust)",
    }
    option_defaults: ClassVar[Mapping[str, str]] = {
        "attn_implementation": "sdpa", "decode": DECODE_DEFAULT, "system": "none", "max_pixels": "the processor's own",
        "image_size": "the processor's own", "image_aspect": "pad for llava checkpoints whose processor centre-crops, else crop",
        "trust_remote_code": "false",
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
        config = _image_text_to_text(source, trust)
        processor, processor_source = _load_processor(source, config.model_type, trust)
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
        call_kwargs = _pixel_options(opts, image_processor, source)
        aspect, aspect_default = image_aspect(opts, image_processor, config.model_type == "llava" and center_crops(image_processor))
        model = load_pretrained(  # device_map: weights go straight to the device, not through CPU memory first
            _auto_model(), source, "checkpoint", dtype=dtype, attn_implementation=opts.get("attn_implementation"),
            device_map=device, trust_remote_code=trust,
        )
        tokenizer.padding_side = "left"  # generation continues from the right end of every row
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
        model.eval()
        facts = {
            "model_type": config.model_type,
            "processor": processor_source,
            "chat_template_sha256": hashlib.sha256(processor.chat_template.encode("utf-8")).hexdigest(),
            "call_kwargs": call_kwargs,
            "image_aspect": aspect,
            "image_aspect_default": aspect_default,
        }
        return cls(options, model, processor, device, dtype, facts)

    def messages(self, conversation: Conversation) -> list[dict[str, Any]]:
        return chat_messages(conversation, self.system)

    def prompt(self, conversation: Conversation) -> str:
        """The text prompt for one conversation: the checkpoint's own chat template, ready for the answer."""
        return self.processor.apply_chat_template(self.messages(conversation), add_generation_prompt=True, tokenize=False)

    def _images(self, conversation: Conversation) -> list[Any]:
        images = [ref.load() for ref in conversation.images]
        if self.facts["image_aspect"] == "pad":
            mean = getattr(self.processor.image_processor, "image_mean", None) or (0.5, 0.5, 0.5)
            images = [expand_to_square(img, mean) for img in images]
        return images

    def inputs(self, conversations: Sequence[Conversation]) -> Any:
        """The processor's tensors for a batch (left-padded), on the model's device and dtype."""
        import torch

        prompts = [self.prompt(c) for c in conversations]
        images = [self._images(c) for c in conversations]
        bos = self.processor.tokenizer.bos_token
        # the template writes the special tokens itself; the tokenizer adds BOS only where it does not
        add_special = not (bos and all(p.startswith(bos) for p in prompts))
        inputs = self.processor(
            images=images if any(images) else None, text=prompts, padding=True, return_tensors="pt",
            add_special_tokens=add_special, **self.call_kwargs,
        )
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
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return with_tokens([text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)], scored)

    def answer_settings(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "image_aspect": self.facts["image_aspect"],
            "processor_call": _plain(self.call_kwargs),
            "chat_template_sha256": self.facts["chat_template_sha256"],
        }

    def processor_settings(self) -> dict[str, Any]:
        """The processor settings that change what the model sees: the image processor's saved settings and the
        processor's own (image tokens per image and the like)."""
        image_processor = self.processor.image_processor
        saved = {k: _plain(v) for k, v in image_processor.to_dict().items() if not k.startswith("_")}
        own = {
            k: _plain(getattr(self.processor, k))
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
            "chat_template_sha256": self.facts["chat_template_sha256"],
            "system": self.system,
            "image_aspect": self.facts["image_aspect"] + (" (default)" if self.facts["image_aspect_default"] else ""),
            "processor_call": _plain(self.call_kwargs),
            "processor_settings": self.processor_settings(),
            **self.decode_log.provenance(),
        }

    def close(self) -> None:
        self.model = None
        self.processor = None


def _auto_model() -> Any:
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText
