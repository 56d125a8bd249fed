"""The grade scale and grade records: a grades CSV (or rows read from a study) validated into one tidy DataFrame.

Every problem is reported with its file and line (CSV) or row (database), and nothing downstream runs while
any error remains, so a report is never built on half-checked grades.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from owleval.csvio import read_records
from owleval.errors import Problem
from owleval.items import CHECK_MODEL, GOLD_KINDS, ITEM_KINDS, REGULAR
from owleval.records.frames import checked_frame
from owleval.questions import Question, parse_question_id

if TYPE_CHECKING:
    import pandas as pd

#: grade letter -> score used for means and ordinal statistics
GRADE_SCORES: dict[str, int] = {"A": 3, "B": 2, "C": 1, "D": 0}
SCORE_GRADES: dict[int, str] = {v: k for k, v in GRADE_SCORES.items()}
GRADE_LETTERS = tuple(GRADE_SCORES)  # A, B, C, D
#: the lowest score counted as acceptable (grade B)
ACCEPTABLE_MIN_SCORE = GRADE_SCORES["B"]
#: what an annotator can flag about an answer (stored comma-separated in a grade's ``flags``, in this order)
FLAGS: dict[str, str] = {"image-missing": "image missing", "answer-cut-off": "answer cut off"}
REQUIRED_COLUMNS = ("annotator", "model_id", "question_id", "grade")
OPTIONAL_COLUMNS = ("comment", "graded_at", "item_kind", "expected_grade")
#: columns of the validated frame, in order. ``item_kind`` is regular|gold|onboarding|attention|retest (a missing
#: column or blank cell: regular); ``expected_grade`` the expert's grade of a gold, onboarding or attention row.
FRAME_COLUMNS = ("annotator", "model_id", "question_id", "grade", "score", "comment", "graded_at", "item_kind", "expected_grade", "source_line")


def _text(value: Any) -> str:
    """A cell as stripped text; a database's NULL (None, or NaN once in a frame) is empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _check_record(
    rec: dict[str, Any], where: tuple[Path, int | None], qids: Collection[int], models: Collection[str] | None, models_origin: str
) -> tuple[dict[str, Any] | None, list[Problem]]:
    path, line = where
    problems: list[Problem] = []
    annotator = _text(rec.get("annotator"))
    model = _text(rec.get("model_id"))
    if not annotator:
        problems.append(Problem(path, line, "annotator", "empty"))
    if not model:
        problems.append(Problem(path, line, "model_id", "empty"))
    elif any(ch < " " for ch in model):
        problems.append(Problem(path, line, "model_id", "holds control characters"))
    elif models is not None and model not in models and model != CHECK_MODEL:
        problems.append(Problem(path, line, "model_id", f"model {model!r} is not among the answers in {models_origin} ({', '.join(sorted(models))})"))
    raw_qid = _text(rec.get("question_id"))
    qid = parse_question_id(raw_qid)
    if qid is None:
        problems.append(Problem(path, line, "question_id", f"{raw_qid!r} is not a question id"))
    elif qid not in qids:
        problems.append(Problem(path, line, "question_id", f"unknown question id {qid}; the set has ids {min(qids)}-{max(qids)}"))
    grade = _text(rec.get("grade")).upper()
    if grade not in GRADE_SCORES:
        problems.append(Problem(path, line, "grade", f"{_text(rec.get('grade'))!r} is not a grade; allowed A, B, C, D"))
    kind = _text(rec.get("item_kind")).lower() or REGULAR
    if kind not in ITEM_KINDS:
        problems.append(Problem(path, line, "item_kind", f"{_text(rec.get('item_kind'))!r} is not an item kind; allowed {', '.join(ITEM_KINDS)}"))
    expected = _text(rec.get("expected_grade")).upper()
    if expected and expected not in GRADE_SCORES:
        problems.append(Problem(path, line, "expected_grade", f"{expected!r} is not a grade; allowed A, B, C, D or blank"))
    elif expected and kind not in (*GOLD_KINDS, "attention"):
        problems.append(Problem(path, line, "expected_grade", f"only gold, onboarding and attention rows carry an expected grade (this row is {kind})"))
    if model == CHECK_MODEL and kind != "attention":
        problems.append(Problem(path, line, "model_id", f"{CHECK_MODEL!r} is reserved for attention-check rows (item_kind attention)"))
    if problems:
        return None, problems
    row = {
        "annotator": annotator,
        "model_id": model,
        "question_id": qid,
        "grade": grade,
        "score": GRADE_SCORES[grade],
        "comment": _text(rec.get("comment")),
        "graded_at": _text(rec.get("graded_at")),
        "item_kind": kind,
        "expected_grade": expected,
        "source_line": line if line is not None else -1,
    }
    return row, []


def validate_records(
    records: Iterable[tuple[int | None, dict[str, Any]]],
    path: Path,
    questions: Sequence[Question],
    *,
    models: Collection[str] | None = None,
    models_origin: str = "--answers",
    unit: str = "line",
) -> pd.DataFrame:
    """Check every record; raise :class:`owleval.errors.InputFileError` with all problems, else return the frame."""
    qids = {q.question_id for q in questions}
    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    first_seen: dict[tuple[str, str, int, str], int | None] = {}
    for line, rec in records:
        row, found = _check_record(rec, (path, line), qids, models, models_origin)
        problems += found
        if row is None:
            continue
        key = (row["annotator"], row["model_id"], row["question_id"], row["item_kind"])
        if key in first_seen:
            first = first_seen[key]
            at = f" (first on {unit} {first})" if first is not None else ""
            kind = "" if key[3] == REGULAR else f" as a {key[3]} item"
            problems.append(
                Problem(path, line, "question_id", f"annotator {key[0]!r} rated model {key[1]!r} on question {key[2]}{kind} twice{at}")
            )
            continue
        first_seen[key] = line
        rows.append(row)
    frame = checked_frame(rows, problems, path, "grades", FRAME_COLUMNS, ["model_id", "question_id", "annotator"])
    return frame.astype({"score": "int64"})


def csv_records(path: Path) -> Iterable[tuple[int | None, dict[str, Any]]]:
    """Yield (line number where the record starts, record), formula quotes removed; header problems raise at once."""
    yield from read_records(path, REQUIRED_COLUMNS, known=OPTIONAL_COLUMNS)


def read_grades_csv(path: Path, questions: Sequence[Question], *, models: Collection[str] | None = None, models_origin: str = "--answers") -> pd.DataFrame:
    """A grades CSV (annotator, model_id, question_id, grade[, comment, graded_at, ...extra columns])."""
    records = list(csv_records(path))  # header/format errors first, before any value check
    return validate_records(records, path, questions, models=models, models_origin=models_origin)
