"""The ``mplug-owl`` adapter: OwlEval conversations answered by the bundled mPLUG-Owl implementation.

Batches are left-padded, so a batch decodes exactly as its conversations would one by one. Each image's
features (vision encoder + abstractor) are computed once, keyed by the image file's SHA-256, and reused by the
later turns of its dialogue. Decoding is greedy by default; sampling is seeded as in every local adapter
(:class:`~owleval.adapters.hf_common.LocalModelAdapter`). ``-o decode=compiled`` (the default on CUDA) decodes
greedy batches on a static KV cache with a compiled step (:mod:`owleval.models.mplug_owl.static_decode`);
other settings, or a compiler that fails, fall back to eager ``generate`` and provenance says why.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from owleval.adapters.base import (
    AdapterError,
    Conversation,
    GenerationConfig,
    ImageRef,
    LoadOptions,
    resolve_device,
    resolve_dtype,
)
from owleval.adapters.decode import DECODE_DEFAULT, DECODE_HELP, DecodeLog, decode_mode, greedy_only
from owleval.adapters.hf_common import (
    LocalModelAdapter,
    checkpoint_source,
    generation_kwargs,
    runtime_provenance,
    split_scored,
    with_tokens,
)
from owleval.adapters.options import number_option
from owleval.adapters.untrusted import SCHEME, marker_strings, neutralise_conversation
from owleval.manifest import sha256_of

if TYPE_CHECKING:
    import torch

    from owleval.models.mplug_owl.static_decode import StaticCacheDecoder

ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")
#: decoding of the upstream README (do_sample=True, top_k=5, max_length=512 with the BOS column counted);
#: OwlEval's own default stays greedy and seeded. CLI: --sample --top-k 5 --max-new-tokens 511
PUBLISHED_GENERATION = GenerationConfig(max_new_tokens=511, do_sample=True, top_k=5)
log = logging.getLogger(__name__)
_FULL_HASH_LIMIT = 1 << 30  # hash weight files completely up to 1 GiB in all; larger ones get a fingerprint
_FINGERPRINT_BYTES = 1 << 20
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
#: a full checkpoint has config.json; a LoRA adapter folder (applied over its base) has adapter_config.json
_CHECKPOINT_MARKERS = ("config.json", "adapter_config.json")


class MplugOwlAdapter(LocalModelAdapter):
    name: ClassVar[str] = "mplug-owl"
    description: ClassVar[str] = (
        "mPLUG-Owl (LLaMA-7B), bundled implementation: loads the official checkpoints, fine-tunes or LoRA adapters"
    )
    default_checkpoint: ClassVar[str | None] = "MAGAer13/mplug-owl-llama-7b"
    option_help: ClassVar[dict[str, str]] = {
        "attn_implementation": "attention kernel of the language model: sdpa (default), eager or flash_attention_2",
        "base_checkpoint": "base model for a LoRA adapter folder (default: the adapter's base_model_name_or_path)",
        "image_cache_size": "how many images keep their features cached (default 256; 0 turns the cache off)",
        "decode": DECODE_HELP,
    }
    option_defaults: ClassVar[dict[str, str]] = {
        "attn_implementation": "sdpa",
        "base_checkpoint": "the adapter's base_model_name_or_path",
        "image_cache_size": "256",
        "decode": DECODE_DEFAULT,
    }

    def __init__(self, options: LoadOptions, model: Any, processor: Any, source: Path | None, device: str, dtype: Any):
        super().__init__(options)
        self.model = model
        self.processor = processor
        self.source = source
        self.device = device
        self.dtype = dtype
        self.image_cache_size = _image_cache_size(options)
        self._image_cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.images_encoded = 0  # how many images went through the vision encoder (cache misses)
        self.decode_log = DecodeLog(options.options, device)
        self.static_decoder: StaticCacheDecoder | None = None  # made at the first compiled batch; may be shared

    # -- loading ------------------------------------------------------------------------------------------------

    @classmethod
    def load(cls, options: LoadOptions) -> MplugOwlAdapter:
        from owleval.models.mplug_owl import CheckpointMismatchError, MplugOwlForConditionalGeneration

        checkpoint = checkpoint_source(
            options.checkpoint or cls.default_checkpoint or "", "mPLUG-Owl checkpoint", _CHECKPOINT_MARKERS
        )
        device = resolve_device(options.device)
        dtype = resolve_dtype(options.dtype, device)
        attn = options.options.get("attn_implementation", "sdpa")
        if attn not in ATTN_IMPLEMENTATIONS:
            raise AdapterError(f"attn_implementation {attn!r} is not one of {', '.join(ATTN_IMPLEMENTATIONS)}")
        _image_cache_size(options)  # fail before loading weights
        decode_mode(options.options, device)
        kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": attn}
        if options.options.get("base_checkpoint"):
            kwargs["base_model_name_or_path"] = options.options["base_checkpoint"]
        if device.startswith("cuda"):
            kwargs["device_map"] = {"": device}
        try:
            model = MplugOwlForConditionalGeneration.from_pretrained(checkpoint, **kwargs)
        except CheckpointMismatchError as exc:
            raise AdapterError(str(exc)) from None
        except (OSError, ValueError, KeyError, ImportError) as exc:
            raise AdapterError(f"cannot load the mPLUG-Owl checkpoint {checkpoint!r}: {exc}") from None
        model.to(device).eval()
        source = _local_folder(model.config.name_or_path or checkpoint)
        processor = _load_processor(checkpoint, source, model.config)
        return cls(options, model, processor, source, device, dtype)

    # -- answering ----------------------------------------------------------------------------------------------

    def _generate_batch(self, conversations: Sequence[Conversation], config: GenerationConfig) -> list[str]:
        batch = self.processor.pad([self._prompt_ids(c) for c in conversations], padding_side="left")
        images = [img for conv in conversations for img in conv.images]
        features = self.image_features(images) if images else None
        tokenizer = self.processor.tokenizer
        inputs = {
            "input_ids": batch["input_ids"].to(self.device),
            "attention_mask": batch["attention_mask"].to(self.device),
            "image_features": features,
            "prepend_bos": False,
            "pad_token_id": self.model.config.text_config.pad_token_id or 0,
            "eos_token_id": tokenizer.eos_token_id,
            **generation_kwargs(config),
        }
        output = self._decode_compiled(inputs, config) if self.decode_log.requested == "compiled" else None
        if output is None:
            if self.decode_log.requested == "eager":
                self.decode_log.used("eager")
            output = self.model.generate(**inputs)
        output, scored = split_scored(output, tokenizer, config.top_logprobs)
        return with_tokens([text.strip() for text in tokenizer.batch_decode(output, skip_special_tokens=True)], scored)

    def _decode_compiled(self, inputs: dict[str, Any], config: GenerationConfig) -> torch.Tensor | None:
        """New tokens from the static-cache decoder, or None (reason recorded) when this batch must go eager."""
        reason = self.decode_log.compile_failure or greedy_only(config)
        if reason is None:
            import torch

            from owleval.models.mplug_owl.static_decode import StaticCacheDecoder

            if self.static_decoder is None:
                self.static_decoder = StaticCacheDecoder(self.model.language_model, compile=True)
            try:
                output = self.model.generate(**inputs, static_decoder=self.static_decoder)
            except torch._dynamo.exc.TorchDynamoException as exc:  # e.g. no C++ compiler / Triton for inductor
                reason = self.decode_log.failed_to_compile(exc)
                log.warning("mplug-owl: decoding eagerly from now on, %s", reason)
            else:
                self.decode_log.used("compiled")
                return output
        self.decode_log.fell_back(reason)
        return None

    def _prompt_ids(self, conversation: Conversation) -> list[int]:
        """The conversation in the upstream chat template, tokenized, image placeholders included."""
        from owleval.models.mplug_owl import ChatTurn, build_prompt

        from owleval.models.mplug_owl import IMAGE_TOKEN

        if not hasattr(self, "_markers"):  # questions and answers cannot add an image or a special token
            self._markers = marker_strings(self.processor.tokenizer, None, (IMAGE_TOKEN,))
        conversation = neutralise_conversation(conversation, self._markers)
        turns = [ChatTurn(t.text, len(t.images), t.answer) for t in conversation.turns]
        return self.processor.tokenize(build_prompt(turns))

    def answer_settings(self) -> dict[str, Any]:
        return {"untrusted_text": SCHEME}

    def prompt_tokens(self, conversation: Conversation) -> int:
        return len(self._prompt_ids(conversation))

    def image_features(self, images: Sequence[ImageRef]) -> torch.Tensor:
        """[N, slots, width] for the images in order; each distinct image file is encoded once."""
        import torch

        keys = [img.sha256 for img in images]
        found = {key: self._image_cache[key] for key in keys if key in self._image_cache}
        missing = {key: img for key, img in zip(keys, images, strict=True) if key not in found}
        if missing:
            try:
                pil_images = [img.load() for img in missing.values()]
            except (OSError, ValueError) as exc:
                raise AdapterError(f"cannot read an image: {exc}") from None
            pixels = self.processor.image_processor(pil_images).to(self.device, self.dtype)
            with torch.no_grad():
                encoded = self.model.get_image_features(pixels)
            self.images_encoded += len(missing)
            found.update(zip(missing, encoded, strict=True))
        for key in keys:  # least recently used first out; a batch's own images are all in ``found`` already
            self._remember(key, found[key])
        return torch.stack([found[key] for key in keys])

    def _remember(self, key: str, value: torch.Tensor) -> None:
        if self.image_cache_size <= 0:
            return
        self._image_cache[key] = value
        self._image_cache.move_to_end(key)
        while len(self._image_cache) > self.image_cache_size:
            self._image_cache.popitem(last=False)

    # -- bookkeeping --------------------------------------------------------------------------------------------

    def provenance(self) -> dict[str, Any]:
        model = self.model
        info = {
            **super().provenance(),
            **runtime_provenance(self.device, self.dtype, model.config),
            "parameters": sum(p.numel() for p in model.parameters()),
            "image_placeholder_length": model.config.image_placeholder_length,
            **self._decode_provenance(),
        }
        if self.source is not None:
            info["checkpoint_folder"] = str(self.source)
            info.update(_files_info(self.source))
        checkpoint = Path(self.options.checkpoint or "").expanduser()
        if self.options.checkpoint and (checkpoint / "adapter_config.json").is_file():
            info["lora_adapter"] = {"folder": str(checkpoint.resolve()), **_files_info(checkpoint)}
        return info

    def _decode_provenance(self) -> dict[str, Any]:
        """The decode path (:class:`DecodeLog`) plus the static decoder's shapes and first-call (compile) times."""
        info = self.decode_log.provenance()
        if self.static_decoder is not None:
            info["decode_compile_mode"] = self.static_decoder.mode
            info["decode_stats"] = self.static_decoder.stats.to_dict()
        return info

    def close(self) -> None:
        import torch

        self._image_cache.clear()
        self.static_decoder = None
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _image_cache_size(options: LoadOptions) -> int:
    return number_option(options.options, "image_cache_size", 256, minimum=0)


def _local_folder(checkpoint: str) -> Path | None:
    """The folder holding the checkpoint's files (the hub cache snapshot for a hub id), if there is one."""
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        return path.resolve()
    try:
        from transformers.utils import cached_file

        found = cached_file(checkpoint, "config.json", local_files_only=True)
    except (OSError, ValueError):
        return None
    return Path(found).parent if found else None


def _load_processor(checkpoint: str, source: Path | None, config: Any) -> Any:
    """Tokenizer and preprocessing from the adapter folder when it has them, else from the base checkpoint."""
    from owleval.models.mplug_owl import MplugOwlProcessor

    candidates = [Path(checkpoint).expanduser()] if Path(checkpoint).expanduser().is_dir() else []
    if source is not None:
        candidates.append(source)
    for folder in candidates:
        if any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
            try:
                return MplugOwlProcessor.from_pretrained(folder, config=config)
            except (OSError, ValueError) as exc:
                raise AdapterError(f"cannot load the tokenizer of {folder}: {exc}") from None
    try:
        return MplugOwlProcessor.from_pretrained(checkpoint, config=config)
    except (OSError, ValueError) as exc:
        raise AdapterError(f"cannot load the tokenizer of the mPLUG-Owl checkpoint {checkpoint!r}: {exc}") from None


def _fingerprint(path: Path) -> str:
    """SHA-256 of the file's first MiB: with its size, enough to tell multi-GB weight files apart quickly."""
    with path.open("rb") as handle:
        return hashlib.sha256(handle.read(_FINGERPRINT_BYTES)).hexdigest()


def _files_info(folder: Path) -> dict[str, Any]:
    """Hashes that identify the checkpoint: config.json in full, weights in full when small, else a fingerprint."""
    info: dict[str, Any] = {}
    if (folder / "config.json").is_file():
        info["config_sha256"] = sha256_of(folder / "config.json")
    weights = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))
    total = sum(p.stat().st_size for p in weights)
    full = total <= _FULL_HASH_LIMIT
    files = []
    for path in weights:
        entry: dict[str, Any] = {"file": path.name, "bytes": path.stat().st_size}
        entry["sha256" if full else "sha256_first_mib"] = sha256_of(path) if full else _fingerprint(path)
        files.append(entry)
    info["weights"] = files
    info["weights_hash"] = "full" if full else "fingerprint (size + first MiB of each file)"
    for index in sorted(folder.glob("*.index.json")):
        info.setdefault("weights_index_sha256", {})[index.name] = sha256_of(index)
    if (folder / "adapter_config.json").is_file():
        info["lora_adapter_config"] = json.loads((folder / "adapter_config.json").read_text())
    if folder.parent.name == "snapshots":  # hub cache: the folder name is the commit
        info["hub_revision"] = folder.name
    return info
