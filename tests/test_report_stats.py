"""The vectorised statistics equal scipy on the explicitly expanded (resampled) data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau, rankdata, spearmanr

from owleval.report.correlation import correlation_table
from owleval.report.stats import holm, weighted_kendall_tau_b, weighted_midranks, weighted_spearman
from owleval.report.tables import question_info


def test_weighted_rank_correlations_equal_scipy_on_expanded_samples():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, 40).astype(float)  # many ties, as grades have
    y = x + rng.normal(size=40).round(1)
    weights = rng.integers(0, 3, size=(6, 40)).astype(float)
    rho = weighted_spearman(x, y, weights)
    tau = weighted_kendall_tau_b(x, y, weights)
    for b, w in enumerate(weights):
        idx = np.repeat(np.arange(40), w.astype(int))
        assert weighted_midranks(x, w)[idx] == pytest.approx(rankdata(x[idx]))
        assert rho[b] == pytest.approx(spearmanr(x[idx], y[idx])[0], abs=1e-12)
        assert tau[b] == pytest.approx(kendalltau(x[idx], y[idx])[0], abs=1e-12)


def test_holm_adjustment():
    assert holm(np.array([0.01, 0.04, 0.03, 0.5])) == pytest.approx([0.04, 0.09, 0.09, 0.5])


def test_correlation_table_point_values_equal_scipy():
    from owleval.questions import load_questions

    from tests.report_helpers import data_dir

    questions = load_questions(data_dir())
    rng = np.random.default_rng(1)
    qids = [q.question_id for q in questions]
    human = pd.DataFrame([(m, q, float(rng.integers(0, 4))) for m in ("a", "b") for q in qids], columns=["model_id", "question_id", "score"])
    legacy = human.rename(columns={"score": "h"}).assign(bleu_4=lambda f: f.h + rng.normal(0, 1.5, len(f)), cider=lambda f: rng.random(len(f)))
    legacy = legacy.drop(columns="h")
    table = correlation_table(legacy, human, question_info(questions), n_boot=300, seed=0).set_index("metric")
    for metric in ("bleu_4", "cider"):
        rho, p = spearmanr(legacy[metric], human.score)
        assert table.loc[metric, "spearman"] == pytest.approx(rho)
        assert table.loc[metric, "spearman_p"] == pytest.approx(p)
        assert table.loc[metric, "kendall"] == pytest.approx(kendalltau(legacy[metric], human.score)[0])
        assert table.loc[metric, "n"] == 164
        assert table.loc[metric, "spearman_ci_low"] <= rho <= table.loc[metric, "spearman_ci_high"]
    assert table.loc["bleu_4", "spearman_ci_low"] > table.loc["cider", "spearman_ci_high"]  # signal vs noise
