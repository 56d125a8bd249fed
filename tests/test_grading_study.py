"""Creating studies: validation, the even spread of --overlap, seeded orders, annotators, sign-in, the CLI."""

from __future__ import annotations

import itertools
import json
import os
import stat
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from owleval.answers import PUBLISHED_MODELS
from owleval.cli import app
from owleval.errors import InputFileError, OwlEvalError
from owleval.screens import access
from owleval.study.assign import shuffled, spread
from owleval.study.default_study import admin_token_path, ensure_default_study
from owleval.study.queue import load_queue, record_grade
from owleval.study.store import Store
from owleval.study.manage import add_annotator, create_study
from tests.grading_helpers import MODELS, QIDS, make_study, write_answer_files

runner = CliRunner()


def _assignments(store: Store) -> dict[str, list[tuple[str, int]]]:
    out: dict[str, list[tuple[str, int]]] = {}
    for row in store.conn.execute(
        "SELECT n.name, s.model_id, s.question_id FROM assignments s JOIN annotators n USING (annotator_id) ORDER BY s.position"
    ):
        out.setdefault(row[0], []).append((row[1], row[2]))
    return out


@pytest.mark.parametrize(("annotators", "k"), [(5, 2), (5, 3), (4, 1), (3, 3)])
def test_overlap_gives_each_answer_to_k_annotators_evenly(annotators: int, k: int) -> None:
    slots = [(m, q) for m in ("m1", "m2", "m3", "m4", "m5", "m6") for q in range(1, 83)]
    names = [f"a{i}" for i in range(annotators)]
    plan = spread(slots, names, k, seed=3)
    holders = Counter(s for got in plan.values() for s in got)
    assert set(holders) == set(slots) and set(holders.values()) == {k}
    assert all(len(set(got)) == len(got) for got in plan.values()), "one annotator got a slot twice"
    loads = [len(got) for got in plan.values()]
    assert max(loads) - min(loads) <= 1
    for model in {m for m, _ in slots}:
        per_model = [sum(1 for m, _ in got if m == model) for got in plan.values()]
        assert max(per_model) - min(per_model) <= 1, f"{model} is spread unevenly: {per_model}"


def test_each_annotator_has_an_own_seeded_order_without_model_blocks() -> None:
    slots = [(m, q) for m in ("m1", "m2", "m3", "m4", "m5", "m6") for q in range(1, 83)]
    ann = shuffled(slots, "ann", seed=1)
    assert ann == shuffled(slots, "ann", seed=1)
    assert ann != shuffled(slots, "bob", seed=1) and ann != shuffled(slots, "ann", seed=2)
    longest = run = 1
    for before, after in itertools.pairwise(ann):
        run = run + 1 if before[0] == after[0] else 1
        longest = max(longest, run)
    assert longest <= 6, f"a run of {longest} answers of one model"
    first_half = Counter(m for m, _ in ann[: len(ann) // 2])
    assert min(first_half.values()) > 20, "one model is pushed to the end"


def test_create_refuses_bad_input_and_leaves_nothing(tmp_path: Path, owl_data: Path) -> None:
    files = write_answer_files(tmp_path / "answers", owl_data, MODELS[:2])
    bad = files[1].read_text().splitlines()
    bad[1] = bad[1].replace('"question_id": 6', '"question_id": 999')
    files[1].write_text("\n".join(bad) + "\n")
    db = tmp_path / "study.sqlite"
    with pytest.raises(InputFileError, match=r"quokka-model-y2.jsonl:2 \[question_id\]"):
        create_study(db, files, annotators=["ann"], data_dir=owl_data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers"]
    good = files[:1]
    with pytest.raises(OwlEvalError, match="between 1 and the number of annotators"):
        create_study(db, good, annotators=["ann", "bob"], overlap=3, data_dir=owl_data)
    with pytest.raises(OwlEvalError, match="repeat"):
        create_study(db, good, annotators=["ann", "ann"], data_dir=owl_data)
    with pytest.raises(OwlEvalError, match="--overlap needs --annotators"):
        create_study(db, good, overlap=2, data_dir=owl_data)
    with pytest.raises(OwlEvalError, match="is a folder"):
        create_study(tmp_path / "answers", good, data_dir=owl_data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers"]
    create_study(db, good, annotators=["ann"], data_dir=owl_data)
    with pytest.raises(OwlEvalError, match="already exists"):
        create_study(db, good, annotators=["ann"], data_dir=owl_data)


def test_add_annotator_in_a_full_study_gets_everything(tmp_path: Path, owl_data: Path) -> None:
    created = make_study(tmp_path, owl_data, ("ann",))
    store = Store(created.path)
    token = add_annotator(store, "  Carol   Smith ")
    assert access.sign_in_with_token(store, token) == access.Annotator(2, "Carol Smith")
    assert sorted(_assignments(store)["Carol Smith"]) == sorted((m, q) for m in MODELS for q in QIDS)
    with pytest.raises(OwlEvalError, match="already exists"):
        add_annotator(store, "Carol Smith")


def test_add_annotator_in_an_overlap_study_takes_an_even_share_of_ungraded_work(tmp_path: Path, owl_data: Path) -> None:
    created = make_study(tmp_path, owl_data, ("ann", "bob", "cy"), overlap=2, seed=5)
    store = Store(created.path)
    ann = store.conn.execute("SELECT annotator_id FROM annotators WHERE name = 'ann'").fetchone()[0]
    graded = {(i.model_id, i.question_id) for i in load_queue(store, ann)}
    for item in load_queue(store, ann):
        record_grade(store, ann, item.answer_id, "A")
    add_annotator(store, "dee")
    plan = _assignments(store)
    holders = Counter(s for got in plan.values() for s in got)
    assert set(holders.values()) == {2}, "every answer still has exactly two annotators"
    assert graded <= set(plan["ann"]), "graded work was moved away"
    assert len(plan["dee"]) == len(MODELS) * len(QIDS) * 2 // 4


def test_sign_in_and_admin_tokens(tmp_path: Path, owl_data: Path) -> None:
    created = make_study(tmp_path, owl_data)
    store = Store(created.path)
    assert access.sign_in_with_token(store, created.tokens["bob"]).name == "bob"
    forged = created.tokens["bob"][:-1] + ("A" if created.tokens["bob"][-1] != "A" else "B")
    for wrong in (forged, created.admin_token, "", "owl_nonsense", "bob"):
        assert access.sign_in_with_token(store, wrong) is None
    assert access.is_admin(store, created.admin_token)
    assert not access.is_admin(store, created.tokens["ann"])
    with pytest.raises(OwlEvalError, match="needs a sign-in token"):
        access.sign_in_with_name(store, "ann")


def test_default_study_is_the_six_published_sets_with_name_sign_in(tmp_path: Path, owl_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = ensure_default_study(tmp_path / "default.sqlite", owl_data)
    assert ensure_default_study(db, owl_data) == db  # opening again creates nothing new
    store = Store(db)
    models = {r[0] for r in store.conn.execute("SELECT DISTINCT model_id FROM answers")}
    assert models == set(PUBLISHED_MODELS.values())
    newcomer = access.sign_in_with_name(store, "Newcomer")
    assert len(load_queue(store, newcomer.annotator_id)) == 6 * 82
    assert access.sign_in_with_name(store, "Newcomer") == newcomer
    token_file = admin_token_path(db)
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    assert access.is_admin(store, token_file.read_text().strip())
    item = load_queue(store, newcomer.annotator_id)[0]
    record_grade(store, newcomer.annotator_id, item.answer_id, "A")
    monkeypatch.setenv("OWLEVAL_DEFAULT_STUDY", str(db))  # `grades export` without --db reads the default study
    result = runner.invoke(app, ["grades", "export", "--out", str(tmp_path / "g.csv")])
    assert result.exit_code == 0 and "wrote 1 grades" in result.stdout
    assert (tmp_path / "g.csv").read_text().splitlines()[1].startswith(f"Newcomer,{item.model_id},{item.question_id},A,")


def test_cli_create_add_status_export(tmp_path: Path, owl_data: Path) -> None:
    answers = tmp_path / "answers"
    write_answer_files(answers, owl_data)
    db = tmp_path / "g.sqlite"
    result = runner.invoke(app, ["study", "create", "--db", str(db), "--answers", str(answers), "--annotators", "ann,bob",
                                 "--overlap", "1", "--seed", "7", "--data", str(owl_data)])
    assert result.exit_code == 0, result.output
    tokens = dict(line.split(": ", 1) for line in result.stdout.splitlines() if line.startswith(("admin token", "token for")))
    assert set(tokens) == {"admin token", "token for ann", "token for bob"}
    store = Store(db)
    assert access.is_admin(store, tokens["admin token"])
    assert access.sign_in_with_token(store, tokens["token for bob"]).name == "bob"
    result = runner.invoke(app, ["study", "add-annotator", "--db", str(db), "cy"])
    assert result.exit_code == 0 and "token for cy: owl_" in result.stdout
    bob = access.sign_in_with_token(store, tokens["token for bob"])
    for item in load_queue(store, bob.annotator_id)[:4]:
        record_grade(store, bob.annotator_id, item.answer_id, "B", "fine")
    result = runner.invoke(app, ["study", "status", "--db", str(db)])
    assert result.exit_code == 0
    bob_row = next(line for line in result.stdout.splitlines() if " bob " in line)
    assert bob_row.split("│")[2].strip() == "4"
    out = tmp_path / "grades.csv"
    result = runner.invoke(app, ["grades", "export", "--db", str(db), "--out", str(out)])
    assert result.exit_code == 0 and "wrote 4 grades" in result.stdout
    lines = out.read_text().splitlines()
    assert lines[0] == "annotator,model_id,question_id,grade,comment,graded_at,flags,item_kind,expected_grade" and len(lines) == 5
    result = runner.invoke(app, ["grades", "export", "--db", str(db), "--out", str(out / "inside-a-file.csv")])
    assert result.exit_code == 1 and "cannot write" in result.stderr and "Traceback" not in result.output


def test_cli_errors_are_one_line_and_nonzero(tmp_path: Path, owl_data: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question_id": 1}) + "\n")
    result = runner.invoke(app, ["study", "create", "--db", str(tmp_path / "x.sqlite"), "--answers", str(bad), "--data", str(owl_data)])
    assert result.exit_code == 1
    assert "bad.jsonl:1 [image]: error: missing" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "x.sqlite").exists()
    result = runner.invoke(app, ["study", "status", "--db", str(tmp_path / "none.sqlite")])
    assert result.exit_code == 1 and "no such study" in result.stderr


def test_rate_command_becomes_the_streamlit_server(tmp_path: Path, owl_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    calls: list[list[str]] = []
    monkeypatch.setattr(os, "execv", lambda path, cmd: calls.append([path, *cmd]))  # the real exec: test_install_wheel
    result = runner.invoke(app, ["rate", "--db", str(tmp_path / "missing.sqlite")])
    assert result.exit_code == 1 and "no such study" in result.stderr and not calls
    created = make_study(tmp_path, owl_data)
    result = runner.invoke(app, ["rate", "--db", str(created.path), "--port", "8600"])
    assert result.exit_code == 0, result.output
    path, *cmd = calls[0]
    assert path == cmd[0] and cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("owleval/rate.py")
    assert cmd[cmd.index("--server.port") + 1] == "8600" and cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--client.toolbarMode") + 1] == "minimal"
    assert cmd[cmd.index("--") + 1:] == ["--db", str(created.path.resolve())]
    calls.clear()
    result = runner.invoke(app, ["rate"])  # no arguments: the default study, as `streamlit run owleval/rate.py`
    assert result.exit_code == 0 and calls[0][-1] == "--"


def test_default_study_installs_the_data_set_when_missing(tmp_path: Path, owl_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import owleval.fetch

    real = owleval.fetch.install_dataset
    used: list[Path] = []

    def offline_install(dest: Path, source: Path | None = None, **kwargs):  # the test machine has no network
        used.append(dest)
        return real(dest, owl_data, **kwargs)

    monkeypatch.setattr(owleval.fetch, "install_dataset", offline_install)
    empty = tmp_path / "data"
    db = ensure_default_study(tmp_path / "default.sqlite", empty)
    assert used == [empty.resolve()] and (empty / "questions.jsonl").is_file()
    assert Store(db).conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 6 * 82
