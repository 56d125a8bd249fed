"""Which (question, model A, model B) pairs are compared, by people and by the pairwise judge.

One module for both, so that a study and a judge run given the same flags and seed select the same pairs, and a
study's ``--sample`` draws a uniform random subset of the judged pairs (stratified by turn type), as
prediction-powered inference needs.

- ``all``: every pair of models that both answered a question, on every question;
- ``against``: each model against one baseline (as WildVision-Bench);
- ``per_question``: K model pairs per question, chosen so every model pair comes up about equally often (each
  question takes the least used pairs so far, ties broken at random; questions are walked in a seeded order).

``model_a`` sorts before ``model_b`` in every pair. Which side a person sees each answer on is drawn separately
(:func:`left_model`), per annotator and item.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from owleval.errors import OwlEvalError
from owleval.study.sample import TURN_TYPES, allocate
from owleval.questions import Question

PairItem = tuple[int, str, str]  # (question_id, model_a, model_b), model_a < model_b
MODES = ("all", "against", "per_question")
META_KEY = "pairwise_design"


@dataclass(frozen=True)
class PairDesign:
    """How the pairs were chosen (stored with a study and in a pairwise judge's meta.json)."""

    mode: str = "all"
    against: str | None = None
    per_question: int | None = None
    sample: int | None = None  # items drawn per model pair (people vote on a random subset); None: all
    seed: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PairDesign:
        return cls(**json.loads(text))

    def describe(self) -> str:
        what = {
            "all": "every pair of models on every question",
            "against": f"each model against {self.against}",
            "per_question": f"{self.per_question} model pairs per question, balanced over the model pairs",
        }[self.mode]
        if self.sample is not None:
            what += f"; a uniform random sample of {self.sample} items per model pair, stratified by turn type"
        return f"{what} (seed {self.seed})"


def design_from_flags(pairs: str | None, against: str | None, per_question: int | None, sample: int | None, seed: int) -> PairDesign:
    """The design named by ``--pairs all`` / ``--against MODEL`` / ``--pairs-per-question K`` (one of them; all
    pairs when none is given) and ``--sample K``."""
    given = [flag for flag, value in (("--pairs", pairs), ("--against", against), ("--pairs-per-question", per_question)) if value is not None]
    if len(given) > 1:
        raise OwlEvalError(f"choose one of --pairs all, --against MODEL, --pairs-per-question K (got {' and '.join(given)})")
    if pairs is not None and pairs != "all":
        raise OwlEvalError(f"--pairs takes 'all' (or use --against MODEL / --pairs-per-question K), got {pairs!r}")
    if per_question is not None and per_question < 1:
        raise OwlEvalError(f"--pairs-per-question must be 1 or more, got {per_question}")
    if sample is not None and sample < 1:
        raise OwlEvalError(f"--sample must be 1 or more, got {sample}")
    mode = "against" if against is not None else "per_question" if per_question is not None else "all"
    return PairDesign(mode, against, per_question, sample, seed)


def model_pairs(models: Iterable[str], design: PairDesign) -> list[tuple[str, str]]:
    """The model pairs the design can compare, each sorted."""
    names = sorted(set(models))
    if len(names) < 2:
        raise OwlEvalError(f"a pairwise comparison needs answers of at least two models, got {', '.join(names) or 'none'}")
    if design.mode == "against":
        if design.against not in names:
            raise OwlEvalError(f"--against {design.against}: no answers of that model (models: {', '.join(names)})")
        return [tuple(sorted((design.against, m))) for m in names if m != design.against]  # type: ignore[misc]
    return list(itertools.combinations(names, 2))


def select_pairs(answered: Mapping[str, Iterable[int]], questions: Sequence[Question], design: PairDesign) -> list[PairItem]:
    """The compared items, sorted: ``answered`` maps each model to the question ids it has an answer for."""
    have = {m: set(q) for m, q in answered.items()}
    candidates = model_pairs(have, design)
    qids = sorted({q.question_id for q in questions})
    items: list[PairItem] = []
    if design.mode in ("all", "against"):
        items = [(q, a, b) for q in qids for a, b in candidates if q in have[a] and q in have[b]]
    else:
        k = int(design.per_question or 0)
        rng = random.Random(f"pairs:{design.seed}")
        used = {p: 0 for p in candidates}
        order = list(qids)
        rng.shuffle(order)
        for q in order:
            able = [p for p in candidates if q in have[p[0]] and q in have[p[1]]]
            rng.shuffle(able)
            able.sort(key=lambda p: used[p])  # stable: least used first, random among equals
            for a, b in able[:k]:
                used[(a, b)] += 1
                items.append((q, a, b))
    if design.sample is not None:
        items = sample_items(items, questions, design.sample, design.seed)
    return sorted(items)


def sample_items(items: Iterable[PairItem], questions: Sequence[Question], k: int, seed: int) -> list[PairItem]:
    """K items per model pair, uniformly within turn-type strata (proportional allocation), seeded per pair."""
    turn = {q.question_id: q.turn_type for q in questions}
    by_pair: dict[tuple[str, str], list[int]] = {}
    for q, a, b in items:
        by_pair.setdefault((a, b), []).append(q)
    drawn: list[PairItem] = []
    for (a, b), qids in sorted(by_pair.items()):
        strata = {t: sorted(q for q in qids if turn[q] == t) for t in TURN_TYPES}
        counts = allocate({t: len(v) for t, v in strata.items()}, k)
        rng = random.Random(f"pair-sample:{seed}:{a}:{b}")
        drawn += [(q, a, b) for t in TURN_TYPES for q in rng.sample(strata[t], counts[t])]
    return sorted(drawn)


def left_model(item: PairItem, annotator: str, seed: int) -> str:
    """Which model's answer an annotator sees on the left for ``item``: a fair coin, seeded by the study seed, the
    annotator and the item (reproducible; independent across annotators and items)."""
    q, a, b = item
    return a if random.Random(f"side:{seed}:{annotator}:{q}:{a}:{b}").random() < 0.5 else b


def design_summary(items: Sequence[PairItem]) -> dict[str, Any]:
    """Items per model pair (for meta.json and ``study status``)."""
    counts: dict[str, int] = {}
    for _, a, b in items:
        counts[f"{a} vs {b}"] = counts.get(f"{a} vs {b}", 0) + 1
    return {"items": len(items), "per_model_pair": dict(sorted(counts.items()))}
