"""The whole flow as a user runs it, through the command line: install the data, import the published answers,
replay one set through `generate`, create a study, grade, export, report, and score with the legacy metrics."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from owleval.answers import PUBLISHED_MODELS
from owleval.cli import app
from owleval.grading.access import sign_in_with_token
from owleval.grading.queue import load_queue, record_grade
from owleval.grading.store import Store
from tests.conftest import SHARED_DATA

runner = CliRunner()
GRADE_BY_MODEL = {"llava-13b": "A", "mplug-owl-7b": "B", "minigpt4-13b": "B", "blip2-13b": "C", "openflamingo": "D", "mm-react": "D"}


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, f"owleval {' '.join(args)}\n{result.output}"
    return result.output


def test_from_data_to_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("OWLEVAL_DATA", str(data))
    _ok(["data", "fetch", "--from", str(SHARED_DATA)])
    _ok(["data", "verify"])
    answers = tmp_path / "answers"
    _ok(["answers", "import", "--published", "--out", str(answers)])
    replay = tmp_path / "replay" / "llava.jsonl"
    _ok(["generate", "--model", "answers-file", "--checkpoint", str(answers / "llava-13b.jsonl"), "--out", str(replay)])
    assert replay.read_text().count("\n") == 82

    db = tmp_path / "grades.sqlite"
    created = _ok(["study", "create", "--db", str(db), "--answers", str(answers), "--annotators", "ann,bob,cy", "--overlap", "2", "--seed", "3"])
    tokens = dict(re.findall(r"token for (\w+): (owl_\S+)", created))
    assert set(tokens) == {"ann", "bob", "cy"}
    store = Store(db)
    graded = 0
    for name, token in tokens.items():
        annotator = sign_in_with_token(store, token)
        assert annotator is not None and annotator.name == name
        for item in load_queue(store, annotator.annotator_id):
            grade = GRADE_BY_MODEL[item.model_id] if name != "cy" or item.question_id % 5 else "C"
            record_grade(store, annotator.annotator_id, item.answer_id, grade)
            graded += 1
    store.close()
    assert graded == 2 * 6 * 82  # overlap 2: every answer graded by exactly two annotators

    grades_csv = tmp_path / "grades.csv"
    _ok(["grades", "export", "--db", str(db), "--out", str(grades_csv)])
    with open(grades_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == graded and {r["model_id"] for r in rows} == set(PUBLISHED_MODELS.values())

    legacy_dir = tmp_path / "legacy"
    _ok(["legacy", "--answers", str(answers), "--references", f"graded:{grades_csv}", "--metrics", "bleu,rouge", "--out", str(legacy_dir)])
    report_dir = tmp_path / "report"
    _ok(["report", "--grades", str(db), "--answers", str(answers), "--out", str(report_dir), "--bootstrap", "200", "--legacy", str(legacy_dir / "legacy.csv")])
    summary = pd.read_csv(report_dir / "summary.csv").set_index("model")
    assert (summary["n"] == 82).all()
    # two ratings per answer: the lower of the two middle grades is the worse one
    combined = pd.DataFrame(rows).groupby(["model_id", "question_id"])["grade"].max()
    expected = combined.groupby(level="model_id").value_counts().unstack(fill_value=0)
    for model in expected.index:
        for grade in "ABCD":
            assert summary.loc[model, grade] == expected.loc[model].get(grade, 0), (model, grade)
    assert 0 < summary.loc["llava-13b", "C"] < summary.loc["llava-13b", "A"]
    assert summary.loc["llava-13b", "mean_score"] > summary.loc["blip2-13b", "mean_score"] > summary.loc["mm-react", "mean_score"]
    agreement = pd.read_csv(report_dir / "agreement.csv")
    assert set(agreement["annotators"]) >= {"all", "ann|bob", "ann|cy", "bob|cy"}
    assert (report_dir / "correlation.csv").is_file() and (report_dir / "report.html").stat().st_size > 10_000
