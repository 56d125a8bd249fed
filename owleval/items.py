"""Item kinds of a grading study's queue and the reserved attention-check model, shared by the study, the quality checks, the
answers files and the report.

Rows of special kinds (gold, onboarding, attention, retest) are extra rows beside the annotator's regular grade of
the answer; they never count as grades in a score. A grades CSV without ``item_kind`` (or with a blank cell) holds
regular grades only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

REGULAR = "regular"
ITEM_KINDS = ("regular", "gold", "onboarding", "attention", "retest")
VOTE_ITEM_KINDS = ("regular", "gold")
#: kinds whose rows carry the expert's ``expected_grade``
GOLD_KINDS = ("gold", "onboarding")
#: the reserved model id of attention-check items: no model of a study, never in a score
CHECK_MODEL = "owleval:check"
GRADES = ("A", "B", "C", "D")
#: grade letter -> score (A=3 ... D=0), as the report scores grades
SCORES = {"A": 3, "B": 2, "C": 1, "D": 0}


def with_item_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``item_kind`` (blank -> regular) and ``expected_grade`` (blank -> "") present."""
    out = frame.copy()
    kind = out["item_kind"] if "item_kind" in out.columns else None
    out["item_kind"] = REGULAR if kind is None else kind.fillna("").astype(str).str.strip().str.lower().replace("", REGULAR)
    expected = out["expected_grade"] if "expected_grade" in out.columns else None
    out["expected_grade"] = "" if expected is None else expected.fillna("").astype(str).str.strip().str.upper()
    return out


def regular_grades(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows that count as grades: item_kind regular and not an attention check's reserved model."""
    if "item_kind" not in frame.columns:
        return frame[frame["model_id"] != CHECK_MODEL]
    kind = frame["item_kind"].fillna("").astype(str).str.strip().str.lower()
    return frame[kind.isin(["", REGULAR]) & (frame["model_id"] != CHECK_MODEL)]
