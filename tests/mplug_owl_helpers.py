"""Tiny random mPLUG-Owl checkpoints for tests: config, weights, a locally trained tokenizer, preprocessing.

Nothing is downloaded. ``make_tiny_mplug_owl_checkpoint(dir)`` writes a folder that
``MplugOwlAdapter.load(LoadOptions(checkpoint=str(dir), device="cpu"))`` and
``MplugOwlForConditionalGeneration.from_pretrained(dir)`` both load.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from owleval.models.mplug_owl import (
    SYSTEM_PROMPT,
    MplugOwlConfig,
    MplugOwlForConditionalGeneration,
    MplugOwlImageProcessor,
)
from tests.llava_minigpt4_helpers import train_llama_tokenizer

FIXTURE_ROOTS = [
    os.environ.get("OWLEVAL_MPLUG_OWL_FIXTURES", ""),
    Path(__file__).resolve().parents[2] / "shared" / "mplug_owl",  # the shared read-only copy beside the checkout
]
#: every fixture saved by the upstream code (fixture_tiny_a, and any other configuration added beside it)
UPSTREAM_FIXTURES = sorted(
    {f for root in FIXTURE_ROOTS if root and Path(root).is_dir() for f in Path(root).glob("fixture_*")
     if (f / "expected.pt").is_file()}
)

TOKENIZER_TEXT = [
    SYSTEM_PROMPT,
    "Human: <image>\nHuman: What is in the picture?\nAI: A cat is sitting on a red sofa next to a window.",
    "Human: Describe this image in detail.\nAI: The photo shows a busy street with cars, people and tall buildings.",
    "Human: Why is this meme funny?\nAI: Because the dog looks surprised while the text says it is calm.",
    "Human: Can you read the text on the sign?\nAI: The sign says open from nine to five, closed on Sunday.",
    "Human: Write a short poem about it.\nAI: Under the sky so blue, the river runs to you.",
    "Human: How many people are there? What are they doing?\nAI: There are three people playing football.",
    "Human: Explain the chart and the numbers, please.\nAI: The sales grew from 10 to 25 percent in 2023.",
]


def make_tiny_tokenizer(directory: Path | None = None, vocab_size: int = 400):
    """A byte-fallback BPE LLaMA tokenizer (<unk>=0, <s>=1, </s>=2) of about ``vocab_size`` tokens, trained on a
    few chat sentences; no BOS of its own (the processor adds it). Saved into ``directory`` when given."""
    tokenizer = train_llama_tokenizer(TOKENIZER_TEXT, vocab_size - 256, add_bos_token=False, legacy=False)
    if directory is not None:
        tokenizer.save_pretrained(directory)
    return tokenizer


def tiny_config(vocab_size: int = 400, **overrides: Any) -> MplugOwlConfig:
    """Same structure as the released model, shrunk: ViT 32 wide on 56 px, 8 queries (9 image slots)."""
    values: dict[str, Any] = {
        "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                          "num_attention_heads": 4, "image_size": 56, "patch_size": 14},
        "visual_abstractor_config": {"hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
                                     "num_attention_heads": 4, "encoder_hidden_size": 32},
        "text_config": {"model_type": "llama", "vocab_size": vocab_size, "hidden_size": 64,
                        "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                        "max_position_embeddings": 512, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2},
        "num_query_tokens": 8,
    }
    values.update(overrides)
    return MplugOwlConfig(**values)


@torch.no_grad()
def randomize_weights(model: torch.nn.Module, seed: int = 0) -> None:
    """Redraw every parameter so outputs are varied (the default init leaves the queries at zero)."""
    gen = torch.Generator().manual_seed(seed)
    for name, param in model.named_parameters():
        noise = torch.randn(param.shape, generator=gen)
        if "norm" in name and name.endswith("weight"):
            param.copy_(1.0 + 0.1 * noise)
        elif name.endswith("bias"):
            param.copy_(0.1 * noise)
        elif "embed_tokens" in name:
            param.copy_(noise)
        elif any(key in name for key in ("query_tokens", "vit_eos", "position_embedding", "cls_token")):
            param.copy_(0.5 * noise)
        elif param.dim() >= 2:  # matrices and conv kernels: fan-in scaled
            param.copy_(noise / param[0].numel() ** 0.5)
        else:
            param.copy_(0.5 * noise)


def make_tiny_model(vocab_size: int = 400, seed: int = 0, **overrides: Any) -> MplugOwlForConditionalGeneration:
    torch.manual_seed(seed)
    model = MplugOwlForConditionalGeneration(tiny_config(vocab_size, **overrides))
    randomize_weights(model, seed)
    return model.eval()


def make_tiny_mplug_owl_checkpoint(directory: Path, seed: int = 0, **config_overrides: Any) -> Path:
    """Write config.json, model.safetensors, generation_config.json, tokenizer and preprocessor_config.json."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tiny_tokenizer(directory)
    model = make_tiny_model(vocab_size=len(tokenizer), seed=seed, **config_overrides)
    model.save_pretrained(directory)
    MplugOwlImageProcessor(size=model.config.vision_config.image_size).save_pretrained(directory)
    return directory


def pad_rows(rows: list[torch.Tensor], side: str = "left", pad_id: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack token rows (image placeholders included) into input_ids and attention_mask, padded on ``side``."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if side == "left" else slice(0, len(row))
        ids[i, span], mask[i, span] = row, 1
    return ids, mask


@torch.no_grad()
def greedy_without_cache(model, ids: torch.Tensor, mask: torch.Tensor, features: torch.Tensor, steps: int):
    """Greedy decoding as transformers 4.28 spelled it out: no KV cache, the whole sequence recomputed for every
    new token, positions ``cumsum(mask) - 1`` with pads at 1. The reference for ``generate`` (tests) and its
    baseline (bench). Returns the new tokens [B, steps]."""
    embeds, _ = model._embed_with_images(ids, features, None, skip_last_position=False, placeholder_id=0)
    new = []
    for _ in range(steps):
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
        logits = model.language_model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions,
                                      use_cache=False, logits_to_keep=1).logits
        token = logits[:, -1].argmax(-1)
        new.append(token)
        embeds = torch.cat([embeds, model.get_input_embeddings()(token)[:, None]], dim=1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    return torch.stack(new, 1)
