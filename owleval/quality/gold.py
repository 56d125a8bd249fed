"""Gold figures and attention checks per annotator.

An annotator's grade of any answer with a gold grade counts toward their gold figures, whether it came from a gold
or onboarding item or a regular one (so grades imported from elsewhere are checked too). Attention checks are rows
of item kind ``attention``; a check fails when its grade is not its ``expected_grade``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from owleval.items import GOLD_KINDS, GRADES, SCORES



def gold_kind(path: Path) -> str:
    """"grades" for an A-D gold file, "votes" for a pairwise one (by its header)."""
    from owleval.csvio import read_records

    for _, rec in read_records(Path(path), (), what="a gold file has"):
        return "votes" if "winner" in rec else "grades"
    from owleval.errors import OwlEvalError

    raise OwlEvalError(f"--gold {path}: holds no gold rows")


def gold_from_rows(grades: pd.DataFrame) -> pd.DataFrame:
    """Gold grades (model_id, question_id, gold_grade) from the expected_grade of gold and onboarding rows."""
    rows = grades[grades["item_kind"].isin(GOLD_KINDS) & grades["expected_grade"].isin(GRADES)]
    gold = rows[["model_id", "question_id", "expected_grade"]].rename(columns={"expected_grade": "gold_grade"})
    return gold.drop_duplicates(["model_id", "question_id"]).reset_index(drop=True)


def read_gold_csv(path: Path) -> pd.DataFrame:
    """A gold file ``question_id, model_id, grade[, note]`` (checked as ``study create --gold`` checks it):
    (model_id, question_id, gold_grade)."""
    from owleval.study.gold import parse_gold_csv

    rows = [{"model_id": r.model_id, "question_id": r.question_id, "gold_grade": r.grade} for r in parse_gold_csv(path)]
    return pd.DataFrame(rows, columns=["model_id", "question_id", "gold_grade"])


def gold_figures(grades: pd.DataFrame, gold: pd.DataFrame | None, annotators: list[str]) -> pd.DataFrame:
    """Per annotator: gold_n, gold_exact (share equal), gold_within_one (share at most one grade off), gold_mae."""
    cols = ["gold_n", "gold_exact", "gold_within_one", "gold_mae"]
    if gold is None or gold.empty:
        out = pd.DataFrame(np.nan, index=annotators, columns=cols)
        out["gold_n"] = 0
        return out
    graded = grades[grades["item_kind"] != "attention"]
    pairs = graded.merge(gold, on=["model_id", "question_id"])
    diff = (pairs["grade"].map(SCORES) - pairs["gold_grade"].map(SCORES)).abs()
    by = diff.groupby(pairs["annotator"])
    out = pd.DataFrame({"gold_n": by.size(), "gold_exact": (diff == 0).groupby(pairs["annotator"]).mean(),
                        "gold_within_one": (diff <= 1).groupby(pairs["annotator"]).mean(), "gold_mae": by.mean()})  # fmt: skip
    out = out.reindex(annotators)
    out["gold_n"] = out["gold_n"].fillna(0).astype(int)
    return out[cols]


def check_figures(grades: pd.DataFrame, annotators: list[str]) -> pd.DataFrame:
    """Per annotator: checks_n (attention checks with an expected grade) and checks_failed."""
    checks = grades[(grades["item_kind"] == "attention") & grades["expected_grade"].isin(GRADES)]
    failed = (checks["grade"] != checks["expected_grade"]).groupby(checks["annotator"]).agg(["size", "sum"])
    out = pd.DataFrame({"checks_n": failed["size"], "checks_failed": failed["sum"]}).reindex(annotators).fillna(0).astype(int)
    return out
