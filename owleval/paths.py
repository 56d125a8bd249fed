"""Where the data set lives: OWLEVAL_DATA, else a per-user cache; a checkout's data folder only when the set is
already installed there (said in one line), so a development install run elsewhere leaves the checkout alone."""

from __future__ import annotations

import functools
import os
import sys
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
    """The folder holding the installed data set (questions.jsonl, cases/, answer/): ``$OWLEVAL_DATA``, else an
    existing install in the checkout's ``data/owleval_82q`` (with a one-line notice), else the user cache. A
    command's ``--data`` is passed instead of calling this."""
    env = os.environ.get("OWLEVAL_DATA")
    if env:
        return Path(env).expanduser()
    root = checkout_root()
    if root is not None and (root / "data" / DATASET_NAME / QUESTIONS_FILE).is_file():
        _say_checkout_data(root / "data" / DATASET_NAME)
        return root / "data" / DATASET_NAME
    return user_cache_dir() / DATASET_NAME


#: the file whose presence marks an installed data set
QUESTIONS_FILE = "questions.jsonl"


@functools.cache
def _say_checkout_data(folder: Path) -> None:
    """Once per process: which data set is used when it is the checkout's rather than the cache."""
    print(f"note: using the data set installed in the checkout, {folder} (set OWLEVAL_DATA or --data for another)",
          file=sys.stderr)
