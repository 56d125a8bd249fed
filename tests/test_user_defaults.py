"""Defaults that follow the user: outputs land under the current folder whatever the install (this suite runs from a
development install, so a report written into the checkout would show here); the data set comes from
$OWLEVAL_DATA, else the cache, a checkout's installed set being used with a one-line notice; `answers import`
summarises the known slips per kind; `grades export` without --db names the default study."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from owleval import paths
from owleval.cli import app
from owleval.questions import load_questions
from tests.report_helpers import data_dir, synthetic_grades, write_grades_csv

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def test_report_without_out_writes_under_the_current_folder_not_the_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = synthetic_grades(load_questions(data_dir()), ["m-a", "m-b"], ["ann"], seed=3, coverage=0.3)
    grades = write_grades_csv(frame, tmp_path / "first.csv")
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    before = sorted(p.name for p in (ROOT / "reports").iterdir()) if (ROOT / "reports").is_dir() else []
    result = runner.invoke(app, ["report", "--grades", str(grades), "--bootstrap", "20", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert (work / "reports" / "first" / "scores.csv").is_file()
    after = sorted(p.name for p in (ROOT / "reports").iterdir()) if (ROOT / "reports").is_dir() else []
    assert after == before


def _fake_checkout(root: Path, installed: bool) -> Path:
    (root / "data" / paths.DATASET_NAME).mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\n", encoding="utf-8")
    (root / "data" / paths.DATASET_NAME / "manifest.json").write_text("{}", encoding="utf-8")
    if installed:
        (root / "data" / paths.DATASET_NAME / paths.QUESTIONS_FILE).write_text("", encoding="utf-8")
    return root / "data" / paths.DATASET_NAME


def test_data_set_comes_from_the_environment_then_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(paths, "_CHECKOUT_ROOT", tmp_path / "checkout")
    _fake_checkout(tmp_path / "checkout", installed=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("OWLEVAL_DATA", str(tmp_path / "mine"))
    assert paths.default_data_dir() == tmp_path / "mine"
    monkeypatch.delenv("OWLEVAL_DATA")
    assert paths.default_data_dir() == tmp_path / "cache" / "owleval" / paths.DATASET_NAME  # not into the checkout
    assert capsys.readouterr().err == ""


def test_a_checkouts_installed_data_set_is_used_with_one_notice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(paths, "_CHECKOUT_ROOT", tmp_path / "checkout")
    folder = _fake_checkout(tmp_path / "checkout", installed=True)
    monkeypatch.delenv("OWLEVAL_DATA")
    assert paths.default_data_dir() == folder
    assert paths.default_data_dir() == folder
    notice = capsys.readouterr().err.splitlines()
    assert len(notice) == 1 and str(folder) in notice[0] and "OWLEVAL_DATA" in notice[0]


def test_published_import_summarises_known_slips_one_line_per_kind(tmp_path: Path, owl_data: Path) -> None:
    result = runner.invoke(app, ["answers", "import", "--published", "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.stderr.splitlines()]
    assert lines[0] == "normalised 495 slips (--verbose lists each):"
    assert lines[1:4] == [
        "328 image names with the wrong extension (N.png for N.jpg), the set's name used",
        "162 question texts that differ in spacing or punctuation, the set's text used",
        "5 question texts with a typo or split across lines, the set's text used",
    ]
    verbose = runner.invoke(app, ["answers", "import", "--published", "--out", str(tmp_path / "b"), "--verbose"])
    assert verbose.exit_code == 0, verbose.output
    assert sum(": warning: " in line for line in verbose.stderr.splitlines()) == 495


def test_grades_export_without_db_exports_the_default_study_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, published_answers_dir: Path
) -> None:
    study = tmp_path / "default.sqlite"
    made = runner.invoke(app, ["study", "create", "--db", str(study), "--answers", str(published_answers_dir / "llava-13b.jsonl"), "--annotators", "ann"])
    assert made.exit_code == 0, made.output
    monkeypatch.setenv("OWLEVAL_DEFAULT_STUDY", str(study))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["grades", "export"])
    assert result.exit_code == 0, result.output
    assert f"no --db: exporting the default study, {study}" in " ".join(result.stderr.split())
    assert (tmp_path / "grades.csv").read_text(encoding="utf-8").startswith("annotator,model_id,question_id,grade")
    refused = runner.invoke(app, ["grades", "import", "grades.csv"])
    assert refused.exit_code != 0 and "--db" in refused.output  # import keeps --db required
