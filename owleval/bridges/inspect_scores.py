"""Grades as Inspect scores: one record per sample (dialogue) for ``inspect_ai.scorer.precomputed_scores``.

Each record: ``id`` (the sample id, ``owleval-<first question id>``), ``value`` =
``{"mean_score": 0-3, "acceptable": 0|1}`` and per-turn grades in ``metadata``. Values are numbers, never grade
letters: Inspect reads the letter "C" as CORRECT. An answer graded by several people counts with its lower-median
grade (the report's ``median`` rule); ``mean_score`` is the mean over the dialogue's graded turns (A=3 ... D=0),
``acceptable`` is 1 when every graded turn is A or B. A dialogue with no graded turn has no record (Inspect leaves
it unscored).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd

from owleval.bridges.common import dataset_stamp, dialogues
from owleval.errors import OwlEvalError
from owleval.questions import Question
from owleval.report.combine import COMBINE_RULES, lower_median_scores

#: lowest score that counts as acceptable (B: "some imperfections but acceptable")
ACCEPTABLE_SCORE = 2


def score_records(grades: pd.DataFrame, model_id: str, questions: Sequence[Question]) -> list[dict[str, Any]]:
    """The records for ``model_id`` from validated grades (columns model_id, question_id, grade, score, annotator)."""
    mine = grades[grades["model_id"] == model_id]
    if mine.empty:
        known = sorted(grades["model_id"].unique())
        raise OwlEvalError(f"no grades for model {model_id!r}; the grades hold {', '.join(known) or 'no models'}")
    combined = {int(r.question_id): r for r in lower_median_scores(mine).itertuples()}
    annotators = mine.groupby("question_id")["annotator"].apply(lambda s: sorted(set(s))).to_dict()
    stamp = dataset_stamp()
    records = []
    for dialogue in dialogues(questions):
        turns = []
        for turn, qid in enumerate(dialogue.question_ids):
            row = combined.get(qid)
            if row is not None:
                turns.append({"question_id": qid, "turn": turn, "score": int(row.score), "grade": row.grade,
                              "n_ratings": int(row.n_ratings), "annotators": annotators.get(qid, [])})
        if not turns:
            continue
        scores = [t["score"] for t in turns]
        records.append({
            "id": dialogue.sample_id,
            "value": {"mean_score": sum(scores) / len(scores), "acceptable": int(all(s >= ACCEPTABLE_SCORE for s in scores))},
            "explanation": "OwlEval grades: " + ", ".join(f"question {t['question_id']}: {t['grade']}" for t in turns),
            "metadata": {"model_id": model_id, "turns": turns, "graded_turns": len(turns), "turns_total": len(dialogue.question_ids),
                         "combine": COMBINE_RULES["median"], **stamp},
        })
    return records


def format_records(records: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
