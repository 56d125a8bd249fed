"""Bridges to the evaluation kits people already run: lmms-eval, VLMEvalKit and Inspect AI.

``owleval export <kit>`` writes OwlEval's 82 questions as a task in that kit's own format; ``owleval answers
import --from <kit>`` reads what the kit generated back into answers files. OwlEval never imports any of the
three kits: the files under ``kit_files/`` are copied into the export and run inside the kit.
"""

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
