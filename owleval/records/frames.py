"""What grade and vote readers share: every problem reported at once, then one sorted, typed DataFrame."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from owleval.errors import InputFileError, OwlEvalError, Problem

if TYPE_CHECKING:
    import pandas as pd


def checked_frame(rows: list[dict[str, Any]], problems: list[Problem], path: Path, noun: str, columns: Sequence[str],
                  sort_by: list[str]) -> pd.DataFrame:
    """The rows as a frame sorted by ``sort_by``; raises with every problem found (or "holds no <noun>") instead."""
    import pandas as pd  # here: reading the grade scale must not load pandas

    if problems:
        raise InputFileError(problems)
    if not rows:
        raise InputFileError([Problem(path, None, None, f"holds no {noun}")])
    frame = pd.DataFrame(rows, columns=list(columns))
    frame["question_id"] = frame["question_id"].astype("int64")
    return frame.sort_values(sort_by, kind="stable").reset_index(drop=True)


def resolve_in_folder(path: Path, file_name: str, flag: str, made_by: str) -> Path:
    """``flag`` names ``file_name`` or the folder holding it (as ``made_by`` wrote it); refused when it is neither."""
    path = Path(path)
    if path.is_dir():
        path = path / file_name
    if not path.is_file():
        raise OwlEvalError(f"{flag} {path}: no such file (give the {file_name} that `{made_by}` wrote, or its folder)")
    return path
