"""The mplug-owl adapter on a tiny random checkpoint: prompts, batching, image-feature cache, sampling, errors,
provenance, and `owleval generate --model mplug-owl` end to end over all 82 questions."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from owleval.adapters.base import AdapterError, Conversation, GenerationConfig, ImageRef, LoadOptions, Turn
from owleval.adapters.mplug_owl import MplugOwlAdapter
from owleval.adapters.registry import get_adapter_class

from owleval.models.mplug_owl import ChatTurn, build_prompt
from tests.mplug_owl_helpers import make_tiny_mplug_owl_checkpoint

GREEDY = GenerationConfig(max_new_tokens=6)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_tiny_mplug_owl_checkpoint(tmp_path_factory.mktemp("tiny_mplug_owl"))


@pytest.fixture(scope="module")
def adapter(checkpoint) -> MplugOwlAdapter:
    return MplugOwlAdapter.load(LoadOptions(checkpoint=str(checkpoint), device="cpu", batch_size=4))


@pytest.fixture(scope="module")
def images(owl_data) -> list[ImageRef]:
    return [ImageRef(owl_data / "cases" / name) for name in ("1.jpg", "10.jpg", "11.jpg")]


def _spy_inputs(adapter: MplugOwlAdapter, monkeypatch) -> list[dict]:
    calls: list[dict] = []
    original = adapter.model.generate

    def spy(**kwargs):
        calls.append(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(adapter.model, "generate", spy)
    return calls


def test_registered_under_its_name():
    assert get_adapter_class("mplug-owl") is MplugOwlAdapter
    assert MplugOwlAdapter.default_checkpoint == "MAGAer13/mplug-owl-llama-7b"


def test_dialogue_prompt_has_history_and_one_image_line(adapter, images, monkeypatch):
    calls = _spy_inputs(adapter, monkeypatch)
    conv = Conversation((Turn("What is it?", (images[0],), answer="A cat."), Turn("Why is it funny?")), key="q2")
    adapter.generate([conv], GREEDY)
    want = build_prompt([ChatTurn("What is it?", 1, "A cat."), ChatTurn("Why is it funny?")])
    assert want.endswith("questions.\nHuman: <image>\nHuman: What is it?\nAI: A cat.\nHuman: Why is it funny?\nAI: ")
    ids = calls[0]["input_ids"][0]
    assert ids.tolist() == adapter.processor.tokenize(want)
    assert (ids == -1).sum() == adapter.model.config.num_query_tokens + 1
    assert calls[0]["image_features"].shape[0] == 1


def test_batch_is_left_padded_and_equals_one_by_one(checkpoint, images):
    fresh = MplugOwlAdapter.load(LoadOptions(checkpoint=str(checkpoint), device="cpu", batch_size=8))
    convs = [
        Conversation((Turn("Describe this image in detail, please.", (images[0],)),), key="a"),
        Conversation((Turn("What?", (images[1],)),), key="b"),
        Conversation((Turn("What is it?", (images[2],), answer="A chart."), Turn("Read the numbers.")), key="c"),
    ]
    batch = fresh.processor.pad([[1, 5, 6], [1, 7]], padding_side="left")
    assert batch["input_ids"].tolist()[1] == [2, 1, 7] and batch["attention_mask"].tolist()[1] == [0, 1, 1]
    together = fresh.generate(convs, GenerationConfig(max_new_tokens=10))
    assert together == [fresh.generate([c], GenerationConfig(max_new_tokens=10))[0] for c in convs]
    assert all(isinstance(t, str) for t in together)


def test_image_features_are_computed_once_per_image(checkpoint, images):
    cached = MplugOwlAdapter.load(LoadOptions(checkpoint=str(checkpoint), device="cpu"))
    uncached = MplugOwlAdapter.load(LoadOptions(checkpoint=str(checkpoint), device="cpu",
                                                options={"image_cache_size": "0"}))
    first = Conversation((Turn("What is it?", (images[0],)),), key="q1")
    answers = []
    for run in (cached, uncached):
        a1 = run.generate([first], GREEDY)[0]
        second = Conversation((Turn("What is it?", (images[0],), answer=a1), Turn("And then?")), key="q2")
        answers.append((a1, run.generate([second], GREEDY)[0]))
    assert cached.images_encoded == 1 and uncached.images_encoded == 2
    assert answers[0] == answers[1]
    features = cached.image_features([images[0], images[1], images[0]])
    assert cached.images_encoded == 2 and torch.equal(features[0], features[2])


def test_a_cache_smaller_than_the_batch_still_serves_every_image(checkpoint, images):
    """An image cached before a batch and pushed out of the cache during it is still used (not encoded again)."""
    small = MplugOwlAdapter.load(LoadOptions(checkpoint=str(checkpoint), device="cpu",
                                             options={"image_cache_size": "1"}))
    alone = small.image_features([images[0]])
    mixed = small.image_features([images[0], images[1], images[0]])
    assert small.images_encoded == 2
    assert torch.equal(mixed[0], alone[0]) and torch.equal(mixed[2], alone[0])
    assert list(small._image_cache) == [images[0].sha256]  # the most recently used one stays


def test_sampling_is_seeded(adapter, images):
    conv = [Conversation((Turn("What is it?", (images[1],)),), key="q")]

    def sample(seed: int) -> list[str]:
        return adapter.generate(conv, GenerationConfig(max_new_tokens=12, do_sample=True, top_k=50, seed=seed))

    assert sample(1) == sample(1)
    assert len({sample(s)[0] for s in (1, 2, 3)}) > 1


@pytest.mark.parametrize(
    ("options", "message"),
    [({"attn_implementation": "fast"}, "attn_implementation"), ({"image_cache_size": "many"}, "image_cache_size")],
)
def test_bad_options_are_refused(checkpoint, options, message):
    with pytest.raises(AdapterError, match=message):
        MplugOwlAdapter.load(LoadOptions(checkpoint=str(checkpoint), device="cpu", options=options))


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(AdapterError, match="does not exist"):
        MplugOwlAdapter.load(LoadOptions(checkpoint=str(tmp_path / "nope"), device="cpu"))
    with pytest.raises(AdapterError, match="no config.json"):
        MplugOwlAdapter.load(LoadOptions(checkpoint=str(tmp_path), device="cpu"))
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(AdapterError, match="is a file"):
        MplugOwlAdapter.load(LoadOptions(checkpoint=str(tmp_path / "weights.bin"), device="cpu"))


def test_dtype_and_attention_options_reach_the_model(checkpoint):
    loaded = MplugOwlAdapter.load(LoadOptions(checkpoint=str(checkpoint), device="cpu", dtype="bfloat16",
                                              options={"attn_implementation": "eager"}))
    assert {p.dtype for p in loaded.model.parameters()} == {torch.bfloat16}
    assert loaded.model.config._attn_implementation == "eager"
    assert loaded.model.config.vision_config._attn_implementation == "eager"


def test_provenance_identifies_the_weights(adapter, checkpoint):
    info = adapter.provenance()
    json.dumps(info)
    assert info["adapter"] == "mplug-owl" and info["dtype"] == "float32" and info["device"] == "cpu"
    assert info["config_sha256"] == hashlib.sha256((checkpoint / "config.json").read_bytes()).hexdigest()
    assert info["weights"] == [{"file": "model.safetensors", "bytes": (checkpoint / "model.safetensors").stat().st_size,
                                "sha256": hashlib.sha256((checkpoint / "model.safetensors").read_bytes()).hexdigest()}]
    assert info["image_placeholder_length"] == 9


def test_generate_command_answers_all_82_questions(checkpoint, owl_data, tmp_path):
    from typer.testing import CliRunner

    from owleval.answers import read_answer_file
    from owleval.cli import app
    from owleval.questions import load_questions

    out = tmp_path / "mplug-owl.jsonl"
    args = ["generate", "--model", "mplug-owl", "--checkpoint", str(checkpoint), "--out", str(out), "--device", "cpu",
            "--batch-size", "8", "--max-new-tokens", "3", "-o", "attn_implementation=eager"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    questions = load_questions(owl_data)
    found = read_answer_file(out, questions)
    assert found.ok and sorted(a.question_id for a in found.answers) == [q.question_id for q in questions]
    assert {a.model_id for a in found.answers} == {f"mplug-owl:{checkpoint.name}"}
    meta = json.loads(out.with_name(out.name + ".meta.json").read_text())
    assert meta["status"] == "finished" and meta["answers_written"] == 82
    assert meta["provenance"]["attn_implementation"] == "eager" and meta["provenance"]["config_sha256"]


def test_lora_adapter_folder_loads_over_its_base(checkpoint, images, tmp_path):
    from owleval.models.mplug_owl import MplugOwlForConditionalGeneration
    from owleval.models.mplug_owl.training import setup_stage2

    peft_model = setup_stage2(MplugOwlForConditionalGeneration.from_pretrained(checkpoint))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    peft_model.save_pretrained(tmp_path / "lora")
    options = LoadOptions(checkpoint=str(tmp_path / "lora"), device="cpu", options={"base_checkpoint": str(checkpoint)})
    tuned = MplugOwlAdapter.load(options)
    conv = [Conversation((Turn("What is it?", (images[0],)),), key="q")]
    config = GenerationConfig(max_new_tokens=12)
    base = MplugOwlAdapter.load(LoadOptions(checkpoint=str(checkpoint), device="cpu"))
    assert tuned.generate(conv, config) != base.generate(conv, config)
    info = tuned.provenance()
    assert info["checkpoint_folder"] == str(checkpoint.resolve())
    assert info["lora_adapter"]["lora_adapter_config"]["r"] == 8


def test_token_probabilities_when_asked_decode_eagerly(adapter, checkpoint, owl_data):
    from tests.logprobs_helpers import TOP, assert_scored_like_plain, image_conversations

    assert_scored_like_plain(adapter, image_conversations(owl_data))
    compiled = MplugOwlAdapter.load(LoadOptions(checkpoint=str(checkpoint), device="cpu", options={"decode": "compiled"}))
    answer = compiled.generate(image_conversations(owl_data)[:1], GenerationConfig(max_new_tokens=3, top_logprobs=TOP))[0]
    assert answer.tokens and "token probabilities are decoded eagerly (1 batches)" in compiled.provenance()["decode_fallback"]
