"""Model adapters (installed as ``owleval.adapters``): one interface, one file per backend."""

from owleval.adapters.base import (
    AdapterError,
    Conversation,
    GenerationConfig,
    ImageRef,
    LoadOptions,
    ModelAdapter,
    Turn,
)
from owleval.adapters.registry import available_adapters, get_adapter_class

__all__ = [
    "AdapterError",
    "Conversation",
    "GenerationConfig",
    "ImageRef",
    "LoadOptions",
    "ModelAdapter",
    "Turn",
    "available_adapters",
    "get_adapter_class",
]
