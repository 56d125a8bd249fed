"""The bundled mPLUG-Owl against the upstream code's own outputs, and its loading, placeholders and decoding.

fixture_tiny_a (../shared/mplug_owl) is a tiny random checkpoint saved by the upstream X-PLUG code under
transformers 4.28.1, with its forward logits, loss, intermediate outputs and greedy tokens in expected.pt.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from owleval.models.mplug_owl import CheckpointMismatchError, MplugOwlForConditionalGeneration
from owleval.models.mplug_owl.modeling_mplug_owl import media_starts
from tests.mplug_owl_helpers import (
    FIXTURE_ROOTS as _FIXTURE_ROOTS,
    UPSTREAM_FIXTURES,
    greedy_without_cache,
    make_tiny_model,
    pad_rows,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_upstream_fixtures_are_present():
    assert UPSTREAM_FIXTURES, f"no upstream fixtures (fixture_*/expected.pt) in {[str(r) for r in _FIXTURE_ROOTS if r]}"


@pytest.fixture(scope="module", params=UPSTREAM_FIXTURES, ids=lambda p: p.name)
def fixture_dir(request) -> Path:
    return request.param


@pytest.fixture(scope="module")
def expected(fixture_dir: Path) -> dict:
    return torch.load(fixture_dir / "expected.pt", weights_only=False)


@pytest.fixture(scope="module", params=["sdpa", "eager"])
def upstream_model(request, fixture_dir: Path, expected) -> MplugOwlForConditionalGeneration:
    return MplugOwlForConditionalGeneration.from_pretrained(fixture_dir, attn_implementation=request.param).eval()


def _forward(model, e: dict, labels: torch.Tensor):
    return model(
        pixel_values=e["pixel_values"], input_ids=e["input_ids"], num_images=e["num_images"],
        non_padding_mask=e["non_padding_mask"], non_media_mask=e["non_media_mask"], prompt_mask=e["prompt_mask"],
        attention_mask=e["attention_mask"], labels=labels, return_dict=True,
    )


# -- the upstream fixture ----------------------------------------------------------------------------------------
@torch.no_grad()
def test_vision_and_abstractor_match_upstream(upstream_model, expected):
    vision = upstream_model.vision_model(expected["pixel_values"]).last_hidden_state
    torch.testing.assert_close(vision, expected["vision_last_hidden_state"], atol=1e-4, rtol=0)
    queries = upstream_model.query_tokens.expand(vision.shape[0], -1, -1)
    abstractor = upstream_model.abstractor(
        query_embeds=queries, encoder_hidden_states=vision, encoder_attention_mask=torch.ones(vision.shape[:2])
    ).last_hidden_state
    torch.testing.assert_close(abstractor, expected["abstractor_output"], atol=1e-4, rtol=0)
    torch.testing.assert_close(upstream_model.get_image_features(expected["pixel_values"]), abstractor)


@torch.no_grad()
def test_forward_logits_loss_and_label_masking_match_upstream(upstream_model, expected):
    labels = expected["labels_in"].clone()
    out = _forward(upstream_model, expected, labels)
    assert out.logits.shape == expected["logits"].shape
    torch.testing.assert_close(out.logits, expected["logits"], atol=1e-4, rtol=0)
    torch.testing.assert_close(out.loss, expected["loss"], atol=1e-4, rtol=0)
    assert torch.equal(labels, expected["labels_after_forward"])  # upstream masks labels in place


@torch.no_grad()
def test_greedy_generation_matches_upstream(upstream_model, expected):
    out = upstream_model.generate(
        pixel_values=expected["pixel_values"], input_ids=expected["input_ids"],
        attention_mask=expected["attention_mask"], max_new_tokens=expected["generated_ids"].shape[1] - 1, do_sample=False, num_beams=1,
        return_dict_in_generate=True, output_scores=True,
    )
    # 4.28.1 convention, kept by default: a BOS column, then the new tokens (the prompt is not echoed)
    assert torch.equal(out.sequences, expected["generated_ids"])
    torch.testing.assert_close(torch.stack(out.scores, 1), expected["generated_scores"], atol=1e-4, rtol=0)
    new_only = upstream_model.generate(
        pixel_values=expected["pixel_values"], input_ids=expected["input_ids"],
        attention_mask=expected["attention_mask"], max_new_tokens=expected["generated_ids"].shape[1] - 1, prepend_bos=False,
    )
    assert torch.equal(new_only, expected["generated_ids"][:, 1:])


@torch.no_grad()
def test_per_sample_generation_matches_upstream(upstream_model, expected):
    image_offset = 0
    for row, count in enumerate(expected["num_images"].tolist()):
        keep = expected["attention_mask"][row] > 0
        ids = expected["input_ids"][row][keep][None]
        pixels = expected["pixel_values"][image_offset : image_offset + count]
        image_offset += count
        out = upstream_model.generate(pixel_values=pixels, input_ids=ids, max_new_tokens=expected["generated_ids"].shape[1] - 1)
        want = expected["generated_ids_per_sample"][row]
        assert torch.equal(out[0], want[: out.shape[1]]) and not want[out.shape[1]:].any()


def test_upstream_generate_defaults_follow_the_language_model(upstream_model, expected, fixture_dir):
    """Upstream generate used the LM's settings (greedy, max_length 20 -> 19 new tokens), not generation_config.json."""
    saved = json.loads((fixture_dir / "generation_config.json").read_text())
    assert upstream_model.generation_config.do_sample is saved.get("do_sample", False)  # what the checkpoint's file says
    args = {key: expected[key] for key in ("pixel_values", "input_ids", "attention_mask")}
    first, second = upstream_model.generate(**args), upstream_model.generate(**args)
    assert first.shape[1] <= 20 and torch.equal(first, second)
    assert upstream_model.generate(**args, max_length=6).shape[1] <= 6


# -- placeholders ----------------------------------------------------------------------------------------------
def test_media_starts_follow_upstream_runs():
    ids = torch.tensor([[1, -1, -1, 5, -1, -1, -2, -2, 7]])
    assert media_starts(ids).nonzero()[:, 1].tolist() == [1, 4, 6]  # a new run wherever the negative id changes


@torch.no_grad()
def test_images_fill_their_slots_in_batch_order():
    model = make_tiny_model(vocab_size=120)
    slots = model.config.image_placeholder_length
    assert slots == model.config.num_query_tokens + 1
    features = torch.randn(3, slots, model.config.text_config.hidden_size)
    ids = torch.tensor([[1, 5] + [-1] * slots + [6, 7] + [-1] * slots + [8],
                        [1] + [-1] * slots + list(range(9, 9 + 4 + slots))])
    embeds, _ = model._embed_with_images(ids, features, None, skip_last_position=False, placeholder_id=0)
    assert torch.equal(embeds[0, 2 : 2 + slots], features[0]) and torch.equal(embeds[1, 1 : 1 + slots], features[2])
    assert torch.equal(embeds[0, 4 + slots : 4 + 2 * slots], features[1])
    text = model.get_input_embeddings()(torch.tensor([6, 7]))
    assert torch.equal(embeds[0, 2 + slots : 4 + slots], text)
    # with num_images, sample b starts at the sum of the earlier counts (upstream forward)
    embeds, _ = model._embed_with_images(ids, features, torch.tensor([1, 2]), skip_last_position=False,
                                         placeholder_id=0)
    assert torch.equal(embeds[1, 1 : 1 + slots], features[1])


def test_wrong_placeholder_runs_are_refused():
    model = make_tiny_model(vocab_size=120)
    slots = model.config.image_placeholder_length
    features = torch.randn(1, slots, model.config.text_config.hidden_size)
    short = torch.tensor([[1, 5] + [-1] * (slots - 2)])
    with pytest.raises(ValueError, match="placeholder slots"):
        model.generate(input_ids=short, image_features=features, max_new_tokens=1)
    two = torch.tensor([[1] + [-1] * slots + [4] + [-1] * slots])
    with pytest.raises(ValueError, match="2 image placeholder runs but only 1"):
        model.generate(input_ids=two, image_features=features, max_new_tokens=1)
    with pytest.raises(ValueError, match="no pixel_values"):
        model(input_ids=two)


# -- decoding ----------------------------------------------------------------------------------------------------
def _prompts(model, lengths=(5, 11, 8)) -> tuple[list[torch.Tensor], torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    slots = model.config.image_placeholder_length
    rows = []
    for n in lengths:
        text = torch.randint(3, model.config.text_config.vocab_size, (n,), generator=gen)
        rows.append(torch.cat([torch.tensor([1]), text[:2], torch.full((slots,), -1), text[2:]]))
    pixels = torch.randn(len(lengths), 3, 56, 56, generator=gen)
    return rows, pixels


@pytest.mark.parametrize("side", ["left", "right"])
@torch.no_grad()
def test_cached_generation_equals_full_recompute(side):
    model = make_tiny_model(vocab_size=120, seed=3)
    rows, pixels = _prompts(model)
    ids, mask = pad_rows(rows, side)
    got = model.generate(input_ids=ids, attention_mask=mask, pixel_values=pixels, max_new_tokens=6,
                         prepend_bos=False, eos_token_id=None)
    assert torch.equal(got, greedy_without_cache(model, ids, mask, model.get_image_features(pixels), 6))


@torch.no_grad()
def test_left_padded_batch_equals_one_by_one():
    model = make_tiny_model(vocab_size=120, seed=4)
    rows, pixels = _prompts(model)
    ids, mask = pad_rows(rows, "left")
    batched = model.generate(input_ids=ids, attention_mask=mask, pixel_values=pixels, max_new_tokens=8,
                             prepend_bos=False, eos_token_id=None)
    for i, row in enumerate(rows):
        alone = model.generate(input_ids=row[None], pixel_values=pixels[i : i + 1], max_new_tokens=8,
                               prepend_bos=False, eos_token_id=None)
        assert torch.equal(batched[i], alone[0])


@torch.no_grad()
def test_bfloat16_matches_float32_loosely():
    model = make_tiny_model(vocab_size=120, seed=5)
    rows, pixels = _prompts(model, lengths=(6,))
    ids = rows[0][None]
    ref = model(input_ids=ids, pixel_values=pixels).logits
    half = model.to(torch.bfloat16)(input_ids=ids, pixel_values=pixels).logits
    assert half.dtype == torch.bfloat16
    assert (half.float() - ref).abs().max() < 0.1 * ref.abs().max()


# -- loading -----------------------------------------------------------------------------------------------------
def _logits(model, seed: int = 0) -> torch.Tensor:
    rows, pixels = _prompts(model, lengths=(6,))
    with torch.no_grad():
        return model(input_ids=rows[0][None], pixel_values=pixels).logits


def _write_bin_shards(state: dict[str, torch.Tensor], folder: Path, shards: int) -> None:
    names = sorted(state)
    weight_map = {}
    for i in range(shards):
        file = f"pytorch_model-{i + 1:05d}-of-{shards:05d}.bin"
        part = {n: state[n].clone() for n in names[i::shards]}
        torch.save(part, folder / file)
        weight_map.update(dict.fromkeys(part, file))
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index))


def test_loads_sharded_bin_with_inv_freq_buffers(tmp_path):
    model = make_tiny_model(vocab_size=120, seed=6)
    model.config.save_pretrained(tmp_path)
    state = dict(model.state_dict())
    for i in range(model.config.text_config.num_hidden_layers):  # transformers 4.28 saved these
        state[f"language_model.model.layers.{i}.self_attn.rotary_emb.inv_freq"] = torch.ones(8)
    _write_bin_shards(state, tmp_path, shards=3)
    loaded = MplugOwlForConditionalGeneration.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(_logits(loaded), _logits(model), atol=0, rtol=0)


def test_loads_sharded_safetensors_with_index(tmp_path):
    model = make_tiny_model(vocab_size=120, seed=7)
    model.save_pretrained(tmp_path, max_shard_size="200KB")
    assert (tmp_path / "model.safetensors.index.json").is_file() and len(list(tmp_path.glob("*.safetensors"))) > 1
    loaded = MplugOwlForConditionalGeneration.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(_logits(loaded), _logits(model), atol=0, rtol=0)


def test_key_mismatch_is_an_error_listing_the_keys(tmp_path):
    make_tiny_model(vocab_size=120).save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    weights.pop("abstractor.visual_fc.weight")
    weights["abstractor.visual_fc.extra"] = torch.zeros(1)
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointMismatchError) as err:
        MplugOwlForConditionalGeneration.from_pretrained(tmp_path)
    assert "missing from the checkpoint (1):\n    abstractor.visual_fc.weight" in str(err.value)
    assert "not in the model (1):\n    abstractor.visual_fc.extra" in str(err.value)


def test_missing_checkpoint_folder_is_an_error(tmp_path):
    with pytest.raises(OSError):
        MplugOwlForConditionalGeneration.from_pretrained(tmp_path / "nothing-here")


# -- processor ---------------------------------------------------------------------------------------------------
def test_prompt_template_is_the_published_one():
    from owleval.models.mplug_owl import ChatTurn, build_prompt

    assert build_prompt([ChatTurn("What is this?", 1)]) == (
        "The following is a conversation between a curious human and AI assistant. The assistant gives helpful, "
        "detailed, and polite answers to the user's questions.\nHuman: <image>\nHuman: What is this?\nAI: "
    )
    two = build_prompt([ChatTurn("Compare them.", 2)])
    assert two.endswith("questions.\nHuman: <image>\nHuman: <image>\nHuman: Compare them.\nAI: ")
    with pytest.raises(ValueError):
        build_prompt([ChatTurn("Done?", 0, "yes")])


def test_processor_lays_out_tokens_and_pixels_like_upstream():
    import numpy as np
    from PIL import Image

    from owleval.models.mplug_owl import MplugOwlConfig, MplugOwlImageProcessor, MplugOwlProcessor
    from tests.mplug_owl_helpers import make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer()
    slots = MplugOwlConfig().image_placeholder_length
    assert slots == 65  # the released model: 64 queries + vit_eos
    processor = MplugOwlProcessor(MplugOwlImageProcessor(size=224), tokenizer, image_slots=slots)

    def chunk(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    ids = processor.tokenize("Intro\nHuman: <image>\nHuman: Why?\nAI: ")
    assert ids == [1] + chunk("Intro\nHuman: ") + [-1] * 65 + chunk("\nHuman: Why?\nAI: ")

    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 255, (90, 130, 3), dtype=np.uint8))
    batch = processor(["<image> a", "b"], images=[picture], padding_side="right")
    assert batch["num_images"].tolist() == [1, 0] and batch["pixel_values"].shape == (1, 3, 224, 224)
    assert batch["input_ids"][1, -1] == tokenizer.eos_token_id and batch["attention_mask"][1, -1] == 0  # eos pads
    squashed = np.asarray(picture.resize((224, 224), Image.BICUBIC), dtype=np.float64) / 255.0
    want = (squashed - np.array([0.48145466, 0.4578275, 0.40821073])) / np.array([0.26862954, 0.26130258, 0.27577711])
    assert np.abs(batch["pixel_values"][0].numpy().transpose(1, 2, 0) - want).max() < 1e-5
    with pytest.raises(ValueError, match="1 <image> tokens but 0 images"):
        processor(["<image> a"])
