"""What the ``hf`` adapter reads before any weights: the checkpoint's config (refused, with the reason, unless
``AutoModelForImageTextToText`` takes it), its processor (``AutoProcessor``, else the family's processor for
images only when the video processor needs torchvision), and which of its chat templates to use.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from owleval.adapters.base import AdapterError
from owleval.adapters.hf_common import load_errors
from owleval.adapters.options import number_option
from collections.abc import Mapping

#: adapters for checkpoints this one cannot take, by model type
_OTHER_ADAPTERS = {"mplug-owl": "mplug-owl", "mplug_owl": "mplug-owl", "blip-2": "minigpt4"}


def transformers_version() -> str:
    import transformers

    return transformers.__version__


def image_text_to_text_families() -> set[str]:
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    return set(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES)


def _why_not(source: str, model_type: str, config: Any) -> str:
    """Why a checkpoint whose model type AutoModelForImageTextToText does not load cannot be used, and what to do."""
    from transformers.models.auto import modeling_auto

    other = _OTHER_ADAPTERS.get(model_type)
    if other:
        return f"use --model {other}"
    families = image_text_to_text_families()
    parts = [f"{model_type}_{suffix}" for suffix in ("thinker", "vision")]
    inner = next((p for p in parts if p in families), None)
    if inner:
        return (f"its {inner!r} part is an image-text-to-text model, but this checkpoint holds the whole {model_type!r} "
                "model; save the part on its own, or serve the model and use --model openai")
    multimodal = getattr(modeling_auto, "MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES", {})
    if model_type in multimodal or getattr(config, "vision_config", None) is not None:
        return ("it is a multimodal model that transformers loads through another auto class (not image-text-to-text);"
                " serve it (e.g. vLLM) and use --model openai")
    return "a text-only model cannot answer questions about images; for a vision-language model served elsewhere use --model openai"


def image_text_to_text_config(source: str, trust_remote_code: bool) -> Any:
    """The checkpoint's config, refused (naming what is missing and what to use instead) unless
    ``AutoModelForImageTextToText`` takes it."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    except load_errors() as exc:
        if "trust_remote_code" in str(exc) and not trust_remote_code:
            raise AdapterError(
                f"checkpoint {source!r} needs its own Python code to load; if you trust it, pass -o trust_remote_code=true"
            ) from exc
        raise AdapterError(f"cannot read the config of checkpoint {source!r}: {exc}") from exc
    model_type = str(getattr(config, "model_type", None))
    remote = "AutoModelForImageTextToText" in (getattr(config, "auto_map", None) or {})
    if model_type in image_text_to_text_families() or (remote and trust_remote_code):
        return config
    if remote:
        raise AdapterError(
            f"checkpoint {source!r} ({model_type!r}) loads through its own Python code; if you trust it, pass "
            "-o trust_remote_code=true"
        )
    raise AdapterError(
        f"checkpoint {source!r} is a {model_type!r} model, which AutoModelForImageTextToText does not load (not an "
        f"image-text-to-text model in transformers {transformers_version()}): {_why_not(source, model_type, config)}"
    )


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
    Positional arguments are bound to that signature and passed on by name, so processors whose video processor
    comes first (LlavaNextVideo, VideoLlava, PerceptionLM) get each part in its place.
    """
    from transformers import ProcessorMixin

    signature = inspect.signature(processor_cls.__init__)
    reduced = signature.replace(parameters=[p for name, p in signature.parameters.items() if name != "video_processor"])
    parts = ProcessorMixin.get_attributes.__func__(processor_cls)  # type: ignore[attr-defined]  # the original order

    class ByName(ProcessorMixin):
        """Sits between the family's class and ProcessorMixin: the family passes its parts positionally in its own
        order (video processor included), ProcessorMixin would map them onto the parts less the video processor."""

        def __init__(self, *args: Any, **kwargs: Any):
            kwargs.update(zip(parts, args, strict=False))
            kwargs.pop("video_processor", None)
            ProcessorMixin.__init__(self, **kwargs)

    class ImageOnly(processor_cls, ByName):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any):
            kwargs.pop("video_processor", None)
            bound = reduced.bind_partial(self, *args, **kwargs)
            named = dict(bound.arguments)
            named.pop("self", None)
            for name, param in reduced.parameters.items():
                if param.kind is inspect.Parameter.VAR_KEYWORD and name in named:
                    named.update(named.pop(name))
                elif param.kind is inspect.Parameter.VAR_POSITIONAL and name in named:
                    extra = named.pop(name)
                    if extra:
                        raise TypeError(f"{processor_cls.__name__}: unexpected positional arguments {extra!r}")
            super().__init__(video_processor=None, **named)
            self.video_processor = _NoVideoProcessor()

    ImageOnly.__init__.__signature__ = reduced  # type: ignore[attr-defined]
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


def one_line(exc: BaseException, limit: int = 600) -> str:
    """An error as one line with its causes (``Error: message <- Cause: message``), each part shortened so the
    causes are never cut away: the first line of a wrapper rarely says why."""
    parts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(parts) < 3:
        text = " ".join(line.strip() for line in str(seen).splitlines() if line.strip())
        parts.append(f"{type(seen).__name__}: {text}" if text else type(seen).__name__)
        seen = seen.__cause__ or seen.__context__
    share = max(80, limit // len(parts))
    return " <- ".join(part if len(part) <= share else part[: share - 1] + "…" for part in parts)


def _torchvision_fix(exc: BaseException, model_type: str) -> str:
    """The fix when a processor failed for want of torchvision (its image processor exists only as a torchvision
    class in this transformers), else nothing."""
    if "torchvision" not in one_line(exc, limit=10_000).lower():
        return ""
    import torch

    return (f". The {model_type!r} processor needs torchvision, which does not import here: install the torchvision "
            f"build made for this torch ({torch.__version__}) from the same package index as torch, or serve the model "
            "and use --model openai")


def load_processor(source: str, model_type: str, trust_remote_code: bool) -> tuple[Any, str]:
    """(processor, how it was built): ``AutoProcessor``, else the family's processor for images only."""
    import transformers
    from transformers import AutoProcessor
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    try:
        return AutoProcessor.from_pretrained(source, trust_remote_code=trust_remote_code), "AutoProcessor"
    except load_errors() as exc:
        first = exc
    name = PROCESSOR_MAPPING_NAMES.get(model_type)
    processor_cls = getattr(transformers, name, None) if isinstance(name, str) else None
    if processor_cls is None or "video_processor" not in inspect.signature(processor_cls.__init__).parameters:
        raise AdapterError(f"cannot load the processor of checkpoint {source!r}: {one_line(first)}"
                           + _torchvision_fix(first, model_type)) from first
    try:
        processor = build_image_only_processor(processor_cls, source, trust_remote_code)
    except load_errors() as exc:
        raise AdapterError(f"cannot load the processor of checkpoint {source!r}: {one_line(first)}; without its video "
                           f"processor either: {one_line(exc)}" + _torchvision_fix(exc, model_type)) from exc
    return processor, f"{processor_cls.__name__} for images only (AutoProcessor failed: {one_line(first)})"


def chat_template(processor: Any, source: str, name: str | None) -> tuple[str, str]:
    """(template text, its name): ``-o chat_template=NAME`` among the checkpoint's named templates
    (``additional_chat_templates/``), else its default one."""
    templates = getattr(processor, "chat_template", None)
    if isinstance(templates, dict):
        names = ", ".join(sorted(templates))
        if name:
            if name not in templates:
                raise AdapterError(f"option chat_template={name!r}: checkpoint {source!r} has the templates {names}")
            return templates[name], name
        if "default" in templates:
            return templates["default"], "default"
        raise AdapterError(f"checkpoint {source!r} has several chat templates and none named 'default': choose one "
                           f"with -o chat_template=NAME ({names})")
    if name and name != "default":
        raise AdapterError(f"option chat_template={name!r}: checkpoint {source!r} has one chat template (default)")
    return templates, "default"


def _pixel_budget(hints: set[str]) -> bool:
    """Processors that size images by a pixel budget (smart resize: Qwen2-VL's family, GLM-4V): their ``size``
    holds pixel counts (shortest_edge = min_pixels, longest_edge = max_pixels)."""
    return "max_pixels" in hints or {"merge_size", "temporal_patch_size"} <= hints


def pixel_options(options: Mapping[str, str], image_processor: Any, source: str) -> dict[str, Any]:
    """``-o max_pixels=`` / ``-o image_size=`` as processor-call arguments, refused where the processor has no such
    setting (a fixed-size processor would silently ignore them)."""
    hints: set[str] = set()
    for klass in getattr(getattr(image_processor, "valid_kwargs", None), "__mro__", ()):
        hints |= set(getattr(klass, "__annotations__", {}))
    name = type(image_processor).__name__
    call: dict[str, Any] = {}
    if options.get("max_pixels"):
        if not _pixel_budget(hints):
            raise AdapterError(f"option max_pixels: the image processor of {source!r} ({name}) has no pixel budget")
        budget = number_option(options, "max_pixels", 0, minimum=1)
        # Qwen-style processors keep their pixel bounds in ``size`` (shortest_edge = min_pixels, longest = max)
        least = getattr(getattr(image_processor, "size", None), "shortest_edge", None) or 1
        call["size"] = {"shortest_edge": min(least, budget), "longest_edge": budget}
    if options.get("image_size"):
        size = getattr(image_processor, "size", None)
        if _pixel_budget(hints) or getattr(size, "longest_edge", None) is None:
            raise AdapterError(
                f"option image_size: the image processor of {source!r} ({name}) does not resize to a longest edge"
                + ("; use max_pixels" if _pixel_budget(hints) else "")
            )
        edge = number_option(options, "image_size", 0, minimum=1)
        call["size"] = {"longest_edge": edge}
        if getattr(size, "shortest_edge", None):  # Idefics2 resizes between two edges: both go with the call
            call["size"]["shortest_edge"] = min(size.shortest_edge, edge)
    return call


def plain(value: Any) -> Any:
    """A processor setting as JSON (SizeDicts and tuples become dicts and lists; None fields dropped)."""
    if hasattr(value, "items"):
        return {str(k): plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


