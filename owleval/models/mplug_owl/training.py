"""Which parameters train in mPLUG-Owl's two stages (paper, section 3.3).

- Stage 1 (multimodal pre-training): the vision encoder and the visual abstractor (with its query tokens) train;
  the language model is frozen.
- Stage 2 (joint instruction tuning): a LoRA adapter on the language model (peft; r=8, alpha=32, dropout 0.05 on
  q_proj and v_proj, as the upstream training scripts set it) and the visual abstractor train; the vision encoder
  is frozen.

A stage-2 model is a ``peft.PeftModel``. ``merge_and_unload()`` folds the LoRA weights in, after which
``save_pretrained`` writes a checkpoint in the upstream layout; ``save_pretrained`` on the PeftModel writes only
the adapter, which :meth:`MplugOwlForConditionalGeneration.from_pretrained` can apply to its base again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

if TYPE_CHECKING:
    from peft import LoraConfig, PeftModel

    from .modeling_mplug_owl import MplugOwlForConditionalGeneration

LORA_R = 8
LORA_ALPHA = 32
LORA_DROPOUT = 0.05
#: peft matches a string target_modules as a regular expression against the full module name
LORA_TARGET_MODULES = r".*language_model.*\.(q_proj|v_proj)"

__all__ = ["lora_config", "setup_stage1", "setup_stage2", "trainable_parameter_names"]


def _visual_parts(model: MplugOwlForConditionalGeneration) -> tuple[nn.Module, nn.Module]:
    return model.vision_model, model.abstractor


def setup_stage1(model: MplugOwlForConditionalGeneration) -> MplugOwlForConditionalGeneration:
    """Vision encoder, abstractor and query tokens train; the language model is frozen. Returns ``model``."""
    model.requires_grad_(False)
    for part in _visual_parts(model):
        part.requires_grad_(True)
    model.query_tokens.requires_grad_(True)
    return model


def lora_config(r: int = LORA_R, alpha: int = LORA_ALPHA, dropout: float = LORA_DROPOUT) -> LoraConfig:
    """The upstream LoRA settings for the language model's attention query and value projections."""
    from peft import LoraConfig

    return LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=LORA_TARGET_MODULES, bias="none",
        inference_mode=False,
    )


def setup_stage2(model: MplugOwlForConditionalGeneration, config: LoraConfig | None = None) -> PeftModel:
    """LoRA on the language model plus the abstractor and query tokens train; everything else is frozen."""
    from peft import get_peft_model

    peft_model = get_peft_model(model, config or lora_config())  # freezes every non-LoRA parameter
    base = peft_model.get_base_model()
    base.abstractor.requires_grad_(True)
    base.query_tokens.requires_grad_(True)
    return peft_model


def trainable_parameter_names(model: nn.Module) -> set[str]:
    return {name for name, param in model.named_parameters() if param.requires_grad}
