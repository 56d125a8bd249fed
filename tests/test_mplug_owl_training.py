"""Stage 1 / stage 2 trainable parameters: one optimiser step changes exactly what the paper says should train;
a stage-2 LoRA adapter saved apart from its base loads back through from_pretrained."""

from __future__ import annotations

import json

import pytest
import torch

from owleval.models.mplug_owl import CheckpointMismatchError, MplugOwlForConditionalGeneration
from owleval.models.mplug_owl.training import LORA_ALPHA, LORA_R, setup_stage1, setup_stage2, trainable_parameter_names
from tests.mplug_owl_helpers import make_tiny_model


def _batch(model) -> dict[str, torch.Tensor]:
    """Two training rows in the upstream dataset format: image slots, prompt, answer (+ eos), right padding."""
    gen = torch.Generator().manual_seed(0)
    slots = model.config.image_placeholder_length
    vocab = model.config.text_config.vocab_size
    rows, answer_lengths = [], []
    for prompt_len, answer_len in ((6, 4), (3, 7)):
        text = torch.randint(3, vocab, (prompt_len + answer_len,), generator=gen).tolist()
        rows.append([1] + [-1] * slots + text[:prompt_len] + text[prompt_len:] + [2])
        answer_lengths.append(answer_len + 1)
    width = max(map(len, rows))
    input_ids = torch.zeros(len(rows), width, dtype=torch.long)
    prompt_mask = torch.zeros(len(rows), width - 1, dtype=torch.long)
    non_padding = torch.zeros(len(rows), width - 1, dtype=torch.long)
    for i, (row, n_answer) in enumerate(zip(rows, answer_lengths, strict=True)):
        input_ids[i, : len(row)] = torch.tensor(row)
        non_padding[i, : len(row) - 1] = 1
        prompt_mask[i, len(row) - 1 - n_answer : len(row) - 1] = 1
    return {
        "pixel_values": torch.randn(2, 3, 56, 56, generator=gen),
        "input_ids": input_ids,
        "num_images": torch.tensor([1, 1]),
        "non_padding_mask": non_padding,
        "non_media_mask": (input_ids >= 0)[:, 1:].long(),
        "prompt_mask": prompt_mask,
        "attention_mask": (non_padding.sum(1, keepdim=True) >= torch.arange(width)).long(),
        "labels": input_ids.clone(),
    }


def _step(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> set[str]:
    """One AdamW step (no weight decay, so only parameters with a gradient move); returns the names that moved."""
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
    loss = model(**batch).loss
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    return {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}


def test_stage1_trains_vision_and_abstractor_only():
    model = setup_stage1(make_tiny_model(vocab_size=120, seed=1))
    names = {n for n, _ in model.named_parameters()}
    visual = {n for n in names if n.startswith(("vision_model.", "abstractor.")) or n == "query_tokens"}
    assert trainable_parameter_names(model) == visual
    assert _step(model, _batch(model)) == visual  # every visual parameter moves, nothing of the LLM does


def test_stage2_trains_lora_and_abstractor_only():
    model = setup_stage2(make_tiny_model(vocab_size=120, seed=2))
    with torch.no_grad():  # a fresh LoRA has B = 0, which blocks A's gradient; start from a trained-looking adapter
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)
    names = {n for n, _ in model.named_parameters()}
    lora = {n for n in names if "lora_" in n}
    assert lora and all(".language_model." in n and (".q_proj." in n or ".v_proj." in n) for n in lora)
    assert len(lora) == 2 * 2 * model.get_base_model().config.text_config.num_hidden_layers  # A and B, q and v
    abstractor = {n for n in names if ".abstractor." in n or n.endswith(".query_tokens")}
    assert trainable_parameter_names(model) == lora | abstractor
    assert _step(model, _batch(model.get_base_model())) == lora | abstractor
    config = model.peft_config["default"]
    assert (config.r, config.lora_alpha, config.lora_dropout) == (LORA_R, LORA_ALPHA, 0.05)


def test_lora_adapter_kept_apart_loads_merged(tmp_path):
    base_dir, adapter_dir = tmp_path / "base", tmp_path / "adapter"
    base = make_tiny_model(vocab_size=120, seed=3)
    base.save_pretrained(base_dir)
    peft_model = setup_stage2(base)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.normal_(0, 0.2)
    peft_model.save_pretrained(adapter_dir)
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(base_dir)
    (adapter_dir / "adapter_config.json").write_text(json.dumps(config))

    ids = torch.tensor([[1] + [-1] * base.config.image_placeholder_length + [5, 6, 7]])
    pixels = torch.randn(1, 3, 56, 56)
    peft_model.eval()
    with torch.no_grad():
        want = peft_model(input_ids=ids, pixel_values=pixels).logits
        loaded = MplugOwlForConditionalGeneration.from_pretrained(adapter_dir).eval()
        assert not any("lora_" in n for n, _ in loaded.named_parameters())  # merged into the base weights
        torch.testing.assert_close(loaded(input_ids=ids, pixel_values=pixels).logits, want, atol=1e-5, rtol=1e-5)
        plain = MplugOwlForConditionalGeneration.from_pretrained(base_dir).eval()
        assert not torch.allclose(plain(input_ids=ids, pixel_values=pixels).logits, want, atol=1e-3)


def test_lora_adapter_that_matches_nothing_is_an_error(tmp_path):
    base_dir, adapter_dir = tmp_path / "base", tmp_path / "adapter"
    make_tiny_model(vocab_size=120, seed=4).save_pretrained(base_dir)
    peft_model = setup_stage2(make_tiny_model(vocab_size=120, seed=4))
    peft_model.save_pretrained(adapter_dir)
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    config.update(base_model_name_or_path=str(base_dir), target_modules=r".*no_such_layer")
    (adapter_dir / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises((CheckpointMismatchError, ValueError), match="no_such_layer"):
        MplugOwlForConditionalGeneration.from_pretrained(adapter_dir)
