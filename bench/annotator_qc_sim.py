"""A simulated OwlEval study with hired annotators, for bench_annotator_qc.py: 6 models x 82 answers, each answer
graded by 3 of 12 annotators, with gold, onboarding, attention-check and retest items and graded_at times.

Latent quality of answer i of model m: mu_m + u_image + e_i (u ~ N(0, 0.5^2) shared by one image's questions,
e ~ N(0, 0.8^2)); its true grade is clip(round(.), 0, 3), which is also its gold grade. Rater kinds:

  honest-0.4/0.6/0.8  the true grade plus N(0, sd^2) noise, rounded        reads at ~3.5 words/s + 5 s
  lenient / harsh     the same with a shift of +0.7 / -0.7 grade (sd 0.5)  (bias is not carelessness)
  random              a uniform grade, reads nothing (median 10 s)
  straight            one grade (B) for everything (median 8 s)
  speeder             2 s a grade, honest-looking grades with sd 1.0
  adversary           inverts the scale (3 - an honest grade, sd 0.5), honest timing, passes attention checks
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

LETTERS = np.array(["D", "C", "B", "A"])
HONEST_KINDS = ("honest-0.4", "honest-0.6", "honest-0.8", "lenient", "harsh")
BAD_KINDS = ("random", "straight", "speeder", "adversary")
MODEL_MU = np.linspace(0.6, 2.4, 6)
SPEC = {"honest-0.4": (0.0, 0.4), "honest-0.6": (0.0, 0.6), "honest-0.8": (0.0, 0.8), "lenient": (0.7, 0.5), "harsh": (-0.7, 0.5),
        "speeder": (0.0, 1.0), "adversary": (0.0, 0.5)}  # fmt: skip
GOLD_SHARE, ONBOARDING, CHECKS, RETESTS, OVERLAP = 0.1, 3, 4, 6, 3


@dataclass
class Study:
    grades: pd.DataFrame  # the grades export with item_kind and expected_grade
    kinds: dict[str, str]  # annotator -> rater kind
    answers: dict[str, dict[int, str]]
    truth: pd.DataFrame  # model_id, question_id, true score


def _grade(kind: str, true: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if kind == "random":
        return rng.integers(0, 4, size=true.size)
    if kind == "straight":
        return np.full(true.size, 2)
    shift, sd = SPEC[kind]
    g = np.clip(np.rint(true + shift + rng.normal(0, sd, size=true.size)), 0, 3).astype(int)
    return 3 - g if kind == "adversary" else g


def _seconds(kind: str, words: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if kind == "speeder":
        return np.full(words.size, 2.0) * rng.lognormal(0, 0.1, size=words.size)
    if kind in ("random", "straight"):
        return rng.lognormal(np.log(10.0 if kind == "random" else 8.0), 0.3, size=words.size)
    return (words / 3.5 + 5.0) * rng.lognormal(0, 0.3, size=words.size)


def _check_failed(kind: str, expected: int, rng: np.random.Generator) -> tuple[int, bool]:
    """(grade given, failed) on an attention check whose right grade is ``expected``."""
    if kind == "random":
        g = int(rng.integers(0, 4))
    elif kind == "straight":
        g = 2
    elif kind == "speeder":
        g = expected if rng.random() < 0.5 else int(rng.integers(0, 4))
    else:
        g = expected if rng.random() < 0.97 else int(rng.integers(0, 4))
    return g, g != expected


def population_means(n: int = 400_000, seed: int = 99) -> dict[str, np.ndarray]:
    """Per rater kind and model, the expected score over new questions (the "questions like these" target), and the
    true grade's mean ("truth")."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    latent = MODEL_MU[:, None] + rng.normal(0, 0.5, size=(MODEL_MU.size, n)) + rng.normal(0, 0.8, size=(MODEL_MU.size, n))
    true = np.clip(np.rint(latent), 0, 3)
    out["truth"] = true.mean(axis=1)
    for kind in HONEST_KINDS:
        out[kind] = np.array([_grade(kind, t, rng).mean() for t in true])
    return out


def simulate(kinds: Sequence[str], questions: Sequence, rng: np.random.Generator) -> Study:
    """One study with the given rater kinds (one annotator each)."""
    names = [f"r{i:02d}" for i in range(len(kinds))]
    qids = np.array([q.question_id for q in questions])
    images = np.array([q.image for q in questions])
    img_codes = pd.factorize(images)[0]
    rows, truth_rows, answers = [], [], {}
    per_rater: dict[str, list[tuple]] = {n: [] for n in names}
    for m, mu in enumerate(MODEL_MU):
        model = f"model-{m}"
        u = rng.normal(0, 0.5, size=img_codes.max() + 1)[img_codes]
        true = np.clip(np.rint(mu + u + rng.normal(0, 0.8, size=qids.size)), 0, 3).astype(int)
        words = np.maximum(5, rng.lognormal(np.log(70), 0.6, size=qids.size)).astype(int)
        answers[model] = {int(q): " ".join(["w"] * int(w)) for q, w in zip(qids, words, strict=True)}
        for q, t in zip(qids, true, strict=True):
            truth_rows.append((model, int(q), int(t)))
            for r in rng.choice(len(names), size=OVERLAP, replace=False):
                per_rater[names[r]].append((model, int(q), int(t), int(answers[model][int(q)].count("w"))))
    truth = pd.DataFrame(truth_rows, columns=["model_id", "question_id", "true"])
    gold_pool = truth.sample(frac=GOLD_SHARE, random_state=int(rng.integers(1 << 30)))
    for name, kind in zip(names, kinds, strict=True):
        items = [(m, q, t, w, "regular", "") for m, q, t, w in per_rater[name]]
        rng.shuffle(items)
        picks = gold_pool.sample(n=min(len(gold_pool), ONBOARDING + max(1, round(0.1 * len(items)))), random_state=int(rng.integers(1 << 30)))
        special = [(r.model_id, r.question_id, r.true, answers[r.model_id][r.question_id].count("w"), "onboarding" if k < ONBOARDING else "gold",
                    LETTERS[r.true]) for k, r in enumerate(picks.itertuples())]  # fmt: skip
        for q in rng.choice(qids, size=CHECKS, replace=False):
            expected = int(rng.integers(0, 4)) if rng.random() < 0.5 else 0  # instructed response, or nonsense (D)
            special.append(("owleval:check", int(q), expected, 30, "attention", LETTERS[expected]))
        for m, q, t, w, _, _ in (items[int(i)] for i in rng.choice(len(items), size=min(RETESTS, len(items)), replace=False)):
            special.append((m, q, t, w, "retest", ""))
        queue = special[:ONBOARDING] + items
        for item in special[ONBOARDING:]:
            lo = ONBOARDING + 5 if item[4] != "retest" else ONBOARDING + len(items) // 2
            queue.insert(int(rng.integers(lo, len(queue) + 1)), item)
        model_ids = [it[0] for it in queue]
        true = np.array([it[2] for it in queue])
        given = _grade(kind, true, rng)
        for j, it in enumerate(queue):
            if it[4] == "attention":
                given[j] = _check_failed(kind, it[2], rng)[0]
        seconds = _seconds(kind, np.array([it[3] for it in queue], dtype=float), rng)
        when = pd.Timestamp("2026-01-05T09:00:00Z") + pd.to_timedelta(np.cumsum(seconds), unit="s")
        for j, it in enumerate(queue):
            rows.append((name, model_ids[j], it[1], LETTERS[given[j]], "", when[j].isoformat(), it[4], it[5]))
    grades = pd.DataFrame(rows, columns=["annotator", "model_id", "question_id", "grade", "comment", "graded_at", "item_kind", "expected_grade"])
    return Study(grades, dict(zip(names, kinds, strict=True)), answers, truth)
