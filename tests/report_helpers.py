"""Synthetic grades for the report tests and benchmark: several models of different quality, several annotators
who mostly agree with a hidden true grade."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from owleval.questions import Question

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "owleval_82q"
LETTERS = np.array(["D", "C", "B", "A"])  # index = score


def data_dir() -> Path:
    """The installed data set: OWLEVAL_DATA, the checkout's data folder, else the shared read-only copy."""
    from owleval.paths import default_data_dir

    for candidate in (os.environ.get("OWLEVAL_DATA"), default_data_dir(), SHARED_DATA):
        if candidate and (Path(candidate) / "questions.jsonl").is_file():
            return Path(candidate)
    raise RuntimeError("no OwlEval data set found (set OWLEVAL_DATA)")


def synthetic_grades(
    questions: Sequence[Question],
    models: Sequence[str],
    annotators: Sequence[str],
    *,
    seed: int = 0,
    noise: float = 0.25,
    coverage: float = 1.0,
) -> pd.DataFrame:
    """Grades CSV rows: a hidden true score per answer (better models score higher); each annotator reports it,
    or with probability ``noise`` a neighbouring grade; each answer is graded by each annotator with
    probability ``coverage`` (at least one annotator always grades it)."""
    rng = np.random.default_rng(seed)
    qids = np.array([q.question_id for q in questions])
    rows = []
    for k, model in enumerate(models):
        skill = 1.0 + 1.5 * k / max(1, len(models) - 1)  # 1.0 .. 2.5 on the 0..3 scale
        truth = np.clip(np.rint(rng.normal(skill, 0.9, size=qids.size)), 0, 3).astype(int)
        for q, t in zip(qids, truth, strict=True):
            graders = [a for a in annotators if rng.random() < coverage] or [annotators[rng.integers(len(annotators))]]
            for a in graders:
                s = t if rng.random() >= noise else int(np.clip(t + rng.choice([-1, 1]), 0, 3))
                rows.append((a, model, int(q), LETTERS[s], "", "2024-01-01T00:00:00Z"))
    return pd.DataFrame(rows, columns=["annotator", "model_id", "question_id", "grade", "comment", "graded_at"])


def write_grades_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False, lineterminator="\n")
    return path
