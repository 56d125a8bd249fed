"""raw.jsonl: the append-only log of every judge request, and what it adds up to.

One line per request. The lines of one answer's judgement (its samples, each with its parse retries) share a
``judgement`` id and are written together, so a judgement is either wholly in the log or, cut by a kill, left
incomplete and asked again. The latest complete judgement of an answer wins; grades.csv is derived from it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from owleval.csvio import frame_to_csv
from owleval.errors import OwlEvalError
from owleval.fileio import atomic_write_text
from owleval.study.export import EXPORT_COLUMNS
from owleval.judge.parse import median_grade
from owleval.judge.soft import GRADES, expected_score, letter_distribution

PARSED, UNPARSED, FAILED = "parsed", "unparsed", "failed"


@dataclass(frozen=True)
class Judgement:
    """What the judge made of one answer: ``status`` is ``parsed`` (with a grade), ``unparsed`` or ``failed``."""

    model_id: str
    question_id: int
    answer_sha256: str
    status: str
    grade: str | None
    reason: str
    judged_at: str
    lines: tuple[dict[str, Any], ...]
    #: the grades of its parsed samples (more than one with --samples K: an empirical grade distribution)
    sample_grades: tuple[str, ...] = ()
    #: P(A..D): the mean over its parsed samples of each one's distribution (from token probabilities, or its
    #: letter); None when there is nothing beyond one letter (one sample, no -o logprobs=true)
    grade_probs: dict[str, float] | None = None


def read_log(path: Path) -> list[dict[str, Any]]:
    """Every record of ``path`` (none if it does not exist); a line that is not a JSON object is an error."""
    if not path.is_file():
        return []
    records = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise OwlEvalError(f"{path}:{line_no}: not JSON ({exc.msg}); repair it or pass --overwrite") from None
            if not isinstance(record, dict) or not {"judgement", "model_id", "question_id", "sample", "status"} <= record.keys():
                raise OwlEvalError(f"{path}:{line_no}: not a judge request record; repair it or pass --overwrite")
            if not _valid_probs(record.get("grade_probs")):
                raise OwlEvalError(f"{path}:{line_no}: grade_probs must give each of A, B, C, D a probability; repair it or pass --overwrite")
            records.append(record)
    return records


def _valid_probs(probs: Any) -> bool:
    """Absent, or a distribution over A-D (what ``-o logprobs=true`` records)."""
    if probs is None:
        return True
    return (isinstance(probs, dict) and set(probs) == set(GRADES)
            and all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in probs.values()) and abs(sum(probs.values()) - 1) < 1e-6)


def _fold(lines: Sequence[dict[str, Any]]) -> Judgement | None:
    """One judgement from its lines, or None while a sample still lacks its final line."""
    first = lines[0]
    finals = {rec["sample"]: rec for rec in lines if rec.get("final")}
    if set(finals) != set(range(int(first["samples"]))):
        return None
    outcomes = [finals[k] for k in sorted(finals)]
    parsed = [rec for rec in outcomes if rec["status"] == PARSED]
    if any(rec["status"] == FAILED for rec in outcomes):
        status, grade, reason, when = FAILED, None, "", outcomes[-1]["at"]
    elif not parsed:
        status, grade, reason, when = UNPARSED, None, "", outcomes[-1]["at"]
    else:
        grade = median_grade([rec["grade"] for rec in parsed])
        chosen = next(rec for rec in parsed if rec["grade"] == grade)
        status, reason, when = PARSED, chosen["reason"], chosen["at"]
    sampled = tuple(rec["grade"] for rec in parsed) if status == PARSED else ()
    probs = None
    if status == PARSED and (len(parsed) > 1 or any("grade_probs" in rec for rec in parsed)):
        each = [rec.get("grade_probs") or letter_distribution(rec["grade"]) for rec in parsed]
        probs = {g: sum(float(d[g]) for d in each) / len(each) for g in GRADES}
    return Judgement(first["model_id"], int(first["question_id"]), first["answer_sha256"], status, grade, reason, when, tuple(lines),
                     sampled, probs)


def judgements(records: Iterable[dict[str, Any]]) -> dict[tuple[str, int], Judgement]:
    """The latest complete judgement of each (model_id, question_id), in log order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(record["judgement"], []).append(record)
    latest: dict[tuple[str, int], Judgement] = {}
    for lines in groups.values():  # dicts keep first-seen order: later judgements overwrite earlier ones
        judgement = _fold(lines)
        if judgement is not None:
            latest[(judgement.model_id, judgement.question_id)] = judgement
    return dict(sorted(latest.items()))


#: soft-score columns added after the export columns when the judge gave more than a letter (K samples, logprobs)
SOFT_COLUMNS = ("judge_score", "p_acceptable")


def grades_frame(found: dict[tuple[str, int], Judgement], annotator: str) -> pd.DataFrame:
    """The parsed judgements in the columns of ``owleval grades export`` (the reason is the comment).

    When any answer has a grade distribution (``--samples K``, ``-o logprobs=true``), ``judge_score`` and
    ``p_acceptable`` follow: its expected score and probability of A or B (the report's PPI uses them instead of the
    letter); an answer without one counts its letter as certain.
    """
    parsed = [j for j in found.values() if j.status == PARSED]
    rows = [(annotator, j.model_id, j.question_id, j.grade, j.reason, j.judged_at, "") for j in parsed]
    frame = pd.DataFrame(rows, columns=EXPORT_COLUMNS).astype({"question_id": "int64"})
    if any(j.grade_probs is not None for j in parsed):
        soft = [expected_score(j.grade_probs or letter_distribution(j.grade or "")) for j in parsed]
        frame[SOFT_COLUMNS[0]] = [round(a, 6) for a, _ in soft]
        frame[SOFT_COLUMNS[1]] = [round(b, 6) for _, b in soft]
    return frame


def write_grades(log_path: Path, out: Path, annotator: str) -> dict[tuple[str, int], Judgement]:
    """Rewrite ``out`` (grades.csv) from the log, atomically; returns the judgements it was made from."""
    found = judgements(read_log(log_path))
    atomic_write_text(out, frame_to_csv(grades_frame(found, annotator)))
    return found
