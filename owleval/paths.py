"""Where the data set lives: OWLEVAL_DATA, else the checkout's data folder, else a per-user cache."""

from __future__ import annotations

import os
from pathlib import Path

DATASET_NAME = "owleval_82q"
_CHECKOUT_ROOT = Path(__file__).resolve().parent.parent


def checkout_root() -> Path | None:
    """The source checkout this package runs from, if any (editable install or repo on sys.path)."""
    root = _CHECKOUT_ROOT
    if (root / "pyproject.toml").is_file() and (root / "data" / DATASET_NAME / "manifest.json").is_file():
        return root
    return None


def user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "owleval"


def default_data_dir() -> Path:
    """The folder holding the installed data set (questions.jsonl, cases/, answer/)."""
    env = os.environ.get("OWLEVAL_DATA")
    if env:
        return Path(env).expanduser()
    root = checkout_root()
    if root is not None:
        return root / "data" / DATASET_NAME
    return user_cache_dir() / DATASET_NAME
