"""Tiny random image-text-to-text checkpoints of several families, built locally in seconds, for the ``hf`` adapter.

Each is saved as a real checkpoint folder (config, safetensors, tokenizer, processor with the family's chat
template) so the adapter loads it through ``AutoProcessor`` and ``AutoModelForImageTextToText`` as it would a
downloaded one. The tokenizer is a byte-level BPE trained on a few sentences with the family's special tokens;
towers are a few dozen units wide with 2 layers. The chat templates are written here in each family's format
(the hub's own are not reachable offline).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers.utils import logging as transformers_logging

transformers_logging.disable_progress_bar()

CORPUS = [
    "What is shown in the image? The image shows a cat sitting on a wooden table next to a cup.",
    "Describe the picture in detail, please. There are two people walking a dog in the park.",
    "Why is this funny? Explain the joke, the text and the colours you can see.",
    "What is written on the sign? The sign says stop. Can you read the numbers on the board?",
    "user assistant system model image You are a careful assistant. Answer the question.",
]


def _content_loop(image: str) -> str:
    """Jinja for one message's content: a string, or parts where each image part becomes ``image``."""
    return (
        "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
        "{% for part in message['content'] %}{% if part['type'] == 'image' %}" + image +
        "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    )


CHATML = (  # Qwen2-VL / Qwen2.5-VL / LLaVA-OneVision (Qwen2 base) style
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n" + _content_loop("{IMAGE}") +
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LLAVA_15 = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] }} "
    "{% elif message['role'] == 'user' %}USER: " + _content_loop("<image>\n") + " "
    "{% else %}ASSISTANT: " + _content_loop("") + "</s>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
IDEFICS3 = (
    "<|begin_of_text|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'] is string %}: {{ message['content'] }}{% else %}"
    "{% if message['content'][0]['type'] == 'image' %}:{% else %}: {% endif %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)
GEMMA3 = (
    "{{ bos_token }}{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n" + _content_loop("<start_of_image>") +
    "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def train_tokenizer(specials: list[str], bos: str | None, eos: str, pad: str, unk: str | None = None, vocab_size: int = 600, **extra: Any):
    """A byte-level BPE (full byte alphabet, so any text encodes) with ``specials`` as special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator(CORPUS * 4, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=bos, eos_token=eos, pad_token=pad, unk_token=unk, **extra)


def _text(vocab: int, tokenizer: Any, **overrides: Any) -> dict[str, Any]:
    values = dict(
        vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=4096, initializer_range=0.2, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    values.update(overrides)
    return values


def _llava():
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, LlavaConfig, LlavaProcessor

    tok = train_tokenizer(["<unk>", "<s>", "</s>", "<image>", "<pad>"], "<s>", "</s>", "<pad>", "<unk>")
    proc = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tok, patch_size=8, vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=LLAVA_15,
    )
    vision = CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                              image_size=32, patch_size=8, initializer_range=0.2)
    from transformers import LlamaConfig

    config = LlavaConfig(vision_config=vision, text_config=LlamaConfig(**_text(len(tok), tok)),
                         image_token_id=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-2,
                         vision_feature_select_strategy="default", pad_token_id=tok.pad_token_id)
    return config, proc


FAMILIES: dict[str, Callable[[], tuple[Any, Any]]] = {"llava": _llava}


def make_tiny_checkpoint(family: str, directory: Path, seed: int = 0) -> Path:
    """Save a tiny random checkpoint of ``family`` (a key of :data:`FAMILIES`) into ``directory``."""
    from transformers import AutoModelForImageTextToText

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config, processor = FAMILIES[family]()
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config)
    model.eval()
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def _qwen2_vl(model_type: str = "qwen2_vl"):
    from transformers import Qwen2VLImageProcessorPil, Qwen2VLProcessor

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tok = train_tokenizer(specials, None, "<|im_end|>", "<|endoftext|>")
    image_processor = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=112 * 112)
    from owleval.adapters.hf_load import image_only

    proc = image_only(Qwen2VLProcessor)(image_processor=image_processor, tokenizer=tok,
                            chat_template=CHATML.replace("{IMAGE}", "<|vision_start|><|image_pad|><|vision_end|>"))
    ids = {name: tok.convert_tokens_to_ids(name) for name in specials}
    text = _text(len(tok), tok, rope_scaling={"type": "mrope", "mrope_section": [4, 6, 6]}, rope_theta=10000.0)
    if model_type == "qwen2_vl":
        from transformers import Qwen2VLConfig

        vision = dict(depth=2, embed_dim=64, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2, in_channels=3)
        config = Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                               video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                               vision_end_token_id=ids["<|vision_end|>"])
    else:
        from transformers import Qwen2_5_VLConfig

        vision = dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=2, out_hidden_size=64, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1], in_channels=3)
        config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                                  video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                                  vision_end_token_id=ids["<|vision_end|>"])
    return config, proc


FAMILIES["qwen2_vl"] = _qwen2_vl
FAMILIES["qwen2_5_vl"] = lambda: _qwen2_vl("qwen2_5_vl")


def _llava_onevision():
    from transformers import LlavaOnevisionConfig, LlavaOnevisionImageProcessorPil, LlavaOnevisionProcessor, Qwen2Config, SiglipVisionConfig

    from owleval.adapters.hf_load import image_only

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]
    tok = train_tokenizer(specials, None, "<|im_end|>", "<|endoftext|>")
    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": 28, "width": 28}, image_grid_pinpoints=[[28, 28], [28, 56], [56, 28], [56, 56]], do_pad=True,
    )
    proc = image_only(LlavaOnevisionProcessor)(
        image_processor=image_processor, tokenizer=tok, num_image_tokens=4, vision_feature_select_strategy="full",
        chat_template=CHATML.replace("{IMAGE}", "<image>\n"),
    )
    vision = SiglipVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                                image_size=28, patch_size=14)
    config = LlavaOnevisionConfig(
        vision_config=vision, text_config=Qwen2Config(**_text(len(tok), tok)), image_token_index=tok.convert_tokens_to_ids("<image>"),
        video_token_index=tok.convert_tokens_to_ids("<video>"), vision_feature_select_strategy="full", vision_feature_layer=-1,
        image_grid_pinpoints=[[28, 28], [28, 56], [56, 28], [56, 56]], vision_aspect_ratio="anyres_max_9",
    )
    return config, proc


FAMILIES["llava_onevision"] = _llava_onevision


def _idefics3(model_type: str = "idefics3"):
    import transformers as tf

    rows = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
    specials = ["<|endoftext|>", "<|begin_of_text|>", "<end_of_utterance>", "<image>", "<fake_token_around_image>", "<global-img>", *rows]
    tok = train_tokenizer(specials, "<|begin_of_text|>", "<end_of_utterance>", "<|endoftext|>", vocab_size=700)
    smol = model_type == "smolvlm"
    pil = tf.SmolVLMImageProcessorPil if smol else tf.Idefics3ImageProcessorPil
    image_processor = pil(size={"longest_edge": 64}, max_image_size={"longest_edge": 32}, do_image_splitting=True)
    kwargs = dict(image_processor=image_processor, tokenizer=tok, image_seq_len=4, chat_template=IDEFICS3)
    if smol:
        from owleval.adapters.hf_load import image_only

        proc = image_only(tf.SmolVLMProcessor)(**kwargs)
    else:
        proc = tf.Idefics3Processor(**kwargs)
    vision = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8)
    config_cls = tf.SmolVLMConfig if smol else tf.Idefics3Config
    config = config_cls(vision_config=vision, text_config=_text(len(tok), tok), scale_factor=2,
                        image_token_id=tok.convert_tokens_to_ids("<image>"), pad_token_id=tok.pad_token_id)
    return config, proc


def _gemma3():
    from transformers import Gemma3Config, Gemma3ImageProcessorPil, Gemma3Processor

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>", "<image_soft_token>"]
    tok = train_tokenizer(specials, "<bos>", "<eos>", "<pad>", "<unk>", extra_special_tokens={
        "boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"})
    image_processor = Gemma3ImageProcessorPil(size={"height": 32, "width": 32})
    proc = Gemma3Processor(image_processor=image_processor, tokenizer=tok, image_seq_length=4, chat_template=GEMMA3)
    vision = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8)
    text = _text(len(tok), tok, head_dim=32, sliding_window=64, query_pre_attn_scalar=32)
    config = Gemma3Config(vision_config=vision, text_config=text, mm_tokens_per_image=4,
                          image_token_index=tok.convert_tokens_to_ids("<image_soft_token>"),
                          boi_token_index=tok.convert_tokens_to_ids("<start_of_image>"),
                          eoi_token_index=tok.convert_tokens_to_ids("<end_of_image>"))
    return config, proc


FAMILIES["idefics3"] = _idefics3
FAMILIES["smolvlm"] = lambda: _idefics3("smolvlm")
FAMILIES["gemma3"] = _gemma3
import tests.hf_family_builders  # noqa: E402,F401 - registers the second round of families into FAMILIES
