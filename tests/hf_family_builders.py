"""More tiny image-text-to-text families for the ``hf`` adapter (the second round: LLaVA-NeXT and its video
variant, VipLLaVA, Idefics2, PaliGemma, Qwen3-VL, Qwen3.5, GLM-4V, InternVL, Aya Vision,
T5Gemma 2 (encoder-decoder), Mllama, Granite-Docling), registered into :data:`tests.hf_family_helpers.FAMILIES`.

Same recipe as the first round: a byte-level BPE with the family's special tokens, towers 64 wide with 2 layers,
the family's chat template written here in its format. Processors whose video processor needs torchvision are
built for images only, as the adapter does at load.
"""

from __future__ import annotations

from pathlib import Path

from owleval.adapters.hf_load import image_only
from tests.hf_family_helpers import CHATML, FAMILIES, LLAVA_15, _content_loop, _text, train_tokenizer

VISION = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2)
LLAMA3 = (
    "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    + _content_loop("<|image|>") + "<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}[SYSTEM_PROMPT]"
    + _content_loop("") + "[/SYSTEM_PROMPT]{% elif message['role'] == 'user' %}[INST]" + _content_loop("[IMG]")
    + "[/INST]{% else %}" + _content_loop("") + "{{ eos_token }}{% endif %}{% endfor %}"
)
COHERE = (
    "{{ bos_token }}{% for message in messages %}<|START_OF_TURN_TOKEN|>"
    "{% if message['role'] == 'user' %}<|USER_TOKEN|>{% elif message['role'] == 'system' %}<|SYSTEM_TOKEN|>"
    "{% else %}<|CHATBOT_TOKEN|>{% endif %}" + _content_loop("<image>") + "<|END_OF_TURN_TOKEN|>{% endfor %}"
    "{% if add_generation_prompt %}<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>{% endif %}"
)
PALIGEMMA = (  # PaliGemma prompts are prefixes: the processor puts the image tokens and BOS before the text
    "{% for message in messages %}{% if message['role'] != 'system' %}" + _content_loop("")
    + "{% if message['role'] == 'user' %}\n{% else %}{{ eos_token }}{% endif %}{% endif %}{% endfor %}"
)


def _llava_like(kind: str):
    import transformers as tf

    specials = ["<unk>", "<s>", "</s>", "<image>", "<video>", "<pad>"]
    tok = train_tokenizer(specials, "<s>", "</s>", "<pad>", "<unk>")
    vision = tf.CLIPVisionConfig(**VISION, image_size=32, patch_size=8, initializer_range=0.2)
    text = tf.LlamaConfig(**_text(len(tok), tok))
    image_id = tok.convert_tokens_to_ids("<image>")
    common = dict(patch_size=8, vision_feature_select_strategy="default", num_additional_image_tokens=1, chat_template=LLAVA_15)
    if kind == "vipllava":
        proc = tf.LlavaProcessor(image_processor=tf.CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                                 tokenizer=tok, **common)
        config = tf.VipLlavaConfig(vision_config=vision, text_config=text, image_token_id=image_id, vision_feature_layers=[-2, -1],
                                   projector_layernorm_eps=1e-5)
        return config, proc
    grid = [[32, 32], [32, 64], [64, 32]]
    image_processor = tf.LlavaNextImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                                     image_grid_pinpoints=grid)
    if kind == "llava_next":
        proc = tf.LlavaNextProcessor(image_processor=image_processor, tokenizer=tok, **common)
        config = tf.LlavaNextConfig(vision_config=vision, text_config=text, image_token_id=image_id, image_grid_pinpoints=grid,
                                    vision_feature_layer=-2, vision_feature_select_strategy="default")
    else:
        proc = image_only(tf.LlavaNextVideoProcessor)(image_processor=image_processor, tokenizer=tok, **common)
        config = tf.LlavaNextVideoConfig(vision_config=vision, text_config=text, image_token_id=image_id,
                                         video_token_id=tok.convert_tokens_to_ids("<video>"), image_grid_pinpoints=grid,
                                         vision_feature_layer=-2, vision_feature_select_strategy="default",
                                         spatial_pool_stride=2)
    return config, proc


FAMILIES["llava_next"] = lambda: _llava_like("llava_next")
FAMILIES["llava_next_video"] = lambda: _llava_like("llava_next_video")
FAMILIES["vipllava"] = lambda: _llava_like("vipllava")


def _idefics2():
    import transformers as tf

    from tests.hf_family_helpers import IDEFICS3

    specials = ["<unk>", "<s>", "</s>", "<end_of_utterance>", "<image>", "<fake_token_around_image>"]
    tok = train_tokenizer(specials, "<s>", "<end_of_utterance>", "<unk>", "<unk>")
    image_processor = tf.Idefics2ImageProcessorPil(size={"shortest_edge": 32, "longest_edge": 64}, do_image_splitting=False)
    proc = tf.Idefics2Processor(image_processor=image_processor, tokenizer=tok, image_seq_len=4,
                                chat_template=IDEFICS3.replace("<|begin_of_text|>", "{{ bos_token }}"))
    config = tf.Idefics2Config(
        vision_config=dict(**VISION, image_size=64, patch_size=16),
        perceiver_config=dict(hidden_act="silu", resampler_n_latents=4, resampler_depth=1, resampler_n_heads=2,
                              resampler_head_dim=16, num_key_value_heads=1),
        text_config=dict(model_type="mistral", **_text(len(tok), tok)),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
    )
    return config, proc


FAMILIES["idefics2"] = _idefics2


def _paligemma():
    import transformers as tf

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<image>"]
    tok = train_tokenizer(specials, "<bos>", "<eos>", "<pad>", "<unk>")
    image_processor = tf.SiglipImageProcessorPil(size={"height": 32, "width": 32})
    image_processor.image_seq_length = 16
    proc = tf.PaliGemmaProcessor(image_processor=image_processor, tokenizer=tok, chat_template=PALIGEMMA)
    config = tf.PaliGemmaConfig(
        vision_config=dict(model_type="siglip_vision_model", **VISION, image_size=32, patch_size=8, projection_dim=64),
        text_config=dict(model_type="gemma", **_text(len(tok), tok, head_dim=32)),
        image_token_id=tok.convert_tokens_to_ids("<image>"), projection_dim=64,
    )
    return config, proc


FAMILIES["paligemma"] = _paligemma


def write_torchvision_only_checkpoint(model_type: str, directory: Path) -> Path:
    """A checkpoint folder of a family whose processor exists only with torchvision here (config, tokenizer, chat
    template and the processor settings naming the torchvision classes; no weights: the adapter refuses it before
    loading any)."""
    import json

    from transformers import AutoConfig
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    directory.mkdir(parents=True, exist_ok=True)
    AutoConfig.for_model(model_type).save_pretrained(directory)
    tok = train_tokenizer(["<unk>", "<s>", "</s>", "<image>", "<pad>"], "<s>", "</s>", "<pad>", "<unk>")
    tok.save_pretrained(directory)
    image_processor = IMAGE_PROCESSOR_MAPPING_NAMES[model_type]["torchvision"]
    (directory / "preprocessor_config.json").write_text(json.dumps({"image_processor_type": image_processor}))
    (directory / "processor_config.json").write_text(json.dumps({"processor_class": PROCESSOR_MAPPING_NAMES[model_type]}))
    (directory / "chat_template.jinja").write_text(MISTRAL)
    return directory




def _qwen3(model_type: str):
    import transformers as tf

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tok = train_tokenizer(specials, None, "<|im_end|>", "<|endoftext|>")
    ids = {name: tok.convert_tokens_to_ids(name) for name in specials}
    image_processor = tf.Qwen2VLImageProcessorPil(patch_size=16, merge_size=2, min_pixels=64 * 64, max_pixels=128 * 128)
    proc = image_only(tf.Qwen3VLProcessor)(image_processor=image_processor, tokenizer=tok,
                                           chat_template=CHATML.replace("{IMAGE}", "<|vision_start|><|image_pad|><|vision_end|>"))
    vision = dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=2, out_hidden_size=64, patch_size=16,
                  spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=64, deepstack_visual_indexes=[1])
    rope = {"rope_type": "default", "mrope_section": [4, 6, 6], "mrope_interleaved": True, "rope_theta": 10000.0}
    tokens = dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                  vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    if model_type == "qwen3_vl":
        text = _text(len(tok), tok, head_dim=32, rope_parameters=rope)
        return tf.Qwen3VLConfig(text_config=text, vision_config=vision, **tokens), proc
    text = _text(len(tok), tok, head_dim=32, rope_parameters={**rope, "partial_rotary_factor": 0.5},
                 layer_types=["linear_attention", "full_attention"], linear_num_key_heads=2, linear_num_value_heads=2,
                 linear_key_head_dim=16, linear_value_head_dim=16, linear_conv_kernel_dim=4)
    return tf.Qwen3_5Config(text_config=text, vision_config=vision, **tokens), proc


FAMILIES["qwen3_vl"] = lambda: _qwen3("qwen3_vl")
FAMILIES["qwen3_5"] = lambda: _qwen3("qwen3_5")


def _glm4v():
    import transformers as tf

    specials = ["<|endoftext|>", "[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|begin_of_image|>",
                "<|end_of_image|>", "<|image|>", "<|begin_of_video|>", "<|end_of_video|>", "<|video|>"]
    tok = train_tokenizer(specials, None, "<|endoftext|>", "<|endoftext|>")
    template = ("[gMASK]<sop>{% for message in messages %}<|{{ message['role'] }}|>\n"
                + _content_loop("<|begin_of_image|><|image|><|end_of_image|>")
                + "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
    image_processor = tf.Glm4vImageProcessorPil(size={"shortest_edge": 28 * 28 * 4, "longest_edge": 56 * 56 * 4},
                                                patch_size=14, merge_size=2)
    proc = image_only(tf.Glm4vProcessor)(image_processor=image_processor, tokenizer=tok, chat_template=template)
    ids = {name: tok.convert_tokens_to_ids(name) for name in specials}
    text = _text(len(tok), tok, head_dim=32, partial_rotary_factor=0.5,
                 rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0})
    vision = dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=2, out_hidden_size=64, patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2, image_size=56)
    config = tf.Glm4vConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image|>"],
                            video_token_id=ids["<|video|>"], image_start_token_id=ids["<|begin_of_image|>"],
                            image_end_token_id=ids["<|end_of_image|>"], video_start_token_id=ids["<|begin_of_video|>"],
                            video_end_token_id=ids["<|end_of_video|>"])
    return config, proc


FAMILIES["glm4v"] = _glm4v


def _got_ocr_style(kind: str):
    import transformers as tf

    if kind == "internvl":
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>"]
        tok = train_tokenizer(specials, None, "<|im_end|>", "<|endoftext|>",
                              extra_special_tokens={"start_image_token": "<img>", "end_image_token": "</img>",
                                                    "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"})
        image_processor = tf.GotOcr2ImageProcessorPil(size={"height": 32, "width": 32}, crop_to_patches=False)
        proc = image_only(tf.InternVLProcessor)(image_processor=image_processor, tokenizer=tok, image_seq_length=4,
                                                chat_template=CHATML.replace("{IMAGE}", "<IMG_CONTEXT>\n"))
        config = tf.InternVLConfig(
            vision_config=dict(**VISION, image_size=[32, 32], patch_size=[8, 8]),
            text_config=dict(model_type="qwen2", **_text(len(tok), tok)),
            image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"), downsample_ratio=0.5,
        )
        return config, proc
    specials = ["<PAD>", "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>", "<|START_OF_TURN_TOKEN|>", "<|USER_TOKEN|>",
                "<|CHATBOT_TOKEN|>", "<|SYSTEM_TOKEN|>", "<image>", "<|START_OF_IMG|>", "<|END_OF_IMG|>", "<|IMG_PATCH|>",
                "<|IMG_LINE_BREAK|>", "TILE", "TILE_GLOBAL"]
    tok = train_tokenizer(specials, "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>", "<PAD>")
    image_processor = tf.GotOcr2ImageProcessorPil(size={"height": 32, "width": 32}, crop_to_patches=False)
    image_processor = tf.GotOcr2ImageProcessorPil(size={"height": 32, "width": 32}, crop_to_patches=False, max_patches=2)
    proc = tf.AyaVisionProcessor(image_processor=image_processor, tokenizer=tok, patch_size=8, img_size=32,
                                 downsample_factor=2, chat_template=COHERE)
    config = tf.AyaVisionConfig(
        vision_config=dict(model_type="siglip_vision_model", **VISION, image_size=32, patch_size=8),
        text_config=dict(model_type="cohere2", **_text(len(tok), tok, head_dim=32, sliding_window=64)),
        image_token_index=tok.convert_tokens_to_ids("<|IMG_PATCH|>"), downsample_factor=2, adapter_layer_norm_eps=1e-5,
    )
    return config, proc


FAMILIES["internvl"] = lambda: _got_ocr_style("internvl")
FAMILIES["aya_vision"] = lambda: _got_ocr_style("aya_vision")


def _t5gemma2():
    import transformers as tf

    from tests.hf_family_helpers import _gemma3

    gemma_config, proc = _gemma3()
    tok = proc.tokenizer
    text = _text(len(tok), tok, head_dim=32, sliding_window=64, query_pre_attn_scalar=32)
    encoder = dict(text_config=text, vision_config=gemma_config.vision_config.to_dict(), mm_tokens_per_image=4,
                   image_token_index=gemma_config.image_token_index, boi_token_index=gemma_config.boi_token_index,
                   eoi_token_index=gemma_config.eoi_token_index)
    config = tf.T5Gemma2Config(encoder=encoder, decoder=text, image_token_index=gemma_config.image_token_index,
                               eoi_token_index=gemma_config.eoi_token_index, pad_token_id=tok.pad_token_id,
                               bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=False)
    return config, proc


FAMILIES["t5gemma2"] = _t5gemma2


def _mllama():
    import transformers as tf

    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                "<|image|>", "<|finetune_right_pad_id|>"]
    tok = train_tokenizer(specials, "<|begin_of_text|>", "<|eot_id|>", "<|finetune_right_pad_id|>")
    image_processor = tf.MllamaImageProcessorPil(size={"height": 32, "width": 32}, max_image_tiles=2)
    proc = tf.MllamaProcessor(image_processor=image_processor, tokenizer=tok, chat_template=LLAMA3)
    vocab = len(tok)
    config = tf.MllamaConfig(
        vision_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_global_layers=1,
                           attention_heads=2, image_size=32, patch_size=8, max_num_tiles=2, vision_output_dim=128,
                           intermediate_layers_indices=[0], supported_aspect_ratios=[[1, 1], [1, 2], [2, 1]]),
        text_config=dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, cross_attention_layers=[1],
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        image_token_index=tok.convert_tokens_to_ids("<|image|>"),
    )
    return config, proc


FAMILIES["mllama"] = _mllama


def _granite_docling():
    import transformers as tf

    from tests.hf_family_helpers import IDEFICS3

    rows = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
    specials = ["<|endoftext|>", "<|begin_of_text|>", "<end_of_utterance>", "<image>", "<fake_token_around_image>", "<global-img>", *rows]
    tok = train_tokenizer(specials, "<|begin_of_text|>", "<end_of_utterance>", "<|endoftext|>", vocab_size=700)
    image_processor = tf.GraniteDoclingImageProcessorPil(size={"height": 32, "width": 32}, crop_to_patches=False,
                                                         max_patches=2)
    proc = tf.GraniteDoclingProcessor(image_processor=image_processor, tokenizer=tok, image_seq_len=1, chat_template=IDEFICS3)
    config = tf.GraniteDoclingConfig(vision_config=dict(**VISION, image_size=32, patch_size=8, out_hidden_size=64, scale_factor=4),
                                     text_config=dict(model_type="llama", **_text(len(tok), tok)), scale_factor=1,
                                     image_token_id=tok.convert_tokens_to_ids("<image>"), pad_token_id=tok.pad_token_id)
    return config, proc


FAMILIES["granite_docling"] = _granite_docling
