"""Loading mPLUG-Owl checkpoints: the upstream weight layout, strict key checks and LoRA adapters kept apart.

transformers' own ``from_pretrained`` reads the weights (one file or shards, ``.bin`` or safetensors, with their
index; local folder or hub id). On top of it this module:
- refuses a checkpoint whose keys do not match the model, listing the missing and unexpected keys (the rotary
  ``inv_freq`` buffers that transformers 4.28 saved are expected and ignored);
- applies a peft LoRA adapter when the folder holds ``adapter_config.json`` (a training run's output), loading
  the base model it names (or ``base_model_name_or_path=``) and merging the adapter into it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .modeling_mplug_owl import MplugOwlForConditionalGeneration

ADAPTER_CONFIG = "adapter_config.json"
_MAX_LISTED = 20


class CheckpointMismatchError(ValueError):
    """The checkpoint's tensors do not fit the model built from its config."""


def _listing(title: str, keys: Any) -> str:
    keys = sorted(str(k) for k in keys)
    shown = "\n    ".join(keys[:_MAX_LISTED])
    more = f"\n    ... and {len(keys) - _MAX_LISTED} more" if len(keys) > _MAX_LISTED else ""
    return f"  {title} ({len(keys)}):\n    {shown}{more}"


def check_loading_info(info: dict[str, Any], source: str) -> None:
    """Raise :class:`CheckpointMismatchError` naming every missing, unexpected or mis-shaped tensor."""
    parts = []
    if info.get("missing_keys"):
        parts.append(_listing("missing from the checkpoint", info["missing_keys"]))
    if info.get("unexpected_keys"):
        parts.append(_listing("in the checkpoint but not in the model", info["unexpected_keys"]))
    if info.get("mismatched_keys"):
        shapes = [f"{k[0]}: checkpoint {tuple(k[1])} vs model {tuple(k[2])}" if isinstance(k, tuple) else str(k)
                  for k in info["mismatched_keys"]]
        parts.append(_listing("with a different shape", shapes))
    if info.get("error_msgs"):
        parts.append(_listing("load errors", info["error_msgs"]))
    if parts:
        raise CheckpointMismatchError(
            f"checkpoint {source} does not match the mPLUG-Owl model of its config.json:\n" + "\n".join(parts)
        )


def find_adapter(path: str | Path) -> Path | None:
    """The local folder's LoRA adapter config, if it holds one."""
    candidate = Path(path) / ADAPTER_CONFIG
    return candidate if candidate.is_file() else None


def load_pretrained(
    cls: type[MplugOwlForConditionalGeneration],
    pretrained_model_name_or_path: str | Path,
    *model_args: Any,
    strict: bool = True,
    base_model_name_or_path: str | Path | None = None,
    merge_lora: bool = True,
    **kwargs: Any,
):
    """Load weights into ``cls``; see the module docstring. ``strict=False`` only warns about key mismatches."""
    from transformers.modeling_utils import PreTrainedModel

    output_loading_info = kwargs.pop("output_loading_info", False)
    source = str(pretrained_model_name_or_path)
    adapter_config = find_adapter(source)
    base = source
    if adapter_config is not None and not (Path(source) / "config.json").is_file():
        base = str(base_model_name_or_path or json.loads(adapter_config.read_text())["base_model_name_or_path"])
    elif base_model_name_or_path is not None:
        base = str(base_model_name_or_path)
    if adapter_config is not None and base == source:
        raise CheckpointMismatchError(
            f"{source} holds both a full model and a LoRA adapter ({ADAPTER_CONFIG}); keep the adapter in its own "
            "folder (or pass base_model_name_or_path=) so it is applied exactly once"
        )
    model, info = PreTrainedModel.from_pretrained.__func__(
        cls, base, *model_args, output_loading_info=True, **kwargs
    )
    if strict:
        check_loading_info(info, base)
    if adapter_config is not None:
        model = apply_lora_adapter(model, adapter_config.parent, merge=merge_lora)
    return (model, info) if output_loading_info else model


def apply_lora_adapter(model, adapter_dir: str | Path, merge: bool = True):
    """Load a peft LoRA adapter (saved by ``PeftModel.save_pretrained``) into ``model``; merge it by default."""
    from peft import PeftConfig, PeftModel, load_peft_weights, set_peft_model_state_dict

    adapter_dir = str(adapter_dir)
    config = PeftConfig.from_pretrained(adapter_dir)
    config.inference_mode = True
    peft_model = PeftModel(model, config)
    result = set_peft_model_state_dict(peft_model, load_peft_weights(adapter_dir, device=str(model.device)))
    expected = {n for n, _ in peft_model.named_parameters() if "lora_" in n}
    missing = {k for k in result.missing_keys if "lora_" in k}
    unexpected = list(result.unexpected_keys or [])
    if not expected:
        unexpected.append(f"(target_modules {config.target_modules!r} matched no layer)")
    check_loading_info({"missing_keys": missing, "unexpected_keys": unexpected}, f"{adapter_dir} (LoRA adapter)")
    peft_model.eval()
    return peft_model.merge_and_unload() if merge else peft_model
