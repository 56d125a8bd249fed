"""Which image-text-to-text families the ``hf`` adapter was checked on (tiny random checkpoints of each run the
conformance suite: tests/test_hf_adapter.py, tests/hf_family_helpers.py) and which the installed transformers
loads but were only expected to work; ``owleval models hf`` prints both."""

from __future__ import annotations

#: model types run through the conformance suite on tiny random checkpoints here (no torchvision)
TESTED_FAMILIES = (
    "aya_vision", "gemma3", "glm4v", "granite_docling", "idefics2", "idefics3", "internvl", "llava", "llava_next",
    "llava_next_video", "llava_onevision", "mllama", "paligemma", "qwen2_5_vl", "qwen2_vl", "qwen3_5", "qwen3_vl",
    "smolvlm", "t5gemma2", "vipllava",
)

#: families whose processor needs torchvision in transformers 5.x: refused at load (naming the fix) where torchvision
#: does not import; checked by that refusal here
NEEDS_TORCHVISION = ("cohere2_vision", "lfm2_vl", "llama4", "mistral3", "perception_lm")


def installed_families() -> list[str]:
    try:
        from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
    except ImportError:
        return []
    return sorted(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES)


def supported_families() -> list[str]:
    """The tested families the installed transformers has."""
    installed = set(installed_families())
    return [family for family in TESTED_FAMILIES if family in installed]


def expected_families() -> list[str]:
    """Families the installed transformers loads through AutoModelForImageTextToText that were not tested here."""
    return [family for family in installed_families() if family not in (*TESTED_FAMILIES, *NEEDS_TORCHVISION)]


def described_families() -> str:
    tested = supported_families()
    expected = expected_families()
    torchvision = [family for family in NEEDS_TORCHVISION if family in installed_families()]
    return (f"tested on tiny checkpoints ({len(tested)}): {', '.join(tested) or 'none'}; processor needs "
            f"torchvision (refused without it): {', '.join(torchvision) or 'none'}; expected to work, untested "
            f"({len(expected)}): {', '.join(expected) or 'none'}")
