"""The llava adapter: the LLaVA-1.5 prompt, loading errors, batching, history, images, and `owleval generate`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from owleval.adapters.base import AdapterError, Conversation, GenerationConfig, ImageRef, LoadOptions, Turn
from owleval.adapters.llava import LlavaAdapter, build_llava_prompt, chat_messages
from owleval.answers import read_answer_file
from owleval.cli import app
from owleval.questions import load_questions
from tests.llava_minigpt4_helpers import make_tiny_llava_checkpoint

GREEDY = GenerationConfig(max_new_tokens=8)
IMG = ImageRef(Path("unused.jpg"))  # prompt builders never open the image

# A template of our own (the hub's are not available offline): it proves the checkpoint's template is the one used.
TEMPLATE = (
    "{% for m in messages %}[{{ m['role'] }}]{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endfor %}"
    "{% if add_generation_prompt %}[assistant]{% endif %}"
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llava_checkpoint(tmp_path_factory.mktemp("llava"))


@pytest.fixture(scope="module")
def adapter(checkpoint: Path) -> LlavaAdapter:
    return LlavaAdapter.load(LoadOptions(checkpoint=str(checkpoint), device="cpu", batch_size=8))


def _image(owl_data: Path, name: str) -> ImageRef:
    return ImageRef(owl_data / "cases" / name)


def test_prompt_single_turn() -> None:
    conversation = Conversation((Turn("What is funny about this?", (IMG,)),))
    assert build_llava_prompt(conversation) == "USER: <image>\nWhat is funny about this? ASSISTANT:"


def test_prompt_later_turn_follows_the_answered_ones() -> None:
    conversation = Conversation(
        (Turn("Q1?", (IMG,), answer="A1."), Turn("Q2?", answer="A2."), Turn("Q3?"))
    )
    assert build_llava_prompt(conversation) == (
        "USER: <image>\nQ1? ASSISTANT: A1.</s>USER: Q2? ASSISTANT: A2.</s>USER: Q3? ASSISTANT:"
    )


def test_prompt_without_image_and_with_two() -> None:
    assert build_llava_prompt(Conversation((Turn("Hi?"),))) == "USER: Hi? ASSISTANT:"
    two = Conversation((Turn("Compare.", (IMG, IMG)),))
    assert build_llava_prompt(two, image_token="<img>") == "USER: <img>\n<img>\nCompare. ASSISTANT:"


def test_chat_messages_put_images_before_text_and_answers_as_assistant() -> None:
    messages = chat_messages(Conversation((Turn("Q1?", (IMG,), answer="A1."), Turn("Q2?"))))
    assert messages == [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q1?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A1."}]},
        {"role": "user", "content": [{"type": "text", "text": "Q2?"}]},
    ]


def test_checkpoint_without_template_uses_llava_15(adapter: LlavaAdapter) -> None:
    conversation = Conversation((Turn("Q1?", (IMG,), answer="A1."), Turn("Q2?")))
    assert adapter.prompt_format == "llava-1.5"
    assert adapter.prompt(conversation) == "USER: <image>\nQ1? ASSISTANT: A1.</s>USER: Q2? ASSISTANT:"
    assert adapter.provenance()["prompt_format"] == "llava-1.5"


def test_checkpoint_chat_template_is_used_when_present(tmp_path: Path, owl_data: Path) -> None:
    ckpt = make_tiny_llava_checkpoint(tmp_path / "templated", chat_template=TEMPLATE)
    templated = LlavaAdapter.load(LoadOptions(checkpoint=str(ckpt), device="cpu"))
    conversation = Conversation((Turn("Q1?", (_image(owl_data, "1.jpg"),), answer="A1."), Turn("Q2?")))
    assert templated.prompt(conversation) == "[user]<image>Q1?[assistant]A1.[user]Q2?[assistant]"
    assert len(templated.generate([conversation], GREEDY)) == 1
    forced = LlavaAdapter.load(LoadOptions(checkpoint=str(ckpt), device="cpu", options={"prompt": "llava-1.5"}))
    assert forced.prompt(conversation).startswith("USER: <image>\nQ1? ASSISTANT: A1.</s>")


def test_prompt_option_errors(checkpoint: Path) -> None:
    with pytest.raises(AdapterError, match="no chat template"):
        LlavaAdapter.load(LoadOptions(checkpoint=str(checkpoint), device="cpu", options={"prompt": "template"}))
    with pytest.raises(AdapterError, match="prompt='vicuna'"):
        LlavaAdapter.load(LoadOptions(checkpoint=str(checkpoint), device="cpu", options={"prompt": "vicuna"}))


def test_missing_and_foreign_checkpoints_are_clear_errors(tmp_path: Path) -> None:
    gone = tmp_path / "no-llava-here"
    with pytest.raises(AdapterError, match="no-llava-here.*not found"):
        LlavaAdapter.load(LoadOptions(checkpoint=str(gone), device="cpu"))
    gone.mkdir()
    with pytest.raises(AdapterError, match="no config.json"):
        LlavaAdapter.load(LoadOptions(checkpoint=str(gone), device="cpu"))
    (gone / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8, "num_attention_heads": 2}))
    with pytest.raises(AdapterError, match="'llama' model, expected llava"):
        LlavaAdapter.load(LoadOptions(checkpoint=str(gone), device="cpu"))


@pytest.mark.parametrize("damage", ["wrong shape", "missing"])
def test_damaged_weights_are_refused(checkpoint: Path, tmp_path: Path, damage: str) -> None:
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    weights = load_file(broken / "model.safetensors")
    key = next(k for k in weights if "multi_modal_projector" in k and k.endswith("weight"))
    if damage == "missing":
        del weights[key]
    else:
        weights[key] = torch.zeros(3, 3)
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(AdapterError, match="multi_modal_projector|size mismatch|mismatch"):
        LlavaAdapter.load(LoadOptions(checkpoint=str(broken), device="cpu"))


def test_batch_equals_one_by_one_under_greedy(adapter: LlavaAdapter, owl_data: Path) -> None:
    conversations = [
        Conversation((Turn("What is in the image?", (_image(owl_data, "1.jpg"),)),)),
        Conversation((Turn("Describe it in detail.", (_image(owl_data, "5.jpg"),), answer="A man."), Turn("Why?"))),
        Conversation((Turn("Read the text, word by word, please.", (_image(owl_data, "49.jpg"),)),)),
    ]
    together = adapter.generate(conversations, GREEDY)
    assert together == [adapter.generate([c], GREEDY)[0] for c in conversations]
    assert all(isinstance(a, str) and a for a in together)


def test_second_turn_sees_the_first_answer(adapter: LlavaAdapter, owl_data: Path) -> None:
    def second_turn(answer: str) -> Conversation:
        return Conversation((Turn("What is it?", (_image(owl_data, "1.jpg"),), answer=answer), Turn("And why?")))

    answers = adapter.generate([second_turn(a) for a in ("A cat.", "A cat.", "Two people walking a dog.")], GREEDY)
    assert answers[0] == answers[1] and answers[0] != answers[2]
    assert "Two people walking a dog.</s>USER: And why?" in adapter.prompt(second_turn("Two people walking a dog."))


def test_the_image_changes_the_answer(adapter: LlavaAdapter, owl_data: Path) -> None:
    asked = [Conversation((Turn("What is in the image?", (_image(owl_data, name),)),)) for name in ("1.jpg", "5.jpg")]
    first, other = adapter.generate(asked, GREEDY)
    assert first != other


def test_dtype_and_attention_are_honoured(checkpoint: Path, owl_data: Path) -> None:
    options = {"attn_implementation": "eager"}
    bf16 = LlavaAdapter.load(LoadOptions(checkpoint=str(checkpoint), device="cpu", dtype="bfloat16", options=options))
    assert {p.dtype for p in bf16.model.parameters()} == {torch.bfloat16}
    assert bf16.model.config._attn_implementation == "eager"
    answer = bf16.generate([Conversation((Turn("What?", (_image(owl_data, "1.jpg"),)),))], GREEDY)
    assert isinstance(answer[0], str)
    assert bf16.provenance() | {"dtype": "bfloat16", "attn_implementation": "eager"} == bf16.provenance()


def test_owleval_generate_end_to_end_over_all_questions(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "llava.jsonl"
    args = ["generate", "--model", "llava", "--checkpoint", str(checkpoint), "--out", str(out), "--device", "cpu",
            "--batch-size", "8", "--max-new-tokens", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    checked = read_answer_file(out, load_questions())
    assert checked.ok and not checked.partial and len(checked.answers) == 82
    meta = json.loads(out.with_name(out.name + ".meta.json").read_text())
    assert meta["status"] == "finished"
    assert meta["provenance"]["adapter"] == "llava" and meta["provenance"]["prompt_format"] == "llava-1.5"


# -- token probabilities (owleval judge -o logprobs=true) -----------------------------------------------------------
def test_token_probabilities_equal_a_teacher_forced_pass_and_reach_the_judge(adapter: LlavaAdapter, owl_data: Path) -> None:
    from owleval.judge.run import ask
    from tests.logprobs_helpers import TOP, assert_scored_like_plain, image_conversations

    conversations = image_conversations(owl_data)
    assert_scored_like_plain(adapter, conversations)  # a padded batch
    tokenizer = adapter.processor.tokenizer
    for conversation in conversations:  # one at a time: the same input as the forward pass below, no padding
        (answer,) = adapter.generate([conversation], GenerationConfig(max_new_tokens=5, top_logprobs=TOP))
        inputs = adapter.processor(images=[adapter.image(r) for r in conversation.images], text=[adapter.prompt(conversation)], return_tensors="pt")
        prompt_len = inputs["input_ids"].shape[1]
        with torch.inference_mode():  # the greedy answer alone (no padding), then one forward pass over all of it
            new = adapter.model.generate(**inputs, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.pad_token_id)[0, prompt_len:].tolist()
            new = new[: new.index(tokenizer.eos_token_id)] if tokenizer.eos_token_id in new else new
            ids = torch.cat([inputs["input_ids"], torch.tensor([new])], dim=1)
            logits = adapter.model(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=inputs["pixel_values"]).logits
        expected = logits[0, prompt_len - 1 : prompt_len - 1 + len(new)].float().log_softmax(-1).gather(1, torch.tensor(new)[:, None])[:, 0]
        assert [t.token for t in answer.tokens] == [tokenizer.decode([i]) for i in new]
        assert [t.logprob for t in answer.tokens] == pytest.approx(expected.tolist(), abs=1e-4)
    config = GenerationConfig(max_new_tokens=4, top_logprobs=3)
    completions = ask(adapter, [(c, config) for c in conversations])
    assert [c.key for c in completions] == ["a", "b"] and all(c.tokens and len(c.tokens[0].top) == 3 for c in completions)
    assert ask(adapter, [(conversations[0], GenerationConfig(max_new_tokens=4))])[0].tokens is None
