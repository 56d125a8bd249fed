"""`owleval study create --sample K`: K answers per model, stratified by turn type, reproducible, and only those
reach the annotators' queues (store, refresh, add-annotator, the app and the report)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from owleval.cli import app
from owleval.study.queue import load_queue
from owleval.study.sample import META_KEY, allocate, read_design, sampled_slots
from owleval.study.store import Store
from owleval.study.manage import add_annotator, create_study, refresh_study
from owleval.questions import load_questions
from tests.grading_helpers import MODELS, bar_action, write_answer_files
from tests.timing import budget

ALL_QIDS = tuple(range(1, 83))
APP = str(Path(__file__).resolve().parent.parent / "owleval" / "rate.py")
runner = CliRunner()


def test_allocation_is_proportional_and_exact():
    assert allocate({"single": 30, "first": 20, "later": 32}, 20) == {"single": 7, "first": 5, "later": 8}
    assert allocate({"single": 30, "first": 20, "later": 32}, 82) == {"single": 30, "first": 20, "later": 32}
    assert allocate({"single": 30, "first": 20, "later": 32}, 500) == {"single": 30, "first": 20, "later": 32}
    assert allocate({"single": 3, "first": 0, "later": 1}, 2) == {"single": 2, "first": 0, "later": 0}
    for k in range(1, 83):
        got = allocate({"single": 30, "first": 20, "later": 32}, k)
        assert sum(got.values()) == k
        assert all(abs(got[s] - k * n / 82) < 1 for s, n in {"single": 30, "first": 20, "later": 32}.items())


def _sampled_study(tmp_path: Path, owl_data: Path, *, k: int = 20, seed: int = 7, annotators=("ann", "bob"), overlap=None, name="s.sqlite"):
    answers = write_answer_files(tmp_path / f"answers-{name}", owl_data, MODELS, ALL_QIDS)
    return create_study(tmp_path / name, answers, annotators=annotators, overlap=overlap, seed=seed, data_dir=owl_data, sample_size=k)


def _assigned(db: Path) -> dict[str, set[tuple[str, int]]]:
    store = Store(db)
    try:
        rows = store.conn.execute("SELECT n.name, s.model_id, s.question_id FROM assignments s JOIN annotators n USING (annotator_id)")
        out: dict[str, set[tuple[str, int]]] = {}
        for name, model, qid in rows:
            out.setdefault(name, set()).add((model, int(qid)))
        return out
    finally:
        store.close()


def test_draws_k_per_model_stratified_and_reproducible(tmp_path, owl_data):
    study = _sampled_study(tmp_path, owl_data)
    turn = {q.question_id: q.turn_type for q in load_questions(owl_data)}
    design = study.sample_design
    assert design["per_model"] == 20 and design["seed"] == 7
    drawn = sampled_slots(design)
    for model in MODELS:
        qids = sorted(q for m, q in drawn if m == model)
        assert len(qids) == 20
        assert Counter(turn[q] for q in qids) == {"single": 7, "first": 5, "later": 8}
        assert design["models"][model]["answers"] == {"single": 30, "first": 20, "later": 32}
    assert len({tuple(sorted(q for m, q in drawn if m == model)) for model in MODELS}) == len(MODELS)  # own draw each
    # every annotator (full overlap) gets exactly the sample
    assert _assigned(study.path) == {"ann": drawn, "bob": drawn}
    # stored with the study
    store = Store(study.path)
    assert read_design(store.meta()) == design
    store.close()
    again = _sampled_study(tmp_path, owl_data, name="again.sqlite")
    assert sampled_slots(again.sample_design) == drawn
    other = _sampled_study(tmp_path, owl_data, seed=8, name="other.sqlite")
    assert sampled_slots(other.sample_design) != drawn


def test_overlap_add_annotator_and_refresh_keep_to_the_sample(tmp_path, owl_data):
    study = _sampled_study(tmp_path, owl_data, k=10, annotators=("ann", "bob", "cy"), overlap=2)
    drawn = sampled_slots(study.sample_design)
    got = _assigned(study.path)
    assert Counter(s for slots in got.values() for s in slots) == dict.fromkeys(drawn, 2)
    store = Store(study.path)
    add_annotator(store, "dee")
    assert _assigned(study.path)["dee"] <= drawn
    # a new model joins: it gets its own draw of the same design; nothing outside the samples is queued
    newcomer = write_answer_files(tmp_path / "late", owl_data, ["walrus-model-w4"], ALL_QIDS)
    refresh_study(store, newcomer)
    design = read_design(store.meta())
    assert len(design["models"]["walrus-model-w4"]["question_ids"]) == 10
    everything = set().union(*_assigned(study.path).values())
    assert everything == sampled_slots(design) and any(m == "walrus-model-w4" for m, _ in everything)
    store.close()


def test_a_study_without_sample_has_no_design(tmp_path, owl_data):
    answers = write_answer_files(tmp_path / "a", owl_data, MODELS[:1], (1, 2))
    study = create_study(tmp_path / "full.sqlite", answers, annotators=["ann"], data_dir=owl_data)
    store = Store(study.path)
    assert META_KEY not in store.meta() and study.sample_design is None
    store.close()


def test_cli_prints_the_design_and_status_shows_it(tmp_path, owl_data):
    answers = write_answer_files(tmp_path / "answers", owl_data, MODELS, ALL_QIDS)
    db = tmp_path / "cli.sqlite"
    result = runner.invoke(app, ["study", "create", "--db", str(db), "--answers", str(answers[0].parent), "--annotators", "ann",
                                 "--sample", "20", "--seed", "3", "--data", str(owl_data)])  # fmt: skip
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "to grade: a uniform random sample of 20 answers per model, stratified by turn type" in text and "seed 3" in text
    assert f"{MODELS[0]}: 20 drawn (single 7/30, first 5/20, later 8/32)" in text
    status = runner.invoke(app, ["study", "status", "--db", str(db)])
    assert status.exit_code == 0 and "a uniform random sample of 20 answers per model" in " ".join(status.output.split())
    bad = runner.invoke(app, ["study", "create", "--db", str(tmp_path / "x.sqlite"), "--answers", str(answers[0]), "--sample", "0",
                              "--data", str(owl_data)])  # fmt: skip
    assert bad.exit_code != 0 and not (tmp_path / "x.sqlite").exists()


def test_the_app_queues_only_the_sampled_answers(tmp_path, owl_data, monkeypatch):
    study = _sampled_study(tmp_path, owl_data, k=4, annotators=("ann",))
    monkeypatch.setenv("OWLEVAL_RATE_DB", str(study.path))
    n = 4 * len(MODELS)
    at = AppTest.from_file(APP, default_timeout=budget(30)).run()
    at.text_input(key="sign_in_token").input(study.tokens["ann"])
    at.button(key="sign_in_submit").click().run()
    assert at.subheader[0].value == f"Answer 1 of {n}"
    for _ in range(n):
        bar_action(at, "grade", "B")  # what the grade bar sends for a key or click on the answer on screen
        assert not at.exception, at.exception
    assert at.success[0].value.startswith(f"All {n} answers are graded")
    store = Store(study.path)
    graded = {(r[0], int(r[1])) for r in store.conn.execute("SELECT a.model_id, a.question_id FROM grade_events e JOIN answers a USING (answer_id)")}
    assert graded == sampled_slots(study.sample_design)
    assert len(load_queue(store, 1)) == n
    store.close()


def test_the_report_states_how_the_sample_was_drawn(tmp_path, owl_data):
    from owleval.screens.access import sign_in_with_token
    from owleval.study.queue import record_grade

    study = _sampled_study(tmp_path, owl_data, k=5, annotators=("ann",))
    store = Store(study.path)
    who = sign_in_with_token(store, study.tokens["ann"])
    for item in load_queue(store, who.annotator_id):
        record_grade(store, who.annotator_id, item.answer_id, "ABCD"[item.question_id % 4])
    store.close()
    judge = tmp_path / "judge"
    judge.mkdir()
    rows = ["annotator,model_id,question_id,grade,comment,graded_at,flags"]
    rows += [f"judge:t,{m},{q},{'ABCD'[(q + 1) % 4]},why,2024-01-01,"for m in MODELS for q in ALL_QIDS]
    (judge / "grades.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "r"
    result = runner.invoke(app, ["report", "--grades", str(study.path), "--judge", str(judge), "--out", str(out), "--data", str(owl_data),
                                 "--bootstrap", "20", "--format", "md,csv"])  # fmt: skip
    assert result.exit_code == 0, result.output
    md = (out / "report.md").read_text()
    assert "Graded answers (study database): a uniform random sample of 5 answers per model" in md
    assert "15 of the 15 drawn answers have a human grade" in md
    meta = json.loads((out / "report_meta.json").read_text())
    assert meta["sampling"]["design"]["per_model"] == 5
    ppi = (out / "ppi.csv").read_text().splitlines()
    assert len(ppi) == 1 + 2 * len(MODELS) and all(",5,82," in line for line in ppi[1:])


def test_status_lists_the_drawn_answers_for_grading_elsewhere(tmp_path, owl_data):
    import pandas as pd

    study = _sampled_study(tmp_path, owl_data, k=20, seed=3)
    out = tmp_path / "drawn.csv"
    result = runner.invoke(app, ["study", "status", "--db", str(study.path), "--list-sample", str(out)])
    assert result.exit_code == 0, result.output
    drawn = pd.read_csv(out)
    assert list(drawn.columns) == ["model_id", "question_id", "stratum", "inclusion_probability"]
    assert set(zip(drawn["model_id"], drawn["question_id"], strict=True)) == sampled_slots(study.sample_design)
    turn = {q.question_id: q.turn_type for q in load_questions(owl_data)}
    assert (drawn["stratum"] == drawn["question_id"].map(turn)).all()
    sizes = {"single": 30, "first": 20, "later": 32}
    expected = {t: k / sizes[t] for t, k in allocate(sizes, 20).items()}  # k_h / N_h of the uniform design
    assert drawn["inclusion_probability"].tolist() == [expected[s] for s in drawn["stratum"]]
    whole = write_answer_files(tmp_path / "w", owl_data, MODELS[:1], (1, 2))
    full = create_study(tmp_path / "full.sqlite", whole, annotators=["ann"], data_dir=owl_data)
    refused = runner.invoke(app, ["study", "status", "--db", str(full.path), "--list-sample", str(tmp_path / "none.csv")])
    assert refused.exit_code != 0 and "not a sampled study" in refused.output and not (tmp_path / "none.csv").exists()
