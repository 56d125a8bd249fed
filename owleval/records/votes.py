"""Pairwise votes in: a votes.csv (people's, from `owleval grades export` on a pairwise study, or the pairwise
judge's), validated into one tidy DataFrame. Every problem names its file, line and field; nothing downstream
runs while any remains.

Format: ``annotator, question_id, model_a, model_b, left, winner, reason, voted_at`` with ``model_a`` < ``model_b``
in sorted order, ``left`` the model shown on the left, ``winner`` one of ``model_a``, ``model_b``, ``tie``,
``both_bad``. A judge's file has annotator ``judge:<checkpoint>``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from owleval.csvio import read_records
from owleval.errors import InputFileError, OwlEvalError, Problem
from owleval.items import VOTE_ITEM_KINDS
from owleval.records.frames import checked_frame, resolve_in_folder
from owleval.questions import Question

VOTE_COLUMNS = ("annotator", "question_id", "model_a", "model_b", "left", "winner", "reason", "voted_at")
#: the study side's QC columns: item_kind regular|gold (missing or blank: regular), expected_winner on gold rows
QC_VOTE_COLUMNS = ("item_kind", "expected_winner")
REQUIRED_VOTE_COLUMNS = ("annotator", "question_id", "model_a", "model_b", "winner")
WINNER_TOKENS = ("model_a", "model_b", "tie", "both_bad")
#: model_a's score in a vote: a tie and "both bad" count half a win each
OUTCOME_SCORE = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "both_bad": 0.5}
#: columns of the validated frame
FRAME_COLUMNS = (*VOTE_COLUMNS, *QC_VOTE_COLUMNS, "outcome", "source_line")
VOTES_FILE = "votes.csv"
JUDGE_META = "meta.json"
#: meta.json keys that may hold the pairwise judge's position-consistency rate, in the order tried
CONSISTENCY_KEYS = ("position_consistency", "position_consistency_rate")


@dataclass
class JudgeVotes:
    """The pairwise judge's votes and what its meta.json says."""

    path: Path
    votes: pd.DataFrame
    annotator: str
    meta_path: Path | None = None
    position_consistency: float | None = None
    consistency_pairs: int | None = None  # the pairs with both orders parsed, which the rate is over
    consistency_ci: tuple[float, float] | None = None
    meta: dict[str, Any] | None = None


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line where the record starts, record with formula quotes removed); header problems raise at once."""
    return read_records(path, REQUIRED_VOTE_COLUMNS, known=(*VOTE_COLUMNS, *QC_VOTE_COLUMNS), what="a votes file has")


def _check_model(value: str, field: str, where: tuple[Path, int], models: Collection[str] | None, origin: str) -> list[Problem]:
    path, line = where
    if not value:
        return [Problem(path, line, field, "empty")]
    if any(ch < " " for ch in value):
        return [Problem(path, line, field, "holds control characters")]
    if models is not None and value not in models:
        return [Problem(path, line, field, f"model {value!r} is not among the answers in {origin} ({', '.join(sorted(models))})")]
    return []


def _check_vote(rec: dict[str, Any], where: tuple[Path, int], qids: Collection[int], models: Collection[str] | None, origin: str) -> tuple[dict[str, Any] | None, list[Problem]]:
    path, line = where
    problems: list[Problem] = []
    annotator = _text(rec.get("annotator"))
    if not annotator:
        problems.append(Problem(path, line, "annotator", "empty"))
    model_a, model_b = _text(rec.get("model_a")), _text(rec.get("model_b"))
    problems += _check_model(model_a, "model_a", where, models, origin)
    problems += _check_model(model_b, "model_b", where, models, origin)
    if model_a and model_a == model_b:
        problems.append(Problem(path, line, "model_b", f"a pair of one model with itself ({model_a!r})"))
    elif model_a and model_b and model_a > model_b:
        problems.append(Problem(path, line, "model_a", f"model_a {model_a!r} must sort before model_b {model_b!r}"))
    raw_qid = _text(rec.get("question_id"))
    qid: int | None = None
    try:
        as_float = float(raw_qid)
        if as_float.is_integer():
            qid = int(as_float)
    except ValueError:
        pass
    if qid is None:
        problems.append(Problem(path, line, "question_id", f"{raw_qid!r} is not a question id"))
    elif qid not in qids:
        problems.append(Problem(path, line, "question_id", f"unknown question id {qid}; the set has ids {min(qids)}-{max(qids)}"))
    winner = _text(rec.get("winner"))
    if winner not in WINNER_TOKENS:
        problems.append(Problem(path, line, "winner", f"{winner!r} is not a vote; allowed {', '.join(WINNER_TOKENS)}"))
    left = _text(rec.get("left"))
    if left and left not in (model_a, model_b):
        problems.append(Problem(path, line, "left", f"{left!r} is neither model_a nor model_b"))
    kind = _text(rec.get("item_kind")).lower() or "regular"
    if kind not in VOTE_ITEM_KINDS:
        problems.append(Problem(path, line, "item_kind", f"{_text(rec.get('item_kind'))!r} is not a vote item kind; allowed {', '.join(VOTE_ITEM_KINDS)}"))
    expected = _text(rec.get("expected_winner"))
    if expected and expected not in WINNER_TOKENS:
        problems.append(Problem(path, line, "expected_winner", f"{expected!r} is not a vote; allowed {', '.join(WINNER_TOKENS)} or blank"))
    if problems:
        return None, problems
    return {
        "item_kind": kind, "expected_winner": expected,
        "annotator": annotator, "question_id": qid, "model_a": model_a, "model_b": model_b, "left": left, "winner": winner,
        "reason": _text(rec.get("reason")), "voted_at": _text(rec.get("voted_at")), "outcome": OUTCOME_SCORE[winner], "source_line": line,
    }, []  # fmt: skip


def read_votes(path: Path, questions: Sequence[Question], *, models: Collection[str] | None = None, models_origin: str = "--answers") -> pd.DataFrame:
    """Validated votes, one row per vote; a second vote by one annotator on one pair of one question is an error."""
    path = Path(path)
    qids = {q.question_id for q in questions}
    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    first_seen: dict[tuple[str, int, str, str, str], int] = {}
    for line, rec in _records(path):
        row, found = _check_vote(rec, (path, line), qids, models, models_origin)
        problems += found
        if row is None:
            continue
        key = (row["annotator"], row["question_id"], row["model_a"], row["model_b"], row["item_kind"])
        if key in first_seen:
            problems.append(Problem(path, line, "winner", f"annotator {key[0]!r} voted on {key[2]!r} vs {key[3]!r} for question {key[1]} twice (first on line {first_seen[key]})"))
            continue
        first_seen[key] = line
        rows.append(row)
    return checked_frame(rows, problems, path, "votes", FRAME_COLUMNS, ["model_a", "model_b", "question_id", "annotator"])


def resolve_judge_votes(path: Path) -> Path:
    """``--judge-votes`` names the pairwise judge's votes.csv or the folder holding it."""
    return resolve_in_folder(path, VOTES_FILE, "--judge-votes", "owleval judge --pairwise")


def read_judge_votes(path: Path, questions: Sequence[Question], *, models: Collection[str] | None = None, models_origin: str = "--answers") -> JudgeVotes:
    """The pairwise judge's votes (one annotator, ``judge:<checkpoint>``) and its meta.json when one sits beside them."""
    path = resolve_judge_votes(path)
    frame = read_votes(path, questions, models=models, models_origin=models_origin)
    annotators = sorted(frame["annotator"].unique())
    if len(annotators) != 1:
        raise InputFileError([Problem(path, None, "annotator", f"a judge's votes file holds one judge's votes; this one has {len(annotators)}: {', '.join(annotators)}")])
    judge = JudgeVotes(path, frame, annotators[0])
    meta_path = path.with_name(JUDGE_META)
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise OwlEvalError(f"{meta_path}: not readable JSON ({exc})") from exc
        if not isinstance(meta, dict):
            raise OwlEvalError(f"{meta_path}: expected a JSON object")
        judge.meta_path, judge.meta = meta_path, meta
        for key in CONSISTENCY_KEYS:
            value = meta.get(key)
            if isinstance(value, dict):  # {"rate": ..., "pairs": ..., "ci95": [low, high]}, as `owleval judge --pairwise` writes
                pairs, ci95 = value.get("pairs"), value.get("ci95")
                judge.consistency_pairs = pairs if isinstance(pairs, int) and not isinstance(pairs, bool) else None
                if isinstance(ci95, list) and len(ci95) == 2 and all(isinstance(v, (int, float)) for v in ci95):
                    judge.consistency_ci = (float(ci95[0]), float(ci95[1]))
                value = value.get("rate")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if not 0.0 <= float(value) <= 1.0:
                    raise OwlEvalError(f"{meta_path}: {key} is {value}, not a share between 0 and 1")
                judge.position_consistency = float(value)
                break
    return judge
