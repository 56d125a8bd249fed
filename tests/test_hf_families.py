"""Every tested image-text-to-text family on a tiny random checkpoint (tests/hf_family_helpers.py and
tests/hf_family_builders.py): batched answers equal one-at-a-time answers, the second turn sees the first answer,
bfloat16 loads and answers; families whose processor needs torchvision are refused naming the fix; ``owleval
models hf`` lists what was tested, what is refused here and what is only expected to work.

The full conformance suite on every family is tests/test_hf_adapter.py::TestHFFamilies (slow).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from owleval.adapters.base import AdapterError, GenerationConfig, LoadOptions
from owleval.adapters.hf import HFAdapter
from owleval.adapters.hf_families import NEEDS_TORCHVISION, TESTED_FAMILIES, expected_families
from owleval.cli import app
from owleval.testing.conformance import ConformanceTarget, dialogue, differs, observe_torch_inputs, single
from tests.hf_family_builders import write_torchvision_only_checkpoint
from tests.hf_family_helpers import FAMILIES, make_tiny_checkpoint

CONFIG = GenerationConfig(max_new_tokens=4)
#: over ~12 s each here (build, two loads, six short generations on 2 shared cores): run with -m slow
SLOW = {"aya_vision", "granite_docling", "idefics2", "llava_next_video", "qwen3_5",
        "idefics3", "llava", "llava_onevision"}  # the last three also run in the default suite elsewhere
#: built for images only by the adapter (their video processor needs torchvision)
IMAGE_ONLY = {"glm4v", "internvl", "llava_next_video", "llava_onevision", "qwen2_5_vl", "qwen2_vl", "qwen3_5", "qwen3_vl", "smolvlm"}


def _params() -> list:
    import importlib.util

    params = []
    for family in TESTED_FAMILIES:
        marks = [pytest.mark.slow] if family in SLOW else []
        if family == "smolvlm" and importlib.util.find_spec("num2words") is None:
            marks.append(pytest.mark.skip(reason="SmolVLM's processor needs num2words (pip install num2words)"))
        params.append(pytest.param(family, id=family, marks=marks))
    return params


def test_every_tested_family_has_a_builder_and_is_listed() -> None:
    assert set(TESTED_FAMILIES) == set(FAMILIES) and len(TESTED_FAMILIES) >= 20
    assert not set(NEEDS_TORCHVISION) & set(TESTED_FAMILIES)
    result = CliRunner().invoke(app, ["models", "hf"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"tested on tiny checkpoints ({len(TESTED_FAMILIES)}): {', '.join(TESTED_FAMILIES)}" in text
    assert "processor needs torchvision (refused without it): " + ", ".join(NEEDS_TORCHVISION) in text
    assert "expected to work, untested" in text and all(f in text for f in expected_families())


@pytest.mark.parametrize("family", _params())
def test_family_batched_multi_turn_and_bfloat16(family: str, tmp_path: Path) -> None:
    import torch

    checkpoint = make_tiny_checkpoint(family, tmp_path / family)
    target = ConformanceTarget(HFAdapter, str(checkpoint))
    adapter = HFAdapter.open(LoadOptions(str(checkpoint), device="cpu", dtype="float32", batch_size=3))
    conversations = [single(target, 1), dialogue(target, 4, "A dog sits on a red sofa."), single(target, 49)]
    together = adapter.generate(conversations, CONFIG)
    assert together == [adapter.generate([c], CONFIG)[0] for c in conversations]
    first = observe_torch_inputs(adapter, dialogue(target, 4, "A dog sits on a red sofa."), CONFIG)
    other = observe_torch_inputs(adapter, dialogue(target, 4, "Two cats sleep in the sun."), CONFIG)
    assert differs(first, other), "the second turn did not see the first turn's answer"
    assert ("for images only" in adapter.provenance()["processor"]) == (family in IMAGE_ONLY)
    if adapter.facts["encoder_decoder"]:
        assert adapter.answer_settings()["adapter_generate"]["answer_tokens"] == "decoder output"
        assert any(together), "an encoder-decoder model's answers must not be cut away"
    adapter.close()
    half = HFAdapter.open(LoadOptions(str(checkpoint), device="cpu", dtype="bfloat16"))
    floats = [p for p in half.model.parameters() if p.is_floating_point()]
    assert floats and all(p.dtype == torch.bfloat16 for p in floats)
    assert isinstance(half.generate([conversations[1]], CONFIG)[0], str)


@pytest.mark.parametrize("family", NEEDS_TORCHVISION)
def test_families_needing_torchvision_are_refused_naming_the_fix(family: str, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    try:
        import torchvision  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("torchvision imports here: these families load")
    checkpoint = write_torchvision_only_checkpoint(family, tmp_path / family)
    with pytest.raises(AdapterError) as caught:
        HFAdapter.open(LoadOptions(str(checkpoint), device="cpu"))
    message = str(caught.value)
    assert str(checkpoint) in message and f"The {family!r} processor needs torchvision" in message
    assert "install the torchvision build made for this torch" in message and "--model openai" in message
