"""The vectorised statistics equal scipy on the explicitly expanded (resampled) data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau, rankdata, spearmanr

from owleval.report.correlation import correlation_table
from owleval.stats import holm, weighted_kendall_tau_b, weighted_midranks, weighted_spearman
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


def test_legacy_csv_is_read_once_and_checked(tmp_path):
    from owleval.errors import InputFileError
    from owleval.report.correlation import answer_rows, legacy_corpus, read_legacy_csv

    path = tmp_path / "legacy.csv"
    path.write_text(
        "model,scope,question_id,n,bleu_1,cider\n"
        "NA,corpus,,2,0.5,0.25\n"
        "NA,answer,1,2,0.4,0.2\n"
        "NA,answer,2,2,0.6,0.3\n"
        "empty,corpus,,0,,\n"
    )
    frame = read_legacy_csv(path)
    answers = answer_rows(frame)
    assert answers.columns.tolist() == ["model_id", "question_id", "bleu_1", "cider"]
    assert answers.model_id.tolist() == ["NA", "NA"] and answers.question_id.tolist() == [1, 2]  # a name, not a missing value
    corpus = legacy_corpus(frame, ["NA", "empty"])
    assert corpus.model.tolist() == ["NA", "empty"] and corpus.cider.iloc[0] == 0.25 and np.isnan(corpus.cider.iloc[1])
    path.write_text(path.read_text().replace("NA,answer,2,2,0.6,0.3", "NA,answer,2,2,,0.3"))
    with pytest.raises(InputFileError, match=r"legacy.csv:4 \[bleu_1\]: error: empty; an answer row needs a number"):
        read_legacy_csv(path)
    path.write_text(path.read_text().replace("NA,answer,2,2,,0.3", "NA,answer,two,2,0.6,0.3"))
    with pytest.raises(InputFileError, match=r"legacy.csv:4 \[question_id\]: error: 'two' is not a number"):
        read_legacy_csv(path)


def test_correlation_without_bootstrap_has_no_intervals():
    from owleval.questions import load_questions

    from tests.report_helpers import data_dir

    questions = load_questions(data_dir())
    human = pd.DataFrame([("a", q.question_id, float(q.question_id % 4)) for q in questions], columns=["model_id", "question_id", "score"])
    legacy = human.rename(columns={"score": "rouge_l"}).assign(rouge_l=lambda f: f.rouge_l * 0.1 + 0.01 * f.question_id)
    row = correlation_table(legacy, human, question_info(questions), n_boot=0, seed=0).iloc[0]
    assert row.spearman == pytest.approx(spearmanr(legacy.rouge_l, human.score)[0])
    assert np.isnan(row.spearman_ci_low) and np.isnan(row.kendall_ci_high)
