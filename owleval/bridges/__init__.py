"""Bridges to lmms-eval, VLMEvalKit and Inspect AI: OwlEval exported as their task, their runs read back as answers.
None of the kits is imported: the files under ``kit_files/`` are copied into an export and run inside the kit."""

from __future__ import annotations


import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from owleval.errors import OwlEvalError

if TYPE_CHECKING:
    from owleval.bridges.importing import KitRun

#: kit name (as ``--from`` takes it) -> the module that reads its runs (``read_runs(path)``)
KIT_MODULES = {"lmms-eval": "owleval.bridges.lmms_eval", "vlmevalkit": "owleval.bridges.vlmevalkit", "inspect": "owleval.bridges.inspect_ai"}


def read_kit_runs(kit: str, paths: list[Path]) -> list[KitRun]:
    """Every OwlEval run found in ``paths`` (files or folders) as the kit ``kit`` wrote them."""
    if kit not in KIT_MODULES:
        raise OwlEvalError(f"unknown kit {kit!r}; choose from {', '.join(KIT_MODULES)}")
    module = importlib.import_module(KIT_MODULES[kit])
    return [run for path in paths for run in module.read_runs(path)]
