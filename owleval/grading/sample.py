"""Grade a random sample: which answers people grade when they grade only K per model (``study create --sample``).

Prediction-powered scores (``owleval report --judge``) are valid when the human-graded answers are a uniform
random sample of each model's answers. The sample is stratified by turn type (single / first / later) with
proportional allocation, so a small sample still covers dialogues as the full set does; inside each stratum the
answers are drawn uniformly, seeded by the study seed and the model name (reproducible, and a model added later
does not change the others' samples). A later turn can be drawn without its dialogue's first turn: the grading
screen always shows the earlier turns as history.

The design is stored as JSON in the study's ``meta`` table (key ``sample_design``): no schema change, and a study
without the key grades every answer, as before.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from owleval.errors import OwlEvalError
from owleval.questions import Question

Slot = tuple[str, int]  # (model_id, question_id)
META_KEY = "sample_design"
TURN_TYPES = ("single", "first", "later")


def allocate(sizes: Mapping[str, int], k: int) -> dict[str, int]:
    """Proportional allocation of ``k`` draws over strata of ``sizes`` (largest remainder; ties: larger stratum,
    then the order of ``sizes``). Takes everything when ``k`` is at least the total."""
    total = sum(sizes.values())
    if k >= total:
        return dict(sizes)
    exact = {s: k * n / total for s, n in sizes.items()}
    out = {s: int(v) for s, v in exact.items()}
    order = sorted(sizes, key=lambda s: (-(exact[s] - out[s]), -sizes[s], list(sizes).index(s)))
    for s in order[: k - sum(out.values())]:
        out[s] += 1
    return out


def draw_sample(slots: Iterable[Slot], questions: Sequence[Question], k: int, seed: int) -> dict[str, Any]:
    """The sampling design for ``slots`` (each model's answers): per model, how many of each turn type it has,
    how many were drawn and which question ids."""
    if k < 1:
        raise OwlEvalError(f"--sample must be 1 or more, got {k}")
    turn = {q.question_id: q.turn_type for q in questions}
    by_model: dict[str, list[int]] = {}
    for model, qid in slots:
        by_model.setdefault(model, []).append(qid)
    design: dict[str, Any] = {
        "per_model": k,
        "seed": seed,
        "strata": "turn type (single / first / later)",
        "allocation": "proportional (largest remainder)",
        "models": {},
    }
    for model in sorted(by_model):
        design["models"][model] = draw_model(model, by_model[model], turn, k, seed)
    return design


def draw_model(model: str, qids: Iterable[int], turn: Mapping[int, str], k: int, seed: int) -> dict[str, Any]:
    """One model's stratified draw (its own seeded generator, so models do not influence each other)."""
    strata = {t: sorted(q for q in set(qids) if turn[q] == t) for t in TURN_TYPES}
    counts = allocate({t: len(v) for t, v in strata.items()}, k)
    rng = random.Random(f"sample:{seed}:{model}")
    drawn = {t: sorted(rng.sample(strata[t], counts[t])) for t in TURN_TYPES}
    return {
        "answers": {t: len(strata[t]) for t in TURN_TYPES},
        "drawn": counts,
        "question_ids": sorted(q for t in TURN_TYPES for q in drawn[t]),
    }


def sampled_slots(design: Mapping[str, Any]) -> set[Slot]:
    return {(model, int(q)) for model, part in design["models"].items() for q in part["question_ids"]}


def read_design(meta: Mapping[str, str]) -> dict[str, Any] | None:
    """The study's sampling design, or None when people grade every answer."""
    text = meta.get(META_KEY)
    return json.loads(text) if text else None


def describe(design: Mapping[str, Any] | None) -> str:
    """One sentence on how the graded answers were chosen."""
    if design is None:
        return "every answer of every model was queued for grading (no --sample)"
    short = [m for m, part in design["models"].items() if len(part["question_ids"]) < design["per_model"]]
    text = (
        f"a uniform random sample of {design['per_model']} answers per model, stratified by {design['strata']} with "
        f"{design['allocation']} allocation, seed {design['seed']}"
    )
    if short:
        text += f"; {', '.join(short)} had fewer answers and all were taken"
    return text


def model_lines(design: Mapping[str, Any]) -> list[str]:
    """Per model: drawn / available per turn type."""
    lines = []
    for model, part in design["models"].items():
        cells = ", ".join(f"{t} {part['drawn'][t]}/{part['answers'][t]}" for t in TURN_TYPES)
        lines.append(f"{model}: {len(part['question_ids'])} drawn ({cells})")
    return lines


def study_design(db_path: Path) -> dict[str, Any] | None:
    """The sampling design stored in a study file (None when it has none)."""
    from owleval.grading.store import Store

    store = Store(Path(db_path))
    try:
        return read_design(store.meta())
    finally:
        store.close()
