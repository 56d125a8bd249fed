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


JUDGE_COLUMNS = ["annotator", "model_id", "question_id", "grade", "comment", "graded_at", "flags"]


def synthetic_judge(
    humans: pd.DataFrame, *, checkpoint: str = "judge-test", seed: int = 0, noise: float = 0.3, lenient: float = 0.3, unparsed: int = 0
) -> tuple[pd.DataFrame, list[dict]]:
    """What `owleval judge` would write for every answer graded in ``humans``: each answer's lower-median human
    grade, one grade kinder with probability ``lenient``, else a neighbouring grade with probability ``noise``.
    The first ``unparsed`` answers of each model get no row and are listed as unparsed instead."""
    rng = np.random.default_rng(seed)
    scores = humans.assign(s=humans.grade.map({"A": 3, "B": 2, "C": 1, "D": 0})).sort_values(["model_id", "question_id", "s"])
    median = scores.groupby(["model_id", "question_id"]).s.apply(lambda s: int(s.iloc[(len(s) - 1) // 2]))
    rows, missing = [], []
    for (model, qid), truth in median.items():
        if sum(1 for m in missing if m["model_id"] == model) < unparsed:
            missing.append({"model_id": model, "question_id": int(qid)})
            continue
        s = truth + 1 if rng.random() < lenient else truth + rng.choice([-1, 1]) * (rng.random() < noise)
        s = int(np.clip(s, 0, 3))
        rows.append((f"judge:{checkpoint}", model, int(qid), LETTERS[s], f"reason for {model} q{qid}", "2024-02-01T00:00:00Z", ""))
    return pd.DataFrame(rows, columns=JUDGE_COLUMNS), missing


def write_judge_folder(folder: Path, judge: pd.DataFrame, unparsed: Sequence[dict] = (), failed: Sequence[dict] = ()) -> Path:
    """grades.csv, meta.json and raw.jsonl as the contract with `owleval judge` has them; returns the folder."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    judge.to_csv(folder / "grades.csv", index=False, lineterminator="\n")
    meta = {
        "judge": "openai",
        "checkpoint": judge.annotator.iloc[0].removeprefix("judge:"),
        "counts": {"judged": len(judge), "unparsed": len(unparsed), "failed": len(failed)},
        "unparsed": list(unparsed),
        "failed": list(failed),
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    (folder / "raw.jsonl").write_text("", encoding="utf-8")
    return folder


def sample_per_model(humans: pd.DataFrame, per_model: int, seed: int = 0) -> pd.DataFrame:
    """Every rating of ``per_model`` random answers of each model (a grading sample)."""
    rng = np.random.default_rng(seed)
    keep = []
    for model, group in humans.groupby("model_id"):
        qids = np.sort(group.question_id.unique())
        keep += [(model, int(q)) for q in rng.choice(qids, size=min(per_model, qids.size), replace=False)]
    chosen = pd.MultiIndex.from_tuples(keep, names=["model_id", "question_id"])
    return humans[pd.MultiIndex.from_frame(humans[["model_id", "question_id"]]).isin(chosen)].reset_index(drop=True)
