"""The ``hf`` adapter's checks before anything is written: named chat templates, the system role and the processor
settings tried on one dry batch, fast refusals (a local-looking path that does not exist, an unreachable hub, CUDA
asked for where there is none), and what identifies the prompt (the checkpoint's generation config, the rendered
template's hash, whether the template reads the date)."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from owleval.adapters.base import AdapterError, Conversation, ImageRef, LoadOptions, Turn
from owleval.adapters.hf import HFAdapter
from owleval.cli import app
from tests.hf_family_helpers import GEMMA3, make_tiny_checkpoint


@pytest.fixture(scope="module")
def gemma3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_checkpoint("gemma3", tmp_path_factory.mktemp("gemma3"))


def _copy(source: Path, where: Path) -> Path:
    return Path(shutil.copytree(source, where))


def _open(checkpoint: Path, **options: str) -> HFAdapter:
    return HFAdapter.open(LoadOptions(str(checkpoint), device="cpu", options=options))


def _generate(checkpoint: Path, out: Path, *extra: str):
    return CliRunner().invoke(app, ["generate", "--model", "hf", "--checkpoint", str(checkpoint), "--out", str(out),
                                    "--device", "cpu", "--max-new-tokens", "3", "--questions", "1", *extra])


def test_named_chat_templates_load_and_are_chosen_by_name(gemma3: Path, tmp_path: Path, owl_data: Path) -> None:
    checkpoint = _copy(gemma3, tmp_path / "named")
    (checkpoint / "additional_chat_templates").mkdir()
    (checkpoint / "additional_chat_templates" / "terse.jinja").write_text(GEMMA3.replace("{{ bos_token }}", "{{ bos_token }}Tersely: "))
    conversation = Conversation((Turn("What is it?", (ImageRef(owl_data / "cases" / "1.jpg"),)),))
    default = _open(checkpoint)
    terse = _open(checkpoint, chat_template="terse")
    assert "Tersely: " not in default.prompt(conversation) and "Tersely: " in terse.prompt(conversation)
    assert default.answer_settings()["chat_template"] == "default" and terse.answer_settings()["chat_template"] == "terse"
    assert default.answer_settings()["rendered_template_sha256"] != terse.answer_settings()["rendered_template_sha256"]
    with pytest.raises(AdapterError, match=r"chat_template='brief': checkpoint .* has the templates default, terse"):
        _open(checkpoint, chat_template="brief")
    (checkpoint / "chat_template.jinja").unlink()
    with pytest.raises(AdapterError, match=r"none named 'default': choose one with -o chat_template=NAME \(terse\)"):
        _open(checkpoint)


def test_a_template_that_rejects_the_system_role_fails_at_load_and_writes_nothing(gemma3: Path, tmp_path: Path) -> None:
    checkpoint = _copy(gemma3, tmp_path / "nosystem")
    (checkpoint / "chat_template.jinja").write_text(
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}" + GEMMA3)
    assert _open(checkpoint).system is None
    out = tmp_path / "answers.jsonl"
    result = _generate(checkpoint, out, "-o", "system=Be brief.")
    assert result.exit_code != 0
    text = " ".join(result.output.split())
    assert "option system" in text and "System role not supported" in text and "leave -o system out" in text
    assert not out.exists() and not out.with_name(out.name + ".meta.json").exists()


def test_a_processor_that_fails_on_the_dry_batch_fails_at_load(gemma3: Path, tmp_path: Path) -> None:
    checkpoint = _copy(gemma3, tmp_path / "twoimages")  # two image markers per image: the processor counts wrong
    (checkpoint / "chat_template.jinja").write_text(GEMMA3.replace("<start_of_image>", "<start_of_image><start_of_image>"))
    with pytest.raises(AdapterError, match=r"the processor of .* cannot prepare a test image with its own settings: ValueError"):
        _open(checkpoint)


def test_idefics2_image_size_and_glm4v_max_pixels_reach_the_processor(tmp_path: Path, owl_data: Path) -> None:
    conversation = Conversation((Turn("What is it?", (ImageRef(owl_data / "cases" / "1.jpg"),)),))
    idefics2 = make_tiny_checkpoint("idefics2", tmp_path / "idefics2")
    small, large = _open(idefics2, image_size="32"), _open(idefics2, image_size="64")
    assert small.inputs([conversation])["pixel_values"].shape[-1] < large.inputs([conversation])["pixel_values"].shape[-1]
    glm = make_tiny_checkpoint("glm4v", tmp_path / "glm4v")
    budget = _open(glm, max_pixels=str(56 * 56))
    assert budget.answer_settings()["processor_call"] == {"size": {"shortest_edge": 3136, "longest_edge": 3136}}
    assert budget.inputs([conversation])["pixel_values"].shape[0] < _open(glm).inputs([conversation])["pixel_values"].shape[0]


def test_generation_config_and_template_facts_are_answer_settings(gemma3: Path, tmp_path: Path) -> None:
    checkpoint = _copy(gemma3, tmp_path / "genconfig")
    (checkpoint / "generation_config.json").write_text(json.dumps({"bos_token_id": 2, "eos_token_id": 1, "no_repeat_ngram_size": 3}))
    settings = _open(checkpoint).answer_settings()
    assert settings["checkpoint_generation_config"]["no_repeat_ngram_size"] == 3
    assert settings["untrusted_text"] and settings["template_uses_date"] is False
    assert settings["adapter_generate"]["answer_tokens"] == "after the prompt"
    out = tmp_path / "answers.jsonl"
    assert _generate(checkpoint, out).exit_code == 0
    (checkpoint / "generation_config.json").write_text(json.dumps({"bos_token_id": 2, "eos_token_id": 1, "no_repeat_ngram_size": 2}))
    assert _open(checkpoint).answer_settings() != settings, "the generation config is part of the answer settings"
    again = _generate(checkpoint, out, "--questions", "1-2")
    text = " ".join(again.output.split())
    assert again.exit_code != 0 and "files added, removed or changed: generation_config.json" in text and "--overwrite" in text
    dated = _copy(gemma3, tmp_path / "dated")
    (dated / "chat_template.jinja").write_text("Today is {{ strftime_now('%d %B %Y') }}. " + GEMMA3)
    assert _open(dated).answer_settings()["template_uses_date"] is True


def test_the_fallback_reason_keeps_its_cause(tmp_path: Path) -> None:
    checkpoint = make_tiny_checkpoint("qwen2_vl", tmp_path / "qwen2_vl")
    (checkpoint / "video_preprocessor_config.json").write_text(json.dumps({"video_processor_type": "Qwen2VLVideoProcessor"}))
    reason = _open(checkpoint).provenance()["processor"]
    assert reason.startswith("Qwen2VLProcessor for images only (AutoProcessor failed: "), reason
    assert "requires the Torchvision library" in reason, reason


def test_image_only_processor_takes_parts_in_its_own_order(tmp_path: Path) -> None:
    from transformers import LlavaNextVideoProcessor

    from owleval.adapters.hf_load import image_only

    source = make_tiny_checkpoint("llava_next_video", tmp_path / "lnv")
    built = _open(source).processor
    again = image_only(LlavaNextVideoProcessor)(built.image_processor, built.tokenizer, chat_template="x")
    assert again.image_processor is built.image_processor and again.tokenizer is built.tokenizer


@pytest.mark.parametrize("checkpoint", ["./no-such-folder/ckpt", "~/no-such-owl-checkpoint", "tests/no-such-checkpoint"])
def test_a_local_looking_path_that_does_not_exist_is_refused_at_once(checkpoint: str) -> None:
    with pytest.raises(AdapterError, match=r"not found: the folder does not exist .* never as a hub id"):
        HFAdapter.open(LoadOptions(checkpoint, device="cpu"))


def test_an_unreachable_hub_fails_naming_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(AdapterError) as caught:
        HFAdapter.open(LoadOptions("owl-org/no-such-vlm", device="cpu"))
    message = str(caught.value)
    assert "'owl-org/no-such-vlm' is a hub id, but 127.0.0.1 cannot be reached" in message
    assert "pass its folder to --checkpoint" in message


def test_cuda_on_a_machine_without_it_fails_before_loading(gemma3: Path, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "answers.jsonl"
    result = CliRunner().invoke(app, ["generate", "--model", "hf", "--checkpoint", str(gemma3), "--out", str(out), "--device", "cuda"])
    assert result.exit_code != 0 and "CUDA is not available" in result.output
    assert not out.exists()
