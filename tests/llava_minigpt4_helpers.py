"""Tiny random LLaVA and MiniGPT-4 checkpoints, built locally in seconds, for tests of the two adapters.

Nothing is downloaded: the tokenizer is a BPE trained on a few sentences (byte fallback, so any text encodes), the
weights are random and the configs are a few dozen units wide. The files are laid out exactly like the real ones
(llava-hf layout; BLIP-2 in the transformers layout, sharded with an index; the MiniGPT-4 ``.pth``; a Vicuna dir),
so the adapters' loading code is exercised as it is on real checkpoints.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers.utils import logging as transformers_logging

transformers_logging.disable_progress_bar()  # building and loading tiny checkpoints needs no progress bars

TINY_CORPUS = [
    "What is shown in the image? The image shows a cat sitting on a wooden table next to a cup.",
    "Describe the picture in detail, please. There are two people walking a dog in the park.",
    "Why is this funny? Explain the joke, the text and the colours you can see.",
    "Give the following image: <Img>ImageContent</Img>. You will be able to see the image once I provide it to you.",
    "###Human: <Img><ImageHere></Img> Please answer my questions.###Assistant: Sure, here is my answer.",
    "USER: <image>\nWhat is written on the sign? ASSISTANT: The sign says stop.",
]


def train_llama_tokenizer(corpus: Sequence[str], bpe_vocab_size: int, **tokenizer_kwargs: Any):
    """A LLaMA-style tokenizer trained on ``corpus``: Metaspace + BPE, ``<unk>``/``<s>``/``</s>`` at ids 0-2 and
    the 256 byte-fallback pieces after them, as in the LLaMA vocabulary, so any text encodes.

    ``bpe_vocab_size`` bounds the trained pieces (specials included); ``tokenizer_kwargs`` go to ``LlamaTokenizer``.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaTokenizer

    specials = ["<unk>", "<s>", "</s>"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    trainer = trainers.BpeTrainer(vocab_size=bpe_vocab_size, special_tokens=specials, show_progress=False)
    bpe.train_from_iterator(corpus, trainer)
    trained = json.loads(bpe.to_str())["model"]
    vocab = {token: i for i, token in enumerate(specials + [f"<0x{byte:02X}>" for byte in range(256)])}
    for piece, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(piece, len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    return LlamaTokenizer(vocab=vocab, merges=merges, **tokenizer_kwargs)


def make_tiny_tokenizer(extra_special: tuple[str, ...] = ()):
    """The tokenizer of the tiny LLaVA and Vicuna checkpoints (BOS added), trained on :data:`TINY_CORPUS`."""
    tokenizer = train_llama_tokenizer(TINY_CORPUS * 4, 400, add_bos_token=True)
    if extra_special:
        tokenizer.add_special_tokens({"additional_special_tokens": list(extra_special)})
    return tokenizer


def _tiny_llama_config(vocab_size: int, **overrides):
    from transformers import LlamaConfig

    values = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
        initializer_range=0.2,  # wide enough that every input token visibly moves the greedy answer
    )
    values.update(overrides)
    return LlamaConfig(**values)


def make_tiny_llava_checkpoint(directory: Path, *, chat_template: str | None = None, seed: int = 0) -> Path:
    """Save a tiny random ``LlavaForConditionalGeneration`` with its processor into ``directory``.

    Load it with ``LlavaAdapter.load(LoadOptions(checkpoint=str(path), device="cpu"))``. The vision tower is a
    2-layer CLIP on 32x32 images in 8x8 patches (16 image tokens per image). Without ``chat_template`` the adapter
    falls back to the LLaVA-1.5 prompt, as for the llava-hf checkpoints saved without one.
    """
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tiny_tokenizer(extra_special=("<image>", "<pad>"))
    tokenizer.pad_token = "<pad>"
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=chat_template,
    )
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8,
        initializer_range=0.2,
    )
    text = _tiny_llama_config(len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def make_tiny_minigpt4_checkpoint(directory: Path, *, num_query_tokens: int = 32, seed: int = 0) -> dict[str, str]:
    """Write the three MiniGPT-4 parts, tiny and random, under ``directory``; return where they are.

    Returned keys: ``checkpoint`` (the Vicuna/LLaMA dir, for ``LoadOptions.checkpoint``), and for
    ``LoadOptions.options``: ``vision_checkpoint`` (a whole tiny BLIP-2 in the transformers layout, saved in small
    shards with an index, its OPT language model included as in the real checkpoint) and
    ``projection_checkpoint`` (a ``.pth`` holding ``{"model": {"llama_proj.weight", "llama_proj.bias"}}``).
    """
    from transformers import Blip2Config, Blip2ForConditionalGeneration, LlamaForCausalLM, OPTConfig

    directory = Path(directory)
    torch.manual_seed(seed)
    blip2_dir = directory / "blip2"
    blip2 = Blip2Config(
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32,
            patch_size=8,
        ),
        qformer_config=dict(
            hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
            encoder_hidden_size=32, cross_attention_frequency=2,
        ),
        text_config=OPTConfig(
            vocab_size=99, hidden_size=16, num_hidden_layers=1, ffn_dim=32, num_attention_heads=2,
            word_embed_proj_dim=16,
        ).to_dict(),
        num_query_tokens=num_query_tokens,
    )
    model = Blip2ForConditionalGeneration(blip2).eval()
    with torch.no_grad():  # trained-like scales, so that the image visibly steers the answer
        model.query_tokens.normal_(0, 0.5)
        for name, param in model.named_parameters():
            if name.startswith(("vision_model.", "qformer.")) and param.dim() > 1:
                param.normal_(0, 0.2)
    model.save_pretrained(blip2_dir, max_shard_size="60KB")

    llm_dir = directory / "vicuna"
    tokenizer = make_tiny_tokenizer()
    llm = LlamaForCausalLM(_tiny_llama_config(len(tokenizer))).eval()
    llm.save_pretrained(llm_dir)
    tokenizer.save_pretrained(llm_dir)

    projection = directory / "pretrained_minigpt4.pth"
    proj = torch.nn.Linear(blip2.qformer_config.hidden_size, llm.config.hidden_size)
    torch.save({"model": {"llama_proj.weight": proj.weight.detach(), "llama_proj.bias": proj.bias.detach()}}, projection)
    return {"checkpoint": str(llm_dir), "vision_checkpoint": str(blip2_dir), "projection_checkpoint": str(projection)}
