"""The minigpt4 adapter: the demo's prompt, the composed model, loading errors, stopping at ###, `owleval generate`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from owleval.adapters.base import AdapterError, Conversation, GenerationConfig, ImageRef, LoadOptions, Turn
from owleval.adapters.minigpt4 import (
    CLIP_MEAN,
    CLIP_STD,
    DEMO_GENERATION,
    MiniGPT4Adapter,
    build_minigpt4_prompt,
    clean_answer,
    preprocess_image,
)
from owleval.answers import read_answer_file
from owleval.cli import app
from owleval.questions import load_questions
from tests.llava_minigpt4_helpers import make_tiny_minigpt4_checkpoint

GREEDY = GenerationConfig(max_new_tokens=8)
IMG = ImageRef(Path("unused.jpg"))  # prompt builders never open the image
HEAD = (
    "Give the following image: <Img>ImageContent</Img>. You will be able to see the image once I provide it to you. "
    "Please answer my questions."
)


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_tiny_minigpt4_checkpoint(tmp_path_factory.mktemp("minigpt4"))


def _options(parts: dict[str, str], **changes: object) -> LoadOptions:
    options = {k: v for k, v in parts.items() if k != "checkpoint"}
    options.update(changes.pop("options", {}))  # type: ignore[arg-type]
    values = {"checkpoint": parts["checkpoint"], "device": "cpu", "batch_size": 8, "options": options, **changes}
    return LoadOptions(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def adapter(parts: dict[str, str]) -> MiniGPT4Adapter:
    return MiniGPT4Adapter.load(_options(parts))


def _image(owl_data: Path, name: str) -> ImageRef:
    return ImageRef(owl_data / "cases" / name)


# -- the prompt, the answer, the image: pure functions ------------------------------------------------------------
def test_prompt_first_turn_is_the_demo_prompt() -> None:
    prompt = build_minigpt4_prompt(Conversation((Turn("What is unusual here?", (IMG,)),)))
    assert prompt == f"{HEAD}###Human: <Img><ImageHere></Img> What is unusual here?###Assistant:"


def test_prompt_later_turns_carry_the_answers() -> None:
    conversation = Conversation((Turn("Q1?", (IMG,), answer="A1."), Turn("Q2?", answer="A2."), Turn("Q3?")))
    assert build_minigpt4_prompt(conversation) == (
        f"{HEAD}###Human: <Img><ImageHere></Img> Q1?###Assistant: A1.###Human: Q2?###Assistant: A2."
        "###Human: Q3?###Assistant:"
    )


def test_prompt_without_image_and_with_two_images() -> None:
    assert build_minigpt4_prompt(Conversation((Turn("Hi?"),))) == f"{HEAD}###Human: Hi?###Assistant:"
    two = build_minigpt4_prompt(Conversation((Turn("Compare.", (IMG, IMG)),)))
    # as in the demo: each upload is its own Human message, the question joins the last one
    assert two == f"{HEAD}###Human: <Img><ImageHere></Img>###Human: <Img><ImageHere></Img> Compare.###Assistant:"


def test_clean_answer_keeps_the_text_before_the_first_separator() -> None:
    assert clean_answer(" A red car. ###Human: next###Assistant: x") == "A red car."
    assert clean_answer("Assistant: Sure.\n") == "Sure."
    assert clean_answer("###") == ""


def test_demo_defaults() -> None:
    assert (DEMO_GENERATION.max_new_tokens, DEMO_GENERATION.num_beams, DEMO_GENERATION.temperature) == (300, 1, 1.0)
    assert (DEMO_GENERATION.top_p, DEMO_GENERATION.repetition_penalty, DEMO_GENERATION.do_sample) == (0.9, 1.0, True)


def test_demo_sampling_is_repeatable_with_its_seed(adapter: MiniGPT4Adapter, owl_data: Path) -> None:
    from dataclasses import replace

    asked = [Conversation((Turn("What is in the image?", (_image(owl_data, "1.jpg"),)),))]
    config = replace(DEMO_GENERATION, max_new_tokens=6)
    first, again = adapter.generate(asked, config), adapter.generate(asked, config)
    others = {adapter.generate(asked, replace(config, seed=seed))[0] for seed in range(1, 6)}
    assert first == again and others - set(first)


def test_image_preprocessing_is_a_square_bicubic_resize_with_clip_normalisation() -> None:
    red = Image.new("RGB", (300, 120), (255, 0, 0))
    pixels = preprocess_image(red, 224)
    assert pixels.shape == (3, 224, 224) and pixels.dtype == torch.float32
    want = [(1 - CLIP_MEAN[0]) / CLIP_STD[0], -CLIP_MEAN[1] / CLIP_STD[1], -CLIP_MEAN[2] / CLIP_STD[2]]
    assert torch.allclose(pixels.mean(dim=(1, 2)), torch.tensor(want), atol=1e-5)
    gradient = Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1)), "L")
    resized = np.asarray(gradient.convert("RGB").resize((16, 16), Image.BICUBIC), dtype=np.float32)[..., 0] / 255
    assert torch.allclose(preprocess_image(gradient, 16)[0], torch.from_numpy((resized - CLIP_MEAN[0]) / CLIP_STD[0]))


# -- the composed model -------------------------------------------------------------------------------------------
def test_prompt_embeddings_put_the_queries_in_place_of_the_image(adapter: MiniGPT4Adapter, owl_data: Path) -> None:
    image = _image(owl_data, "1.jpg")
    prompt = build_minigpt4_prompt(Conversation((Turn("Why?", (image,)),)))
    before, after = prompt.split("<ImageHere>")
    pixels = preprocess_image(image.load(), adapter.facts["image_size"]).unsqueeze(0)
    with torch.inference_mode():
        queries = adapter.encode_images(pixels)
        embeds = adapter.embed_prompt(prompt, [queries[0]])
    tokenizer, table = adapter.tokenizer, adapter.parts["language_model"].get_input_embeddings().weight
    head = [tokenizer.bos_token_id, *tokenizer(before, add_special_tokens=False).input_ids]
    tail = tokenizer(after, add_special_tokens=False).input_ids
    assert queries.shape == (1, 32, table.shape[1])
    assert embeds.shape == (len(head) + 32 + len(tail), table.shape[1])
    assert torch.equal(embeds[: len(head)], table[head])  # BOS once, at the very start
    assert torch.equal(embeds[len(head) : len(head) + 32], queries[0])
    assert torch.equal(embeds[len(head) + 32 :], table[tail])
    assert tokenizer.bos_token_id not in tail


def test_generation_stops_at_the_separator(adapter: MiniGPT4Adapter, owl_data: Path) -> None:
    """A scripted LM head says "Sure" then "###" then more: the answer is "Sure" and decoding stops at "###"."""
    tokenizer, llm = adapter.tokenizer, adapter.parts["language_model"]
    script = [tokenizer.convert_tokens_to_ids(t) for t in tokenizer.tokenize("Sure###Human")]
    sep_at = tokenizer.convert_ids_to_tokens(script).index("###")
    calls: list[int] = []

    def scripted(module: torch.nn.Module, args: tuple, logits: torch.Tensor) -> torch.Tensor:
        forced = torch.full_like(logits, -1e4)
        forced[:, -1, script[min(len(calls), len(script) - 1)]] = 0
        calls.append(1)
        return forced

    handle = llm.lm_head.register_forward_hook(scripted)
    try:
        answers = adapter.generate([Conversation((Turn("Why?", (_image(owl_data, "1.jpg"),)),))] * 2, GREEDY)
    finally:
        handle.remove()
    assert answers == ["Sure", "Sure"]
    assert len(calls) == sep_at + 1 < GREEDY.max_new_tokens


def test_long_prompts_lose_their_start_as_in_the_demo(parts: dict[str, str], owl_data: Path) -> None:
    short = MiniGPT4Adapter.load(_options(parts, options={"max_length": "40"}))
    lengths: list[int] = []

    def record(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        if kwargs.get("inputs_embeds") is not None:  # the prompt; later steps feed one token id each
            lengths.append(kwargs["inputs_embeds"].shape[1])

    handle = short.parts["language_model"].model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        short.generate([Conversation((Turn("Why?", (_image(owl_data, "1.jpg"),)),))], GREEDY)
    finally:
        handle.remove()
    assert lengths[0] == 40 - GREEDY.max_new_tokens  # the whole prompt is 32 queries + ~70 text tokens


def test_batch_equals_one_by_one_under_greedy(adapter: MiniGPT4Adapter, owl_data: Path) -> None:
    conversations = [
        Conversation((Turn("What is in the image?", (_image(owl_data, "1.jpg"),)),)),
        Conversation((Turn("Describe it in detail.", (_image(owl_data, "5.jpg"),), answer="A man."), Turn("Why?"))),
        Conversation((Turn("Read the text, word by word, please.", (_image(owl_data, "49.jpg"),)),)),
    ]
    together = adapter.generate(conversations, GREEDY)
    assert together == [adapter.generate([c], GREEDY)[0] for c in conversations]
    assert all(isinstance(a, str) for a in together)


def test_second_turn_sees_the_first_answer(adapter: MiniGPT4Adapter, owl_data: Path) -> None:
    def second_turn(answer: str) -> Conversation:
        return Conversation((Turn("What is it?", (_image(owl_data, "1.jpg"),), answer=answer), Turn("And why?")))

    answers = adapter.generate([second_turn(a) for a in ("A cat.", "A cat.", "Two people walking a dog.")], GREEDY)
    assert answers[0] == answers[1] and answers[0] != answers[2]


def test_the_image_changes_the_model_input_and_answer(adapter: MiniGPT4Adapter, owl_data: Path) -> None:
    size = adapter.facts["image_size"]
    pixels = torch.stack([preprocess_image(_image(owl_data, n).load(), size) for n in ("1.jpg", "5.jpg")])
    with torch.inference_mode():
        queries = adapter.encode_images(pixels)
    assert not torch.allclose(queries[0], queries[1])
    asked = [Conversation((Turn("What is in the image?", (_image(owl_data, n),)),)) for n in ("1.jpg", "5.jpg")]
    first, other = adapter.generate(asked, GREEDY)
    assert first != other


def test_dtype_and_device_are_honoured(parts: dict[str, str], owl_data: Path) -> None:
    bf16 = MiniGPT4Adapter.load(_options(parts, dtype="bfloat16", options={"attn_implementation": "eager"}))
    dtypes = {name.split(".")[0]: p.dtype for name, p in bf16.parts.named_parameters()}
    assert dtypes == {"vision_model": torch.bfloat16, "qformer": torch.float32, "llama_proj": torch.bfloat16,
                      "language_model": torch.bfloat16}
    assert {p.device.type for p in bf16.parts.parameters()} == {"cpu"}
    assert bf16.parts["language_model"].config._attn_implementation == "eager"
    assert isinstance(bf16.generate([Conversation((Turn("What?", (_image(owl_data, "1.jpg"),)),))], GREEDY)[0], str)
    record = bf16.provenance()
    assert (record["dtype"], record["attn_implementation"], record["num_query_tokens"]) == ("bfloat16", "eager", 32)
    json.dumps(record)


# -- loading errors -----------------------------------------------------------------------------------------------
def test_missing_paths_are_named(parts: dict[str, str], tmp_path: Path) -> None:
    gone = str(tmp_path / "gone")
    for key in ("vision_checkpoint", "projection_checkpoint"):
        with pytest.raises(AdapterError, match="gone"):
            MiniGPT4Adapter.load(_options(parts, options={key: gone}))
    with pytest.raises(AdapterError, match="gone"):
        MiniGPT4Adapter.load(_options(parts, checkpoint=gone))
    with pytest.raises(AdapterError, match="needs the Vicuna weights"):
        MiniGPT4Adapter.load(_options(parts, checkpoint=None))
    no_projection = {k: v for k, v in parts.items() if k != "projection_checkpoint"}
    with pytest.raises(AdapterError, match="projection_checkpoint"):
        MiniGPT4Adapter.load(_options(no_projection))


def test_option_conflicts_and_values(parts: dict[str, str]) -> None:
    with pytest.raises(AdapterError, match="disagree"):
        MiniGPT4Adapter.load(_options(parts, options={"llm_checkpoint": parts["vision_checkpoint"]}))
    for bad in ("lots", "-5", "1"):
        with pytest.raises(AdapterError, match="max_length"):
            MiniGPT4Adapter.load(_options(parts, options={"max_length": bad}))
    with pytest.raises(AdapterError, match="'blip-2' model, expected llama"):
        MiniGPT4Adapter.load(_options(parts, checkpoint=parts["vision_checkpoint"]))
    with pytest.raises(AdapterError, match="'llama' model, expected a BLIP-2"):
        MiniGPT4Adapter.load(_options(parts, options={"vision_checkpoint": parts["checkpoint"]}))


def test_llm_checkpoint_option_replaces_checkpoint(parts: dict[str, str]) -> None:
    loaded = MiniGPT4Adapter.load(_options(parts, checkpoint=None, options={"llm_checkpoint": parts["checkpoint"]}))
    assert loaded.provenance()["checkpoint"] == parts["checkpoint"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"state_dict": {}}, "under 'model'"),
        ({"model": {"llama_proj.weight": torch.zeros(32, 16)}}, "no 'llama_proj.bias'"),
        ({"model": {"llama_proj.weight": torch.zeros(64, 16), "llama_proj.bias": torch.zeros(64)}}, r"\(64, 16\)"),
    ],
)
def test_bad_projection_checkpoints(parts: dict[str, str], tmp_path: Path, content: dict, message: str) -> None:
    bad = tmp_path / "bad.pth"
    torch.save(content, bad)
    with pytest.raises(AdapterError, match=message):
        MiniGPT4Adapter.load(_options(parts, options={"projection_checkpoint": str(bad)}))
    bad.write_bytes(b"not a pickle")
    with pytest.raises(AdapterError, match="not a loadable torch file"):
        MiniGPT4Adapter.load(_options(parts, options={"projection_checkpoint": str(bad)}))


def _copy_blip2(parts: dict[str, str], tmp_path: Path) -> tuple[Path, dict[str, str]]:
    blip2 = tmp_path / "blip2"
    shutil.copytree(parts["vision_checkpoint"], blip2)
    return blip2, json.loads((blip2 / "model.safetensors.index.json").read_text())["weight_map"]


def test_only_the_vision_and_qformer_shards_are_read(parts: dict[str, str], tmp_path: Path) -> None:
    blip2, weight_map = _copy_blip2(parts, tmp_path)
    needed = {shard for key, shard in weight_map.items() if key.startswith(("vision_model.", "qformer.", "query_"))}
    language_only = set(weight_map.values()) - needed
    assert language_only, "the tiny checkpoint should have a shard holding only language-model weights"
    for shard in language_only:
        (blip2 / shard).unlink()
    assert MiniGPT4Adapter.load(_options(parts, options={"vision_checkpoint": str(blip2)})).query_tokens.shape[1] == 32


@pytest.mark.parametrize("damage", ["missing", "wrong shape", "unexpected", "shard gone"])
def test_damaged_blip2_checkpoints(parts: dict[str, str], tmp_path: Path, damage: str) -> None:
    from safetensors.torch import load_file, save_file

    blip2, weight_map = _copy_blip2(parts, tmp_path)
    key = "qformer.encoder.layer.0.attention.attention.query.weight"
    shard = blip2 / weight_map[key]
    expected = f"{damage}.*attention.attention.query.weight"
    if damage == "shard gone":
        shard.unlink()
        expected = f"{shard.name}.*missing"
    else:
        weights = load_file(shard)
        if damage == "missing":
            del weights[key]
        elif damage == "wrong shape":
            weights[key] = torch.zeros(2, 2)
        else:
            weights["qformer.encoder.layer.0.attention.attention.query_extra.weight"] = torch.zeros(2, 2)
            expected = "1 unexpected tensor.*query_extra"
        save_file(weights, shard, metadata={"format": "pt"})
    with pytest.raises(AdapterError, match=expected):
        MiniGPT4Adapter.load(_options(parts, options={"vision_checkpoint": str(blip2)}))


def test_qformer_text_path_weights_are_ignored(parts: dict[str, str], tmp_path: Path) -> None:
    """Some BLIP-2 checkpoints keep the Q-Former's text feed-forward: the query path never uses it."""
    from safetensors.torch import load_file, save_file

    blip2, weight_map = _copy_blip2(parts, tmp_path)
    shard = blip2 / weight_map["qformer.layernorm.weight"]
    weights = load_file(shard)
    weights["qformer.encoder.layer.1.intermediate.dense.weight"] = torch.zeros(4, 4)
    save_file(weights, shard, metadata={"format": "pt"})
    assert MiniGPT4Adapter.load(_options(parts, options={"vision_checkpoint": str(blip2)})).query_tokens.shape[1] == 32


# -- end to end ---------------------------------------------------------------------------------------------------
def test_owleval_generate_end_to_end_over_all_questions(parts: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "minigpt4.jsonl"
    options = [arg for key in ("vision_checkpoint", "projection_checkpoint") for arg in ("-o", f"{key}={parts[key]}")]
    args = ["generate", "--model", "minigpt4", "--checkpoint", parts["checkpoint"], *options, "--out", str(out),
            "--device", "cpu", "--batch-size", "8", "--max-new-tokens", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    checked = read_answer_file(out, load_questions())
    assert checked.ok and not checked.partial and len(checked.answers) == 82
    meta = json.loads(out.with_name(out.name + ".meta.json").read_text())
    assert meta["status"] == "finished" and meta["provenance"]["adapter"] == "minigpt4"
    record = meta["provenance"]
    assert record["projection_sha256"] and record["vision_checkpoint"] == parts["vision_checkpoint"]


def test_token_probabilities_when_asked(adapter: MiniGPT4Adapter, owl_data: Path) -> None:
    from tests.logprobs_helpers import assert_scored_like_plain, image_conversations

    assert_scored_like_plain(adapter, image_conversations(owl_data))
