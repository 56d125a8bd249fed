"""Read a study out: current grades (what ``owleval report`` scores) and progress per annotator and model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from owleval.csvio import frame_to_csv
from owleval.errors import OwlEvalError
from owleval.fileio import atomic_write_text
from owleval.grading.store import Store

#: the columns ``owleval report`` reads; ``flags`` follows them so no annotator note is lost in the CSV
GRADE_COLUMNS = ["annotator", "model_id", "question_id", "grade", "comment", "graded_at"]
EXPORT_COLUMNS = GRADE_COLUMNS + ["flags"]


def current_grades_frame(db_path: Path | str | Store) -> pd.DataFrame:
    """One row per current grade of a current answer: the latest grade event of each annotator for it.

    Grades given to an answer text that a refresh replaced are history, not current, and are left out.
    """
    store = db_path if isinstance(db_path, Store) else Store(Path(db_path))
    try:
        rows = store.conn.execute(
            """SELECT n.name, a.model_id, a.question_id, g.grade, g.comment, g.created_at, g.flags
               FROM current_grades g
               JOIN answers a ON a.answer_id = g.answer_id AND a.active = 1
               JOIN annotators n ON n.annotator_id = g.annotator_id
               ORDER BY n.name, a.model_id, a.question_id"""
        ).fetchall()
    finally:
        if store is not db_path:  # opened here for a path: close it here
            store.close()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=EXPORT_COLUMNS)
    return frame.astype({"question_id": "int64"})


def write_grades_csv(db_path: Path | str, out: Path) -> int:
    """Write the current grades to ``out`` (atomically); returns the number of rows."""
    frame = current_grades_frame(db_path)
    try:
        atomic_write_text(Path(out), frame_to_csv(frame))
    except OSError as exc:
        raise OwlEvalError(f"cannot write {out}: {exc.strerror or exc}") from exc
    return len(frame)


def progress_frame(store: Store) -> pd.DataFrame:
    """Graded / assigned per annotator and model (active answers only)."""
    rows = store.conn.execute(
        """SELECT n.name AS annotator, s.model_id, COUNT(a.answer_id) AS assigned,
                  COUNT(DISTINCT g.answer_id) AS graded
           FROM annotators n
           JOIN assignments s ON s.annotator_id = n.annotator_id
           JOIN answers a ON a.model_id = s.model_id AND a.question_id = s.question_id AND a.active = 1
           LEFT JOIN (SELECT DISTINCT annotator_id, answer_id FROM grade_events) g
                  ON g.annotator_id = n.annotator_id AND g.answer_id = a.answer_id
           GROUP BY n.name, s.model_id ORDER BY n.name, s.model_id"""
    ).fetchall()
    return pd.DataFrame([tuple(r) for r in rows], columns=["annotator", "model_id", "assigned", "graded"])


def progress_by(progress: pd.DataFrame, column: str) -> pd.DataFrame:
    """:func:`progress_frame` summed per ``annotator`` or per ``model_id``, with a percentage."""
    out = progress.groupby(column, as_index=False)[["graded", "assigned"]].sum()
    out["done_%"] = (100 * out["graded"] / out["assigned"].where(out["assigned"] > 0)).round(1).fillna(0.0)
    return out


def flagged_frame(grades: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`current_grades_frame` that carry a flag, for the study owner to look at."""
    return grades[grades["flags"] != ""].reset_index(drop=True)
