"""Intervals that stay honest at small n: Wilson for shares, "too few" for means, bounds on the scale."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from owleval.questions import load_questions
from owleval.report.combine import combine_grades
from owleval.stats import clustered_wilson, wilson_interval
from owleval.report.tables import TOO_FEW, build_score_tables

from tests.report_helpers import data_dir


@pytest.fixture(scope="module")
def questions():
    return load_questions(data_dir())


def test_wilson_equals_scipy_and_is_never_zero_width():
    for k, n in [(0, 7), (7, 7), (1, 1), (3, 10), (41, 82)]:
        low, high = wilson_interval(np.array([k]), np.array([n]))
        ref = tuple(binomtest(k, n).proportion_ci(0.95, method="wilson"))
        assert (low[0], high[0]) == pytest.approx(ref, abs=1e-12)
        assert high[0] - low[0] > 0.05
    low, high = wilson_interval(np.array([0]), np.array([7]))
    assert low[0] == 0.0 and high[0] == pytest.approx(0.354, abs=0.001)  # 0 of 7 -> about [0%, 35%]


def test_clustered_wilson_widens_with_the_design_effect():
    rng = np.random.default_rng(0)
    share, n = np.array([0.5]), np.array([40.0])
    iid = rng.binomial(40, 0.5, size=(4000, 1)) / 40.0
    clustered = 0.5 + 2.0 * (iid - 0.5)  # four times the binomial variance
    plain = clustered_wilson(share, n, iid)
    wide = clustered_wilson(share, n, clustered)
    assert (plain[0][0], plain[1][0]) == pytest.approx(tuple(binomtest(20, 40).proportion_ci(0.95, method="wilson")), abs=0.01)
    # design effect 4: the Wilson interval of 5 in 10
    assert (wide[0][0], wide[1][0]) == pytest.approx(tuple(binomtest(5, 10).proportion_ci(0.95, method="wilson")), abs=0.02)
    assert clustered_wilson(share, n, np.empty((0, 1)))[0][0] != clustered_wilson(share, n, np.empty((0, 1)))[0][0]  # NaN


def _grades(rows):
    frame = pd.DataFrame(rows, columns=["model_id", "question_id", "grade"])
    frame["annotator"] = "u1"
    frame["score"] = frame["grade"].map({"A": 3, "B": 2, "C": 1, "D": 0})
    return frame


def test_degenerate_samples_get_wilson_and_too_few(questions):
    qids = [q.question_id for q in questions]
    rows = [("zero", q, "C") for q in qids[:7]] + [("one", qids[0], "A")] + [("mixed", q, "AD"[i % 2]) for i, q in enumerate(qids[:30])]
    table = build_score_tables(combine_grades(_grades(rows)), questions, n_boot=200, seed=0)["summary"].set_index("model")
    zero = table.loc["zero"]
    assert zero.acceptable == 0.0 and zero.acceptable_ci_low == 0.0 and 0.3 < zero.acceptable_ci_high < 0.45
    assert np.isnan(zero.mean_score_ci_low) and TOO_FEW in zero.note  # all one grade
    one = table.loc["one"]
    assert one.acceptable_ci_high == 1.0 and one.acceptable_ci_low < 0.25
    assert np.isnan(one.mean_score_ci_high) and "n=1" in one.note
    mixed = table.loc["mixed"]
    assert mixed.note == "" and mixed.mean_score_ci_low < 1.5 < mixed.mean_score_ci_high
    assert 0.0 <= mixed.acceptable_ci_low < 0.5 < mixed.acceptable_ci_high <= 1.0


def _invoke(*args: str, columns: int = 80):
    from typer.testing import CliRunner

    from owleval.cli import app

    return CliRunner().invoke(app, ["report", "--data", str(data_dir()), *args], env={"COLUMNS": str(columns)})


def test_terminal_csv_and_html_show_the_same_bounds_and_whole_names(questions, tmp_path):
    from tests.report_helpers import synthetic_grades, synthetic_judge, write_grades_csv, write_judge_folder

    from owleval.report.render_format import pct

    long_name = "mplug-owl-llama-7b-instruction-tuned-v2"
    humans = synthetic_grades(questions, ["base-model", long_name], ["u1"], seed=4)
    judge, _ = synthetic_judge(humans, seed=4)
    few = humans[humans.question_id.isin(sorted(humans.question_id.unique())[:12])]
    csv = write_grades_csv(few, tmp_path / "g.csv")
    folder = write_judge_folder(tmp_path / "judge", judge)
    out = tmp_path / "r"
    result = _invoke("--grades", str(csv), "--judge", str(folder), "--out", str(out), "--bootstrap", "200", columns=160)
    assert result.exit_code == 0, result.output
    assert long_name in result.output  # whole
    narrow = _invoke("--grades", str(csv), "--judge", str(folder), "--out", str(tmp_path / "n"), "--bootstrap", "200", columns=80)
    assert narrow.exit_code == 0 and "…" not in narrow.output  # folded onto more lines, never cut
    scores = pd.read_csv(out / "scores.csv")
    ppi = pd.read_csv(out / "ppi.csv")
    html = (out / "report.html").read_text()
    terminal = " ".join(result.output.split())
    for table in (scores, ppi):
        for r in table.itertuples():
            low, high = SCALE[r.metric]
            assert low <= r.ci_low <= r.estimate <= r.ci_high <= high  # built inside the scale, no clipping on show
    summary = pd.read_csv(out / "summary.csv").set_index("model")
    for r in ppi.itertuples():  # the same quantity in two tables: the same numbers
        expected = summary.loc[r.model, [r.metric, f"{r.metric}_ci_low", f"{r.metric}_ci_high"]].to_numpy(dtype=float)
        assert [r.human_only_estimate, r.human_only_ci_low, r.human_only_ci_high] == pytest.approx(expected, rel=1e-12)
    for r in scores[scores.metric == "acceptable"].itertuples():
        shown = f"{pct(r.estimate)} [{pct(r.ci_low)}, {pct(r.ci_high)}]"
        assert shown in html
        assert f"[{pct(r.ci_low)}," in terminal and f"{pct(r.ci_high)}]" in terminal  # a narrow terminal wraps inside the cell


SCALE = {"mean_score": (0.0, 3.0), "acceptable": (0.0, 1.0)}


def test_headline_equals_the_summary_table_when_every_answer_is_graded(questions, tmp_path):
    from tests.report_helpers import synthetic_grades, synthetic_judge, write_grades_csv, write_judge_folder

    humans = synthetic_grades(questions, ["m1", "m2"], ["u1"], seed=5)
    judge, _ = synthetic_judge(humans, seed=5)
    out = tmp_path / "r"
    result = _invoke("--grades", str(write_grades_csv(humans, tmp_path / "g.csv")), "--judge", str(write_judge_folder(tmp_path / "j", judge)),
                     "--out", str(out), "--bootstrap", "300", "--format", "csv")  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(out / "summary.csv").set_index("model")
    ppi = pd.read_csv(out / "ppi.csv").set_index(["model", "metric"])
    scores = pd.read_csv(out / "scores.csv").set_index(["model", "metric"])
    for model in ("m1", "m2"):
        for metric in ("mean_score", "acceptable"):
            row = ppi.loc[(model, metric)]
            expected = summary.loc[model, [metric, f"{metric}_ci_low", f"{metric}_ci_high"]].to_numpy(dtype=float)
            assert [row.estimate, row.ci_low, row.ci_high] == pytest.approx(expected, rel=1e-12)
            assert [row.human_only_estimate, row.human_only_ci_low, row.human_only_ci_high] == pytest.approx(expected, rel=1e-12)
            assert row.sample_ci_low == row.sample_ci_high == pytest.approx(row.estimate) and "all graded" in row.note
            assert scores.loc[(model, metric), "source"] == "ppi" and scores.loc[(model, metric), "ci_low"] == pytest.approx(row.ci_low)
