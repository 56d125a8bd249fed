"""The bundled mPLUG-Owl (v1): configuration, model, processor and training set-up for the official checkpoints,
in the upstream weight layout with the upstream forward and generate (importing it pulls in torch and transformers)."""

from .configuration_mplug_owl import MplugOwlConfig, MplugOwlVisionConfig, MplugOwlVisualAbstractorConfig
from .loading import CheckpointMismatchError
from .modeling_mplug_owl import MplugOwlForConditionalGeneration, MplugOwlPreTrainedModel
from .processing_mplug_owl import (
    IMAGE_TOKEN,
    SYSTEM_PROMPT,
    ChatTurn,
    MplugOwlImageProcessor,
    MplugOwlProcessor,
    build_prompt,
)

DEFAULT_CHECKPOINT = "MAGAer13/mplug-owl-llama-7b"

__all__ = [
    "DEFAULT_CHECKPOINT",
    "IMAGE_TOKEN",
    "SYSTEM_PROMPT",
    "ChatTurn",
    "CheckpointMismatchError",
    "MplugOwlConfig",
    "MplugOwlForConditionalGeneration",
    "MplugOwlImageProcessor",
    "MplugOwlPreTrainedModel",
    "MplugOwlProcessor",
    "MplugOwlVisionConfig",
    "MplugOwlVisualAbstractorConfig",
    "build_prompt",
]
