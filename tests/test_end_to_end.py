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
from owleval.screens.access import sign_in_with_token
from owleval.study.queue import load_queue, record_grade
from owleval.study.store import Store
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


def test_judge_everything_grade_a_sample_and_anchor_the_scores(tmp_path: Path, owl_data: Path) -> None:
    """The worked example of docs/guides/judge-ppi.md on a loopback judge: judge every answer, people grade a stratified sample of 20
    per model, and the report sets the judge against them and gives human-anchored (PPI) scores."""
    from owleval.questions import load_questions
    from tests.chat_server import ChatServer
    from tests.judge_helpers import grade_from_content, write_answer_sets

    questions = list(load_questions(owl_data))
    quality = {"good-vlm": "AAAB", "fair-vlm": "ABCC", "poor-vlm": "CDDD"}  # the grade a question id mod 4 deserves
    markers = {model: (lambda qid, g=grades: "never-json" if qid % 41 == 0 else f"grade={g[qid % 4]}") for model, grades in quality.items()}
    answers = tmp_path / "answers"
    write_answer_sets(answers, questions, markers)

    judged = tmp_path / "judgements" / "loopback"
    with ChatServer(reply=grade_from_content) as server:
        _ok(["judge", "--answers", str(answers), "--judge", "openai", "--checkpoint", "tiny-vlm", "--base-url", server.base_url,
             "--concurrency", "8", "--out", str(judged), "-o", "backoff=0.01", "-o", "parse_retries=1"])
    meta = __import__("json").loads((judged / "meta.json").read_text())
    assert meta["counts"] == {"judged": 3 * 80, "unparsed": 3 * 2, "failed": 0}  # questions 41 and 82 never parse

    db = tmp_path / "sample.sqlite"
    created = _ok(["study", "create", "--db", str(db), "--answers", str(answers), "--annotators", "ann", "--sample", "20", "--seed", "0"])
    token = re.search(r"token for ann: (owl_\S+)", created).group(1)
    store = Store(db)
    annotator = sign_in_with_token(store, token)
    queue = load_queue(store, annotator.annotator_id)
    assert len(queue) == 3 * 20
    for item in queue:  # people agree with the judge except on every third question, where they are one grade stricter
        deserved = quality[item.model_id][item.question_id % 4]
        human = deserved if item.question_id % 3 else "ABCDD"["ABCD".index(deserved) + 1]
        record_grade(store, annotator.annotator_id, item.answer_id, human)
    store.close()

    report_dir = tmp_path / "report"
    _ok(["report", "--grades", str(db), "--judge", str(judged / "grades.csv"), "--answers", str(answers), "--out", str(report_dir), "--bootstrap", "200"])
    ppi = pd.read_csv(report_dir / "ppi.csv").set_index(["model", "metric"])
    assert sorted(ppi.index) == sorted((m, k) for m in quality for k in ("mean_score", "acceptable"))
    for model in quality:
        row = ppi.loc[(model, "mean_score")]
        assert row["n_human"] == 20 and row["n_human"] - row["n_stand_in"] <= 20 and row["n_judge"] == 80  # every parsed judge grade
        assert row["ci_low"] <= row["estimate"] <= row["ci_high"]
        assert row["ci_high"] - row["ci_low"] <= row["human_only_ci_high"] - row["human_only_ci_low"] + 1e-12  # never wider
        if row["lambda"] == 0:  # the judge would not narrow it: the human-only row
            assert "does not narrow" in row["note"] and (row["ci_low"], row["ci_high"]) == (row["human_only_ci_low"], row["human_only_ci_high"])
        else:  # the judge helps: grading 20 of these 82 answers costs less width than the human-only interval of the 20
            assert row["sample_ci_high"] - row["sample_ci_low"] < row["human_only_ci_high"] - row["human_only_ci_low"]
            assert row["ci_low"] <= row["sample_ci_low"] and row["sample_ci_high"] <= row["ci_high"]
            assert row["estimate"] < row["judge_only_estimate"]  # anchored to the stricter people
    assert (ppi["lambda"] > 0).any()
    assert ppi.loc[("good-vlm", "mean_score"), "estimate"] > ppi.loc[("fair-vlm", "mean_score"), "estimate"] > ppi.loc[("poor-vlm", "mean_score"), "estimate"]
    agreement = pd.read_csv(report_dir / "judge_agreement.csv")
    assert {"all", *quality} == set(agreement["model"]) and set(agreement["measure"]) >= {"exact_agreement", "cohen_kappa", "mean_shift"}
    shift = agreement[(agreement["model"] == "all") & (agreement["measure"] == "mean_shift")]["value"].item()
    assert shift > 0  # the judge is more lenient than the people
    report_md = (report_dir / "report.md").read_text()
    assert "Judge vs humans" in report_md and "unparsed" in report_md
