"""`owleval report` with several --judge folders (their mean as one predictor), N from --answers, and the ppi_py
columns where ppi_py gives NaN -- end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from owleval.cli import app
from owleval.questions import load_questions

from tests.judge_helpers import write_answer_sets
from tests.report_helpers import data_dir, sample_per_model, synthetic_grades, synthetic_judge, write_grades_csv, write_judge_folder

runner = CliRunner()
MODELS = ["m-low", "m-high"]
SCORE = {"A": 3, "B": 2, "C": 1, "D": 0}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("multijudge")
    questions = load_questions(data_dir())
    full = synthetic_grades(questions, MODELS, ["ann", "bob"], seed=3)
    first, _ = synthetic_judge(full, checkpoint="judge-a", seed=1)
    second, unparsed = synthetic_judge(full, checkpoint="judge-b", seed=2, unparsed=1)
    silent = first[first.question_id > 4]  # four answers per model without a grade, listed nowhere
    silent_dir = root / "silent"
    silent_dir.mkdir()
    silent.to_csv(silent_dir / "grades.csv", index=False, lineterminator="\n")
    write_answer_sets(root / "answers", questions, {m: (lambda qid: "x") for m in MODELS})
    return {
        "humans": write_grades_csv(sample_per_model(full, 20, seed=4), root / "humans.csv"),
        "a": write_judge_folder(root / "judge-a", first),
        "b": write_judge_folder(root / "judge-b", second, unparsed),
        "silent": silent_dir,
        "answers": root / "answers",
        "root": root,
    }


def invoke(*args: str):
    return runner.invoke(app, ["report", "--data", str(data_dir()), "--format", "csv", "--bootstrap", "50", *args])


def test_two_judges_are_combined_and_each_reported(inputs, tmp_path):
    out = tmp_path / "r"
    result = invoke("--grades", str(inputs["humans"]), "--judge", str(inputs["a"]), "--judge", str(inputs["b"]), "--out", str(out),
                    "--format", "csv,md")  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "2 judges (judge-a, judge-b), combined (mean:" in (out / "report.md").read_text()
    agreement = pd.read_csv(out / "judge_agreement.csv")
    assert list(agreement.columns[:2]) == ["judge", "model"] and set(agreement.judge) == {"judge-a", "judge-b", "combined"}
    confusion = pd.read_csv(out / "judge_confusion.csv")
    assert set(confusion.judge) == {"judge-a", "judge-b", "combined"}
    meta = json.loads((out / "report_meta.json").read_text())
    assert meta["judge_combination"].startswith("mean:") and [j["name"] for j in meta["judge"]["judges"]] == ["judge-a", "judge-b"]
    # the PPI judge value of an answer is the two judges' mean (judge-b's unparsed answer: judge-a's alone)
    a, b = (pd.read_csv(inputs[k] / "grades.csv").assign(s=lambda f: f.grade.map(SCORE)) for k in ("a", "b"))
    both = a.merge(b, on=["model_id", "question_id"], how="left", suffixes=("_a", "_b"))
    both["mean"] = both[["s_a", "s_b"]].mean(axis=1)
    ppi = pd.read_csv(out / "ppi.csv").set_index(["model", "metric"])
    for model in MODELS:
        row = ppi.loc[(model, "mean_score")]
        assert row.judge_only_estimate == pytest.approx(both[both.model_id == model]["mean"].mean())
        assert row.n_answers == 82 and row.n_judge == 82
    one = tmp_path / "one"
    assert invoke("--grades", str(inputs["humans"]), "--judge", str(inputs["a"]), "--out", str(one)).exit_code == 0
    single = pd.read_csv(one / "ppi.csv").set_index(["model", "metric"])
    assert not np.allclose(single.judge_only_estimate, ppi.judge_only_estimate)  # the combination is not judge-a alone


def test_two_judges_of_one_folder_name_are_refused(inputs, tmp_path):
    twin = tmp_path / "x" / "judge-a"
    twin.mkdir(parents=True)
    (twin / "grades.csv").write_text((inputs["a"] / "grades.csv").read_text())
    result = invoke("--grades", str(inputs["humans"]), "--judge", str(inputs["a"]), "--judge", str(twin), "--out", str(tmp_path / "r"))
    assert result.exit_code == 1 and "both named 'judge-a'" in " ".join(result.output.split())
    assert not (tmp_path / "r").exists()


def test_n_comes_from_the_answers(inputs, tmp_path):
    without, given = tmp_path / "without", tmp_path / "given"
    assert invoke("--grades", str(inputs["humans"]), "--judge", str(inputs["silent"]), "--out", str(without)).exit_code == 0
    result = invoke("--grades", str(inputs["humans"]), "--judge", str(inputs["silent"]), "--answers", str(inputs["answers"]), "--out", str(given))
    assert result.exit_code == 0, result.output
    humans = pd.read_csv(inputs["humans"]).drop_duplicates(["model_id", "question_id"])
    for folder, answers_given in ((without, False), (given, True)):
        ppi = pd.read_csv(folder / "ppi.csv")
        for row in ppi.itertuples():
            mine = humans[humans.model_id == row.model]
            missed_graded = int((mine.question_id <= 4).sum())  # human-graded, no judge grade: the stand-in, counted
            assert row.n_stand_in == missed_graded
            if answers_given:
                assert row.n_answers == 82 and "N = " not in str(row.note)
            else:
                assert row.n_answers == 78 + missed_graded and "give --answers to count every answer" in row.note
    meta = json.loads((given / "report_meta.json").read_text())
    assert meta["judge"]["n_rule"].startswith("N = every answer in --answers")
