"""Grade a random sample: which answers people grade when they grade only K per model (``study create --sample``).

Prediction-powered scores (``owleval report --judge``) are valid when the human-graded answers are a uniform
random sample of each model's answers. The sample is stratified by turn type (single / first / later) with
proportional allocation, so a small sample still covers dialogues as the full set does; inside each stratum the
answers are drawn uniformly, seeded by the study seed and the model name (reproducible, and a model added later
does not change the others' samples). A later turn can be drawn without its dialogue's first turn: the grading
screen always shows the earlier turns as history.

``--design active --judgements DIR`` (active sampling, Zrnic & Candes, ICML 2024) draws instead with inclusion
probabilities that grow with the judge's uncertainty on each answer: u_i = sqrt(p_i (1 - p_i)), the standard
deviation of the judge's acceptable / not-acceptable verdict, p_i its ``p_acceptable`` (an answer the judge could not
grade has u = 0.5, the most uncertain; a hard letter has p = 0 or 1, so u = 0 and a judge with hard grades only gives
the uniform rate). In stratum h (N_h answers, k_h of the K allocated to it as above)

    pi_i = k_h * (FLOOR_SHARE / N_h + (1 - FLOOR_SHARE) * u_i / sum_h u),

capped at 1 (the excess shared over the others in proportion), so every answer has pi_i >= FLOOR_SHARE * k_h / N_h.
It is Poisson sampling: each answer is drawn independently with probability pi_i, so the sample size varies
around K (expected K, variance sum pi_i (1 - pi_i)). The report's matching estimator and its variance formula are in
:mod:`owleval.report.estimands`. The probabilities are stored with the design (``probabilities``: question id ->
pi_i, for every answer of the model, drawn or not).

The design is stored as JSON in the study's ``meta`` table (key ``sample_design``): no schema change, and a study
without the key grades every answer, as before. A design without a ``design`` key is uniform (studies made before
active sampling).
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
DESIGNS = ("uniform", "active")
#: share of each stratum's expected draws spread uniformly: the floor of pi_i is FLOOR_SHARE * k_h / N_h
FLOOR_SHARE = 0.5
#: the judge's uncertainty on an answer it could not grade (the largest sqrt(p (1 - p)))
UNGRADED_UNCERTAINTY = 0.5
UNCERTAINTY_RULE = (
    "u = sqrt(p_acceptable * (1 - p_acceptable)), the sd of the judge's acceptable verdict (0 for a hard letter, 0.5 where "
    "the judge could not grade the answer)"
)


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


def draw_sample(
    slots: Iterable[Slot],
    questions: Sequence[Question],
    k: int,
    seed: int,
    *,
    uncertainty: Mapping[str, Mapping[int, float]] | None = None,
    judgements: str | None = None,
) -> dict[str, Any]:
    """The sampling design for ``slots`` (each model's answers): per model, how many of each turn type it has,
    how many were drawn and which question ids.

    ``uncertainty`` (model -> question id -> u_i, see :func:`judge_uncertainty`) makes it the active design;
    ``judgements`` names where the judge's grades came from (recorded)."""
    if k < 1:
        raise OwlEvalError(f"--sample must be 1 or more, got {k}")
    turn = {q.question_id: q.turn_type for q in questions}
    by_model: dict[str, list[int]] = {}
    for model, qid in slots:
        by_model.setdefault(model, []).append(qid)
    design: dict[str, Any] = {
        "design": "uniform" if uncertainty is None else "active",
        "per_model": k,
        "seed": seed,
        "strata": "turn type (single / first / later)",
        "allocation": "proportional (largest remainder)",
        "models": {},
    }
    if uncertainty is not None:
        design.update(sampling="Poisson (each answer drawn independently; size varies around K)", floor_share=FLOOR_SHARE,
                      uncertainty=UNCERTAINTY_RULE, judgements=judgements)
    for model in sorted(by_model):
        if uncertainty is None:
            design["models"][model] = draw_model(model, by_model[model], turn, k, seed)
        else:
            design["models"][model] = draw_model_active(model, by_model[model], turn, k, seed, uncertainty.get(model, {}))
    return design


def inclusion_probabilities(u: Sequence[float], k: float) -> list[float]:
    """pi_i = k (FLOOR_SHARE / N + (1 - FLOOR_SHARE) u_i / sum u) for one stratum, capped at 1 with the excess
    shared over the uncapped answers in proportion to their pi; sum pi = min(k, N)."""
    n = len(u)
    if n == 0:
        return []
    if k >= n:
        return [1.0] * n
    total = float(sum(u))
    base = [FLOOR_SHARE / n + (1.0 - FLOOR_SHARE) * (ui / total if total > 0 else 1.0 / n) for ui in u]
    pi = [k * b for b in base]
    while any(p > 1.0 + 1e-12 for p in pi):
        capped = [p >= 1.0 for p in pi]
        left = k - sum(capped)
        free = sum(p for p, c in zip(pi, capped, strict=True) if not c)
        pi = [1.0 if c else p * left / free for p, c in zip(pi, capped, strict=True)]
    return [min(p, 1.0) for p in pi]


def draw_model_active(
    model: str, qids: Iterable[int], turn: Mapping[int, str], k: int, seed: int, u: Mapping[int, float]
) -> dict[str, Any]:
    """One model's Poisson draw with judge-uncertainty probabilities inside each turn-type stratum."""
    strata = {t: sorted(q for q in set(qids) if turn[q] == t) for t in TURN_TYPES}
    counts = allocate({t: len(v) for t, v in strata.items()}, k)
    rng = random.Random(f"sample:active:{seed}:{model}")
    probabilities: dict[str, float] = {}
    drawn: dict[str, list[int]] = {}
    for t in TURN_TYPES:
        pis = inclusion_probabilities([float(u.get(q, UNGRADED_UNCERTAINTY)) for q in strata[t]], counts[t])
        drawn[t] = [q for q, p in zip(strata[t], pis, strict=True) if rng.random() < p]
        probabilities.update({str(q): p for q, p in zip(strata[t], pis, strict=True)})
    return {
        "answers": {t: len(strata[t]) for t in TURN_TYPES},
        "expected": counts,
        "drawn": {t: len(drawn[t]) for t in TURN_TYPES},
        "question_ids": sorted(q for t in TURN_TYPES for q in drawn[t]),
        "probabilities": probabilities,
    }


def judge_uncertainty(judge_grades: Any) -> dict[str, dict[int, float]]:
    """model -> question id -> u_i from a judge's grades (the frame of :func:`owleval.report.judge.read_judge`):
    sqrt(p (1 - p)) with p its ``p_acceptable``, or the letter (p = 0 or 1) where that is empty."""
    import math

    from owleval.records.grades import ACCEPTABLE_MIN_SCORE

    out: dict[str, dict[int, float]] = {}
    soft = judge_grades["p_acceptable"] if "p_acceptable" in judge_grades.columns else None
    for i, (model, qid, score) in enumerate(zip(judge_grades["model_id"], judge_grades["question_id"], judge_grades["score"], strict=True)):
        p = float(soft.iloc[i]) if soft is not None and not math.isnan(float(soft.iloc[i])) else float(score >= ACCEPTABLE_MIN_SCORE)
        out.setdefault(str(model), {})[int(qid)] = math.sqrt(p * (1.0 - p))
    return out


def design_kind(design: Mapping[str, Any] | None) -> str:
    """"all", "uniform" or "active"."""
    if design is None:
        return "all"
    return str(design.get("design", "uniform"))


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
    if design_kind(design) == "active":
        return (
            f"an active sample (Poisson, expected {design['per_model']} answers per model; inclusion probabilities grow with "
            f"the judge's uncertainty, {design['uncertainty']}; floored at {design['floor_share']:g} x the uniform rate), "
            f"stratified by {design['strata']} with {design['allocation']} allocation of the expected draws, seed {design['seed']}, "
            f"judge grades from {design['judgements']}"
        )
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
        if "expected" in part:
            cells += f"; expected {sum(part['expected'].values())}"
        lines.append(f"{model}: {len(part['question_ids'])} drawn ({cells})")
    return lines


def study_design(db_path: Path) -> dict[str, Any] | None:
    """The sampling design stored in a study file (None when it has none)."""
    from owleval.study.store import Store

    store = Store(Path(db_path))
    try:
        return read_design(store.meta())
    finally:
        store.close()


SAMPLE_COLUMNS = ("model_id", "question_id", "stratum", "inclusion_probability")


def sample_rows(design: Mapping[str, Any], questions: Sequence[Question]) -> list[tuple[str, int, str, float]]:
    """The drawn answers, one row each (see :data:`SAMPLE_COLUMNS`), by model then question id.

    ``stratum`` is the answer's turn type; ``inclusion_probability`` its pi_i: the stored probability of the active
    design, or k_h / N_h (drawn over available in its stratum) for the uniform one.
    """
    turn = {q.question_id: q.turn_type for q in questions}
    rows = []
    for model in sorted(design["models"]):
        part = design["models"][model]
        stored = part.get("probabilities")
        for qid in sorted(int(q) for q in part["question_ids"]):
            stratum = turn[qid]
            if stored is not None:
                pi = float(stored[str(qid)])
            else:
                pi = part["drawn"][stratum] / part["answers"][stratum]
            rows.append((model, qid, stratum, pi))
    return rows
