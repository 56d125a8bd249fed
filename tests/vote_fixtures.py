"""A fixed small set of human and judge votes (3 models) and its PPI regression rows, shared by the tests that
compare the PPI ranking with ppi_py."""

from __future__ import annotations

import numpy as np
import pandas as pd

from owleval.report.arena import ppi_rows
from owleval.records.votes import OUTCOME_SCORE

from tests.vote_helpers import judge_votes_from, synthetic_votes

STRENGTHS = {"alpha": 0.0, "beta": 0.6, "gamma": 1.2}


def fixed_votes() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(human votes on ~40% of the pairs, judge votes on all of them), outcome column included."""
    truth = synthetic_votes(range(1, 61), STRENGTHS, ["ann"], seed=11, tie=0.2)
    judge = judge_votes_from(truth, accuracy=0.8, seed=12)
    human = truth[np.random.default_rng(13).random(len(truth)) < 0.4].reset_index(drop=True)
    for frame in (human, judge):
        frame["outcome"] = frame["winner"].map(OUTCOME_SCORE)
    return human, judge


def fixed_rows(reference: str = "alpha") -> dict[str, np.ndarray]:
    human, judge = fixed_votes()
    return ppi_rows(human, judge, sorted(STRENGTHS), reference)
