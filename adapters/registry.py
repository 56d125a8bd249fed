"""Find adapters by name: the built-in ones plus any registered under the entry-point group ``owleval.adapters``.

Nothing heavy is imported until an adapter is asked for, so ``import owleval`` stays fast.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points

from owleval.adapters.base import AdapterError, ModelAdapter

ENTRY_POINT_GROUP = "owleval.adapters"

#: name -> "module:Class"; entry points of the same name (from this package's metadata) agree with these.
BUILTIN_ADAPTERS: dict[str, str] = {
    "answers-file": "owleval.adapters.answers_file:AnswersFileAdapter",
    "mplug-owl": "owleval.adapters.mplug_owl:MplugOwlAdapter",
    "llava": "owleval.adapters.llava:LlavaAdapter",
    "minigpt4": "owleval.adapters.minigpt4:MiniGPT4Adapter",
    "openai": "owleval.adapters.openai_compat:OpenAICompatAdapter",
    "hf": "owleval.adapters.hf:HFAdapter",
}


@dataclass(frozen=True)
class AdapterSpec:
    name: str
    target: str  # "module:Class"
    source: str  # "built-in" or the distribution that registered it


def _module_exists(target: str) -> bool:
    module = target.split(":", 1)[0]
    return importlib.util.find_spec(module) is not None  # type: ignore[attr-defined]


def available_adapters() -> dict[str, AdapterSpec]:
    specs: dict[str, AdapterSpec] = {}
    for name, target in BUILTIN_ADAPTERS.items():
        if _module_exists(target):
            specs[name] = AdapterSpec(name, target, "built-in")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in specs:
            continue
        dist = ep.dist.name if ep.dist is not None else "unknown"
        specs[ep.name] = AdapterSpec(ep.name, ep.value, dist)
    return dict(sorted(specs.items()))


def get_adapter_class(name: str) -> type[ModelAdapter]:
    specs = available_adapters()
    if name not in specs:
        raise AdapterError(f"unknown model {name!r}; available: {', '.join(specs) or 'none'}")
    module_name, _, attr = specs[name].target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise AdapterError(f"model {name!r} is registered as {specs[name].target} but cannot be loaded: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, ModelAdapter)):
        raise AdapterError(f"{specs[name].target} is not a ModelAdapter subclass")
    return cls
