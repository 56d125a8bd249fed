"""The inclusion probabilities of an active study (``study create --design active``), checked before the report
weights by them: a study whose probabilities are missing or do not match its design is refused, naming the study
file and the model, rather than giving an interval that assumes another design."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from owleval.errors import OwlEvalError
from owleval.study.sample import TURN_TYPES, design_kind

#: how far a stratum's stored probabilities may sum from its expected draws (rounding of the stored floats)
SUM_TOLERANCE = 1e-6


def study_probabilities(
    design: Mapping[str, Any] | None, source: str, human: pd.DataFrame, population: pd.DataFrame, turn: Mapping[int, str]
) -> dict[str, dict[int, float]] | None:
    """model -> question id -> pi for an active design (None for a uniform one or none).

    ``human``: the human-graded answers (model_id, question_id); ``population``: every answer the report counts
    (judge-graded, judge-missed and human-graded); ``turn``: question id -> turn type."""
    kind = design_kind(design)
    if design is None or kind == "uniform":
        for model, part in (design or {}).get("models", {}).items():
            if "probabilities" in part:
                raise OwlEvalError(f"{source}: model {model}: the study's design is uniform but it stores inclusion probabilities; "
                                   "they do not match its design (was the study file edited?)")  # fmt: skip
        return None
    if kind != "active":
        raise OwlEvalError(f"{source}: unknown sampling design {kind!r} (this owleval knows 'uniform' and 'active')")
    out: dict[str, dict[int, float]] = {}
    graded_models = sorted(set(human["model_id"]))
    for model in graded_models:
        part = design.get("models", {}).get(model)
        where = f"{source}: model {model}"
        if part is None:
            raise OwlEvalError(f"{where}: has human grades but the active design drew no sample for it")
        raw = part.get("probabilities")
        if not isinstance(raw, Mapping) or not raw:
            raise OwlEvalError(f"{where}: the active design's inclusion probabilities are missing; the weighted estimator needs them")
        pi: dict[int, float] = {}
        for key, value in raw.items():
            try:
                q, p = int(key), float(value)
            except (TypeError, ValueError):
                raise OwlEvalError(f"{where}: inclusion probability {key!r}: {value!r} is not a question id and a number") from None
            if not (math.isfinite(p) and 0.0 < p <= 1.0):
                raise OwlEvalError(f"{where}: question {q}: inclusion probability {value!r} is not in (0, 1]")
            pi[q] = p
        answers = {int(q) for q in population.loc[population["model_id"] == model, "question_id"]}
        lacking = sorted(answers - set(pi))
        if lacking:
            raise OwlEvalError(f"{where}: no inclusion probability for question(s) {', '.join(map(str, lacking[:10]))}: "
                               "the answers differ from those the design was drawn on")  # fmt: skip
        expected = part.get("expected", {})
        for t in TURN_TYPES:
            total = sum(p for q, p in pi.items() if turn.get(q) == t)
            if abs(total - float(expected.get(t, math.nan))) > SUM_TOLERANCE:
                raise OwlEvalError(f"{where}: the {t} answers' inclusion probabilities sum to {total:.6g}, not the "
                                   f"{expected.get(t)} expected draws of its design: they do not match it")  # fmt: skip
        drawn = {int(q) for q in part.get("question_ids", [])}
        outside = sorted({int(q) for q in human.loc[human["model_id"] == model, "question_id"]} - drawn)
        if outside:
            raise OwlEvalError(f"{where}: question(s) {', '.join(map(str, outside[:10]))} have human grades but were not "
                               "drawn: the weights hold only for the drawn sample")  # fmt: skip
        out[model] = pi
    return out
