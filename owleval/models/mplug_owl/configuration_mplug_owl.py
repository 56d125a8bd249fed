"""Configuration of mPLUG-Owl (v1): ViT-L/14 vision encoder, visual abstractor, LLaMA.

Field names and defaults are those of the upstream ``config.json`` (X-PLUG/mPLUG-Owl), so a released checkpoint's
configuration loads unchanged; the defaults describe the released 7B model.
"""

from __future__ import annotations

from typing import ClassVar

from transformers import PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.models.auto import AutoConfig

__all__ = ["MplugOwlConfig", "MplugOwlVisionConfig", "MplugOwlVisualAbstractorConfig"]


class MplugOwlVisionConfig(PreTrainedConfig):
    """The CLIP-like ViT (pre-norm blocks, fused per-head qkv, QuickGELU, CLS token, pre and post LayerNorm).

    ``projection_dim``, ``num_channels``, ``hidden_act`` and ``use_flash_attn`` are kept for compatibility with the
    upstream file; the upstream model ignores them (3 channels and QuickGELU are fixed).
    """

    model_type = "mplug_owl_vision_model"
    base_config_key = "vision_config"

    hidden_size: int = 1024
    intermediate_size: int = 4096
    projection_dim: int = 768
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    num_channels: int = 3
    image_size: int = 224
    patch_size: int = 14
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-6
    attention_dropout: float = 0.0
    initializer_range: float = 0.02
    initializer_factor: float = 1.0
    use_flash_attn: bool = False


class MplugOwlVisualAbstractorConfig(PreTrainedConfig):
    """The visual abstractor: learned queries cross-attending to the image features, then projected to the LLM.

    ``layer_norm_eps`` only applies to the LayerNorm inside the SwiGLU MLP (``ffn_ln``); the other abstractor norms
    use PyTorch's default 1e-5, as upstream does.
    """

    model_type = "mplug_owl_visual_abstract"
    base_config_key = "visual_abstractor_config"

    hidden_size: int = 1024
    num_hidden_layers: int = 6
    num_attention_heads: int = 16
    intermediate_size: int = 4096
    attention_probs_dropout_prob: float = 0.1
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-6
    encoder_hidden_size: int = 1024


class MplugOwlConfig(PreTrainedConfig):
    """The whole model. ``text_config`` is any causal-LM config (LLaMA for every released checkpoint).

    An image occupies ``num_query_tokens + 1`` positions of the LLM input: the abstractor's query outputs and one
    learned end-of-image vector (``abstractor.vit_eos``). See :attr:`image_placeholder_length`.
    """

    model_type = "mplug-owl"
    sub_configs_defaults: ClassVar[dict] = {
        "vision_config": MplugOwlVisionConfig,
        "visual_abstractor_config": MplugOwlVisualAbstractorConfig,
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
    }

    vision_config: dict | PreTrainedConfig | None = None
    visual_abstractor_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    num_query_tokens: int = 64
    initializer_range: float = 0.02
    initializer_factor: float = 1.0
    tie_word_embeddings: bool = False
    use_decoder_only_language_model: bool = True

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.tie_word_embeddings = bool(getattr(self.text_config, "tie_word_embeddings", False))
        self.is_encoder_decoder = bool(getattr(self.text_config, "is_encoder_decoder", False))
        self.use_decoder_only_language_model = not self.is_encoder_decoder
        width = self.vision_config.hidden_size
        abstractor = self.visual_abstractor_config
        if abstractor.hidden_size != width or abstractor.encoder_hidden_size != width:
            raise ValueError(
                "mPLUG-Owl concatenates the abstractor queries with the image features, so "
                f"visual_abstractor_config.hidden_size ({abstractor.hidden_size}) and .encoder_hidden_size "
                f"({abstractor.encoder_hidden_size}) must equal vision_config.hidden_size ({width})"
            )

    @property
    def image_placeholder_length(self) -> int:
        """Prompt positions one image takes: the query outputs plus the end-of-image vector."""
        return self.num_query_tokens + 1
