"""Read a study out: current grades (what ``owleval report`` scores) and progress per annotator and model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from owleval.csvio import frame_to_csv
from owleval.errors import OwlEvalError
from owleval.fileio import atomic_write_text
from owleval.study.store import Store

#: the columns ``owleval report`` reads; ``flags`` follows them so no annotator note is lost in the CSV
GRADE_COLUMNS = ["annotator", "model_id", "question_id", "grade", "comment", "graded_at"]
#: the current-grades frame (regular grades only, what scores count), and a judge's grades.csv
EXPORT_COLUMNS = GRADE_COLUMNS + ["flags"]
#: ``owleval grades export`` adds them: ``item_kind`` is regular|gold|onboarding|attention|retest (a missing column or
#: a blank cell reads as regular); ``expected_grade`` is the gold or check grade, filled only for gold, onboarding and
#: attention rows. Special items are rows of their own beside the annotator's regular grade of the answer.
ITEM_COLUMNS = ["item_kind", "expected_grade"]
GRADES_CSV_COLUMNS = EXPORT_COLUMNS + ITEM_COLUMNS
_KIND_ORDER = {"regular": 0, "onboarding": 1, "gold": 2, "attention": 3, "retest": 4}


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


def grades_export_frame(db_path: Path | str | Store) -> pd.DataFrame:
    """The export of ``owleval grades export`` as a frame, written nowhere (the Admin page's annotator table reads it):
    the current regular grades (:func:`current_grades_frame`, ``item_kind`` regular) plus one row per graded special
    item (its latest grade event) with its kind and expected grade. Sorted by annotator, model, question, kind."""
    store = db_path if isinstance(db_path, Store) else Store(Path(db_path))
    try:
        regular = current_grades_frame(store).assign(item_kind="regular", expected_grade="")
        rows = store.conn.execute(
            """SELECT n.name, a.model_id, a.question_id, e.grade, e.comment, e.created_at, e.flags, p.item_kind,
                      CASE WHEN p.item_kind IN ('gold', 'onboarding', 'attention') THEN COALESCE(p.expected_grade, '') ELSE '' END
               FROM special_items p
               JOIN grade_events e ON e.event_id = (SELECT MAX(x.event_id) FROM grade_events x WHERE x.item_id = p.item_id)
               JOIN answers a ON a.answer_id = p.answer_id
               JOIN annotators n ON n.annotator_id = p.annotator_id"""
        ).fetchall()
    finally:
        if store is not db_path:
            store.close()
    special = pd.DataFrame([tuple(r) for r in rows], columns=GRADES_CSV_COLUMNS)
    frame = pd.concat([regular, special], ignore_index=True) if len(special) else regular
    frame = frame.astype({"question_id": "int64"})[GRADES_CSV_COLUMNS]
    order = frame["item_kind"].map(_KIND_ORDER)
    return (frame.assign(_kind=order).sort_values(["annotator", "model_id", "question_id", "_kind"], kind="stable")
            .drop(columns="_kind").reset_index(drop=True))


def write_grades_csv(db_path: Path | str, out: Path) -> int:
    """Write the export (:func:`grades_export_frame`) to ``out`` (atomically); returns the number of rows."""
    frame = grades_export_frame(db_path)
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
           LEFT JOIN (SELECT DISTINCT annotator_id, answer_id FROM grade_events WHERE item_id IS NULL) g
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
