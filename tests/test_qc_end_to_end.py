"""Annotator quality control end to end: a study with gold, onboarding, attention checks and retests is graded, exported
and reported, from the CSV and from the study file alike; special items are counted in annotators.csv, never in a score."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from owleval.cli import app
from owleval.screens.access import sign_in_with_token
from owleval.study.queue import load_queue, record_grade
from owleval.study.special import QcSettings
from owleval.study.store import Store
from owleval.study.manage import create_study
from tests.grading_helpers import MODELS, QIDS, write_answer_files
from tests.qc_helpers import write_gold

runner = CliRunner()


def test_a_graded_qc_study_reports_from_its_export_and_its_file(tmp_path: Path, owl_data: Path) -> None:
    answers = write_answer_files(tmp_path / "answers", owl_data)
    gold = write_gold(tmp_path / "gold.csv", [(1, MODELS[0], "B", "vague"), (6, MODELS[1], "D", ""), (7, MODELS[2], "A", "")])
    study = create_study(tmp_path / "study.sqlite", answers, annotators=("ann", "bob"), overlap=2, data_dir=owl_data, seed=3, gold=gold,
                         quality=QcSettings(gold_rate=0.2, onboarding=1, attention_checks=2, retest=2))  # fmt: skip
    store = Store(study.path)
    regular = 0
    for name, careless in (("ann", False), ("bob", True)):
        who = sign_in_with_token(store, study.tokens[name])
        for item in load_queue(store, who.annotator_id):
            expected = store.conn.execute("SELECT expected_grade FROM special_items WHERE item_id = ?", (item.item_id,)).fetchone()
            grade = "A" if careless else (expected[0] if item.item_kind == "attention" else "B")
            record_grade(store, who.annotator_id, item.answer_id, grade, item_id=item.item_id)
            regular += item.item_kind == "regular"
    store.close()
    exported = tmp_path / "grades.csv"
    assert runner.invoke(app, ["grades", "export", "--db", str(study.path), "--out", str(exported)]).exit_code == 0
    kinds = pd.read_csv(exported, keep_default_na=False)["item_kind"].value_counts()
    assert {"onboarding", "attention", "retest"} <= set(kinds.index) and kinds["regular"] == regular
    for source in (exported, study.path):
        out = tmp_path / f"report-{Path(source).suffix.lstrip('.')}"
        result = runner.invoke(app, ["report", "--grades", str(source), "--out", str(out), "--bootstrap", "50", "--format", "csv"])
        assert result.exit_code == 0, result.output
        table = pd.read_csv(out / "annotators.csv", keep_default_na=False).set_index("annotator")
        assert table.loc["ann", "checks_n"] == table.loc["bob", "checks_n"] == 2
        assert table.loc["ann", "checks_failed"] == 0 and table.loc["bob", "checks_failed"] >= 1  # an instructed "A" bob gets right
        assert "attention" not in table.loc["ann", "qc_flags"]
        assert table.loc["ann", "gold_n"] >= 1 and table.loc["ann", "retest_n"] == 2
        assert table["n_grades"].sum() == regular  # special items are not grades
        summary = pd.read_csv(out / "summary.csv")
        assert "owleval:check" not in set(summary["model"]) and summary["n"].sum() == len(MODELS) * len(QIDS)
