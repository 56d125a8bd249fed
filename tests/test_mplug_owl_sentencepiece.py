"""The official checkpoints ship their LLaMA tokenizer as a sentencepiece ``tokenizer.model`` only (no
tokenizer.json): the processor must load that layout and tokenise exactly as sentencepiece does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from owleval.adapters.base import Conversation, GenerationConfig, ImageRef, LoadOptions, Turn
from owleval.questions import load_questions
from tests.mplug_owl_helpers import make_tiny_mplug_owl_checkpoint

spm = pytest.importorskip("sentencepiece")

CORPUS = [
    "The following is a conversation between a curious human and AI assistant.",
    "The assistant gives helpful, detailed, and polite answers to the user's questions.",
    "Human: What is funny about this image? Describe it panel by panel.",
    "AI: The image shows a phone charger plugged into a battery.",
]


def _sentencepiece_checkpoint(directory: Path) -> Path:
    """A tiny mPLUG-Owl checkpoint whose tokenizer is a sentencepiece model trained like LLaMA's, in the released
    layout (tokenizer.model + tokenizer_config.json)."""
    checkpoint = make_tiny_mplug_owl_checkpoint(directory)
    for stale in list(checkpoint.glob("tokenizer*")) + list(checkpoint.glob("special_tokens_map.json")):
        stale.unlink()
    corpus = directory / "corpus.txt"
    corpus.write_text("\n".join(CORPUS * 20))
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(checkpoint / "tokenizer"), vocab_size=320, model_type="bpe",
        byte_fallback=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, character_coverage=1.0,
        hard_vocab_limit=False, minloglevel=2,
        # LLaMA's settings: text kept as is (newlines become byte tokens), digits split, a dummy prefix space
        normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=True,
        split_digits=True, allow_whitespace_only_pieces=True,
    )
    (checkpoint / "tokenizer.vocab").unlink()
    (checkpoint / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer"}))
    return checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _sentencepiece_checkpoint(tmp_path_factory.mktemp("mplug_owl_spm"))


def test_processor_tokenises_like_sentencepiece(checkpoint: Path) -> None:
    from owleval.models.mplug_owl import MplugOwlProcessor

    processor = MplugOwlProcessor.from_pretrained(checkpoint)
    reference = spm.SentencePieceProcessor(model_file=str(checkpoint / "tokenizer.model"))
    text = "Human: What is funny about this image? 42\nAI: "
    ids = processor.tokenize(f"{text}<image>")
    slots = processor.image_slots
    assert ids[0] == 1 and ids[-slots:] == [-1] * slots
    assert ids[1:-slots] == reference.encode(text)


def test_adapter_answers_with_a_sentencepiece_tokenizer(checkpoint: Path, owl_data: Path) -> None:
    from owleval.adapters.mplug_owl import MplugOwlAdapter

    question = load_questions()[0]
    image = ImageRef(owl_data / "cases" / question.image)
    adapter = MplugOwlAdapter.load(LoadOptions(checkpoint=str(checkpoint), device="cpu"))
    [answer] = adapter.generate([Conversation((Turn(question.question, (image,)),), key="q1")], GenerationConfig(max_new_tokens=4))
    assert isinstance(answer, str)
