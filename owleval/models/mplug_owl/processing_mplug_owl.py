"""Prompts, tokens and pixels for mPLUG-Owl, laid out as the upstream processor lays them out.

- Prompt: the published system line, one ``Human: <image>`` line per image, earlier turns as
  ``\\nHuman: {q}\\nAI: {a}``, and the open ``\\nHuman: {q}\\nAI: `` the model completes.
- Tokens: BOS, then the text between images tokenised without special tokens; each ``<image>`` becomes
  ``num_query_tokens + 1`` copies of the id -1 (the model overwrites them with that image's features).
- Pixels: each image squashed to size x size (bicubic, aspect ratio ignored), scaled to [0, 1] and normalised with
  the CLIP mean/std.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

if TYPE_CHECKING:
    import torch
    from PIL import Image

__all__ = [
    "IMAGE_TOKEN",
    "SYSTEM_PROMPT",
    "ChatTurn",
    "MplugOwlImageProcessor",
    "MplugOwlProcessor",
    "build_prompt",
]

SYSTEM_PROMPT = (
    "The following is a conversation between a curious human and AI assistant. The assistant gives helpful, "
    "detailed, and polite answers to the user's questions."
)
IMAGE_TOKEN = "<image>"
IMAGE_PLACEHOLDER_ID = -1
CLIP_MEAN = tuple(OPENAI_CLIP_MEAN)
CLIP_STD = tuple(OPENAI_CLIP_STD)
PREPROCESSOR_CONFIG = "preprocessor_config.json"


@dataclass(frozen=True)
class ChatTurn:
    """One human message (after its images) and, for earlier turns, the assistant's answer."""

    text: str
    num_images: int = 0
    answer: str | None = None


def build_prompt(turns: Sequence[ChatTurn], system: str = SYSTEM_PROMPT) -> str:
    """The inference prompt; the last turn must be unanswered (the model writes after its ``AI: ``)."""
    if not turns or turns[-1].answer is not None:
        raise ValueError("the last turn of a prompt is the one to answer: it must have no answer")
    parts = [system]
    for turn in turns:
        parts.extend(f"\nHuman: {IMAGE_TOKEN}" for _ in range(turn.num_images))
        parts.append(f"\nHuman: {turn.text}\nAI: ")
        if turn.answer is not None:
            parts.append(turn.answer)
    return "".join(parts)


class MplugOwlImageProcessor:
    """Upstream preprocessing: PIL bicubic resize to a square, then CLIP rescale and normalisation."""

    def __init__(self, size: int = 224, image_mean: Sequence[float] = CLIP_MEAN, image_std: Sequence[float] = CLIP_STD):
        from transformers import CLIPImageProcessorPil
        from transformers.image_utils import PILImageResampling

        self.size = int(size)
        self.image_mean = tuple(float(x) for x in image_mean)
        self.image_std = tuple(float(x) for x in image_std)
        self._clip = CLIPImageProcessorPil(
            size={"height": self.size, "width": self.size},
            resample=PILImageResampling.BICUBIC,
            do_center_crop=False,
            image_mean=list(self.image_mean),
            image_std=list(self.image_std),
        )

    @classmethod
    def from_pretrained(cls, path: str | Path, default_size: int = 224) -> MplugOwlImageProcessor:
        """Read ``preprocessor_config.json`` when the checkpoint has one (size, image_mean, image_std)."""
        file = Path(path) / PREPROCESSOR_CONFIG
        if not file.is_file():
            return cls(size=default_size)
        try:
            data = json.loads(file.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{file}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
        size = data.get("size", default_size)
        if isinstance(size, dict):
            size = size.get("shortest_edge") or size.get("height") or default_size
        return cls(size=size, image_mean=data.get("image_mean", CLIP_MEAN), image_std=data.get("image_std", CLIP_STD))

    def to_dict(self) -> dict[str, Any]:
        return {
            "image_processor_type": "MplugOwlImageProcessor",
            "size": {"shortest_edge": self.size},
            "crop_size": {"height": self.size, "width": self.size},
            "resample": 3,
            "image_mean": list(self.image_mean),
            "image_std": list(self.image_std),
        }

    def save_pretrained(self, path: str | Path) -> None:
        Path(path, PREPROCESSOR_CONFIG).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def __call__(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Images -> float32 [N, 3, size, size]."""
        from PIL import Image as PILImage

        squared = [img.convert("RGB").resize((self.size, self.size), resample=PILImage.BICUBIC) for img in images]
        return self._clip(squared, return_tensors="pt")["pixel_values"]


class MplugOwlProcessor:
    """Tokenizer + image processor. ``__call__`` takes prompts containing ``<image>`` and the images in order."""

    def __init__(self, image_processor: MplugOwlImageProcessor, tokenizer, image_slots: int = 65):
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        self.image_slots = image_slots

    @classmethod
    def from_pretrained(cls, path: str | Path, config=None, **tokenizer_kwargs: Any) -> MplugOwlProcessor:
        """The checkpoint's LLaMA tokenizer, its preprocessing settings and its placeholder length.

        ``config`` (an :class:`MplugOwlConfig`) is read from ``path`` when not given.
        """
        from transformers import LlamaTokenizer

        from .configuration_mplug_owl import MplugOwlConfig

        if config is None:
            config = MplugOwlConfig.from_pretrained(path)
        tokenizer = LlamaTokenizer.from_pretrained(path, **tokenizer_kwargs)
        image_processor = MplugOwlImageProcessor.from_pretrained(path, default_size=config.vision_config.image_size)
        return cls(image_processor, tokenizer, image_slots=config.image_placeholder_length)

    def save_pretrained(self, path: str | Path) -> None:
        self.tokenizer.save_pretrained(path)
        self.image_processor.save_pretrained(path)

    def tokenize(self, prompt: str) -> list[int]:
        """BOS, text chunks without special tokens, ``image_slots`` ids of -1 per ``<image>``."""
        ids = [self.tokenizer.bos_token_id]
        for chunk in re.split(f"({re.escape(IMAGE_TOKEN)})", prompt):
            if chunk == IMAGE_TOKEN:
                ids.extend([IMAGE_PLACEHOLDER_ID] * self.image_slots)
            elif chunk:
                ids.extend(self.tokenizer(chunk, add_special_tokens=False)["input_ids"])
        return ids

    def pad(self, sequences: Sequence[list[int]], padding_side: str = "left") -> dict[str, torch.Tensor]:
        """Stack token lists; pads take the eos id (as upstream) and attention_mask 0."""
        import torch

        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        width = max(len(s) for s in sequences)
        pad_id = self.tokenizer.eos_token_id
        ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, seq in enumerate(sequences):
            span = slice(width - len(seq), width) if padding_side == "left" else slice(0, len(seq))
            ids[row, span] = torch.tensor(seq, dtype=torch.long)
            mask[row, span] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def __call__(
        self,
        text: str | Sequence[str],
        images: Sequence[Image.Image] | None = None,
        padding_side: str = "left",
        return_tensors: str = "pt",
    ) -> dict[str, torch.Tensor]:
        """input_ids, attention_mask, num_images and (with images) pixel_values of all prompts' images in order.

        ``padding_side="right"`` reproduces the upstream processor; left padding lets a batch decode exactly as
        its rows would one by one.
        """
        import torch

        if return_tensors != "pt":
            raise ValueError("only return_tensors='pt' is supported")
        prompts = [text] if isinstance(text, str) else list(text)
        counts = [p.count(IMAGE_TOKEN) for p in prompts]
        images = list(images or [])
        if sum(counts) != len(images):
            raise ValueError(f"the prompts hold {sum(counts)} {IMAGE_TOKEN} tokens but {len(images)} images were given")
        batch = self.pad([self.tokenize(p) for p in prompts], padding_side=padding_side)
        batch["num_images"] = torch.tensor(counts, dtype=torch.long)
        if images:
            batch["pixel_values"] = self.image_processor(images)
        return batch

    def batch_decode(self, sequences, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(sequences, **kwargs)
