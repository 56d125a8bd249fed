"""Grades in for the report: a grades CSV or a study file (told apart by content), validated into one DataFrame.

The checks themselves live in :mod:`owleval.records.grades`; this module only finds the records.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from owleval.errors import OwlEvalError
from owleval.records.grades import REQUIRED_COLUMNS, read_grades_csv, validate_records
from owleval.study.export import grades_export_frame

if TYPE_CHECKING:
    import pandas as pd

    from owleval.questions import Question

_SQLITE_MAGIC = b"SQLite format 3\x00"


def is_sqlite(path: Path) -> bool:
    """True when ``path`` is an SQLite database (by content, whatever its extension)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(16) == _SQLITE_MAGIC
    except OSError:
        return False


def read_grades_db(path: Path, questions: Sequence[Question], *, models: Collection[str] | None = None, models_origin: str = "--answers") -> pd.DataFrame:
    """The grades of a grading database as ``owleval grades export`` writes them: the current regular grades and the
    grades of special items (gold, onboarding, attention checks, retests), told apart by ``item_kind``."""
    frame = grades_export_frame(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise OwlEvalError(f"{path}: the grading database export lacks columns {missing}")
    records = ((i + 1, rec) for i, rec in enumerate(frame.to_dict("records")))
    return validate_records(records, path, questions, models=models, models_origin=models_origin, unit="row")


def read_grades(path: Path, questions: Sequence[Question], *, models: Collection[str] | None = None, models_origin: str = "--answers") -> pd.DataFrame:
    """Grades from a CSV or an SQLite grading database (told apart by content).

    ``models``: when given (the models of ``--answers``), a grade for any other model is an error.
    """
    path = Path(path)
    if not path.exists():
        raise OwlEvalError(f"{path}: no such file")
    if path.is_dir():
        raise OwlEvalError(f"{path} is a folder; give a grades CSV or a study file")
    if is_sqlite(path):
        return read_grades_db(path, questions, models=models, models_origin=models_origin)
    return read_grades_csv(path, questions, models=models, models_origin=models_origin)
