"""Synthetic pairwise votes for the arena tests: models of known Bradley-Terry strength, people who vote by it,
a judge who agrees with the people's underlying preference most of the time."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from owleval.records.votes import VOTE_COLUMNS


def _vote(rng: np.random.Generator, strength_a: float, strength_b: float, tie: float) -> str:
    if rng.random() < tie:
        return "tie" if rng.random() < 0.7 else "both_bad"
    return "model_a" if rng.random() < 1.0 / (1.0 + np.exp(strength_b - strength_a)) else "model_b"


def synthetic_votes(
    qids: Sequence[int], strengths: dict[str, float], annotators: Sequence[str], *, seed: int = 0, tie: float = 0.15,
    pairs_per_question: int | None = None,
) -> pd.DataFrame:  # fmt: skip
    """votes.csv rows: every annotator votes on every pair of models (or a random ``pairs_per_question``) per question."""
    rng = np.random.default_rng(seed)
    models = sorted(strengths)
    all_pairs = [(a, b) for i, a in enumerate(models) for b in models[i + 1 :]]
    rows = []
    for q in qids:
        pairs = all_pairs
        if pairs_per_question is not None:
            pairs = [all_pairs[k] for k in rng.choice(len(all_pairs), size=min(pairs_per_question, len(all_pairs)), replace=False)]
        for a, b in pairs:
            for who in annotators:
                winner = _vote(rng, strengths[a], strengths[b], tie)
                left = a if rng.random() < 0.5 else b
                rows.append((who, int(q), a, b, left, winner, "", "2026-01-01T00:00:00Z"))
    return pd.DataFrame(rows, columns=list(VOTE_COLUMNS))


def judge_votes_from(truth: pd.DataFrame, *, accuracy: float, seed: int = 0, checkpoint: str = "judge-x") -> pd.DataFrame:
    """One judge vote per (question, pair) in ``truth`` (its first annotator's vote): that vote with probability
    ``accuracy``, else another token."""
    rng = np.random.default_rng(seed)
    first = truth.drop_duplicates(["question_id", "model_a", "model_b"]).copy()
    tokens = np.array(["model_a", "model_b", "tie"])
    keep = rng.random(len(first)) < accuracy
    other = np.array([rng.choice(tokens[tokens != w]) if w in tokens else "tie" for w in first["winner"]])
    first["winner"] = np.where(keep, first["winner"], other)
    first["annotator"] = f"judge:{checkpoint}"
    return first.reset_index(drop=True)


def write_votes(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n")
    return path
