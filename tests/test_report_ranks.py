"""Ranks people can read, and a PPI ranking only of models people anchored (issue 24, items 3, 6 and 9)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from owleval.questions import load_questions
from owleval.report.arena import MIN_PPI_HUMAN_VOTES, build_arena
from owleval.report.ranks import rank_intervals, resample_ranks
from owleval.report.tables import question_info
from owleval.records.votes import OUTCOME_SCORE
from tests.report_helpers import data_dir
from tests.vote_helpers import judge_votes_from, synthetic_votes


def test_separated_models_have_one_rank_each_and_equal_ones_share_the_range() -> None:
    rng = np.random.default_rng(0)
    apart = np.column_stack([rng.normal(3.0, 0.1, 500), rng.normal(2.0, 0.1, 500), rng.normal(1.0, 0.1, 500)])
    low, high = rank_intervals(apart, np.array([True, True, True]))
    assert low.tolist() == [1, 2, 3] and high.tolist() == [1, 2, 3]
    alike = np.column_stack([rng.normal(1.0, 0.5, 2000), rng.normal(1.0, 0.5, 2000), rng.normal(-5.0, 0.1, 2000)])
    low, high = rank_intervals(alike, np.array([True, True, True]))
    assert low.tolist() == [1, 1, 3] and high.tolist() == [2, 2, 3]


def test_an_unranked_model_neither_gets_a_rank_interval_nor_pushes_others_down() -> None:
    draws = np.array([[1.0, 5.0, 0.5], [2.0, 5.0, 1.5], [1.5, np.nan, 0.1]])
    ranks = resample_ranks(draws, np.array([True, False, True]))
    assert np.isnan(ranks[:, 1]).all()
    assert ranks[:, 0].tolist() == [1, 1, 1] and ranks[:, 2].tolist() == [2, 2, 2]
    low, high = rank_intervals(draws, np.array([True, False, True]))
    assert np.isnan(low[1]) and np.isnan(high[1])


@pytest.fixture(scope="module")
def info() -> pd.DataFrame:
    return question_info(load_questions(data_dir()))


def _votes(info: pd.DataFrame, strengths: dict[str, float], seed: int) -> pd.DataFrame:
    votes = synthetic_votes(info.index.tolist(), strengths, ["ann"], seed=seed, tie=0.1)
    votes["outcome"] = votes["winner"].map(OUTCOME_SCORE)
    return votes


def test_a_model_no_person_voted_on_gets_no_ppi_strength_interval_or_rank(info: pd.DataFrame) -> None:
    """The audit's case: the judge alone put an unvoted model first with a tight interval (coverage 0.005)."""
    strengths = {"m1": 0.0, "m2": 0.5, "m3": 1.0, "ghost": 1.0}
    truth = _votes(info, strengths, seed=5)
    judge = judge_votes_from(truth, accuracy=0.9, seed=6)
    judge["outcome"] = judge["winner"].map(OUTCOME_SCORE)
    involves_ghost = (truth["model_a"] == "ghost") | (truth["model_b"] == "ghost")
    rng = np.random.default_rng(7)
    human = truth[~involves_ghost & (rng.random(len(truth)) < 0.4)].reset_index(drop=True)
    result = build_arena(human, judge, info, n_boot=200, seed=0)
    arena = result.tables["arena"]
    ppi = arena[arena["source"] == "ppi"].set_index("model")
    ghost = ppi.loc["ghost"]
    assert ghost[["strength", "ci_low", "ci_high", "ref_coef", "ref_ci_low", "ref_ci_high"]].isna().all()
    assert pd.isna(ghost["rank"]) and pd.isna(ghost["rank_low"]) and pd.isna(ghost["rank_high"])
    assert ghost["n_human_votes"] == 0 and f"fewer than {MIN_PPI_HUMAN_VOTES} human votes" in ghost["note"]
    anchored = ppi.drop(index="ghost")
    assert anchored["strength"].notna().all() and (anchored["n_human_votes"] >= MIN_PPI_HUMAN_VOTES).all()
    assert anchored["rank"].notna().all() and (anchored["rank_low"] <= anchored["rank_high"]).all()
    assert result.meta["ppi"]["unanchored"] == ["ghost"]
    # counts are integers on every row of every source: human rows count people's votes, judge rows the judge's
    assert arena["n_human_votes"].dtype == np.int64 and arena["n_judge_votes"].dtype == np.int64
    human_rows = arena[arena["source"] == "human"]
    assert (human_rows["n_judge_votes"] == 0).all() and (human_rows["n_human_votes"] > 0).all()


def test_a_fit_that_does_not_converge_blanks_every_number_and_says_why(info: pd.DataFrame) -> None:
    """A model that never loses, for people and judge alike: no finite maximum likelihood, so no numbers at all."""
    truth = _votes(info, {"m1": 0.0, "m2": 0.4, "m3": 0.8}, seed=11)
    qids = info.index.tolist()
    winner = pd.DataFrame({"annotator": "ann", "question_id": qids, "model_a": "m1", "model_b": "top", "left": "m1", "winner": "model_b",
                           "reason": "", "voted_at": ""})  # fmt: skip
    truth = pd.concat([truth, winner], ignore_index=True)
    truth["outcome"] = truth["winner"].map(OUTCOME_SCORE)
    judge = truth.assign(annotator="judge:j")
    human = truth[np.random.default_rng(3).random(len(truth)) < 0.5].reset_index(drop=True)
    result = build_arena(human, judge, info, n_boot=50, seed=0)
    ppi = result.tables["arena"].query("source == 'ppi'")
    assert len(ppi) == 4
    numbers = ["strength", "ci_low", "ci_high", "ref_coef", "ref_ci_low", "ref_ci_high"]
    assert ppi[numbers].isna().all().all() and ppi["rank"].isna().all()
    assert ppi["note"].str.contains("no finite estimate").all() and result.meta["ppi"]["converged"] is False
    assert np.isfinite(ppi[numbers].to_numpy(dtype=float)).sum() == 0  # nothing like the audit's +-1.2e15
