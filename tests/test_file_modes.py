"""Every file and folder a command writes gets the mode the umask asks for: with umask 022, files 0644 and folders
0755 (a team shares a results folder; the app may run as a service user). ``mkstemp``/``mkdtemp`` would give
0600/0700 whatever the umask.

The commands run in-process under umask 022, in the order a user runs them; each writer has its own test.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from owleval.cli import app
from owleval.study.queue import load_queue, record_grade
from owleval.study.store import Store
from owleval.questions import load_questions
from tests.chat_server import ChatServer
from tests.conftest import SHARED_DATA
from tests.judge_helpers import grade_from_content, write_answer_sets

FILE, FOLDER = 0o644, 0o755


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_shared(*paths: Path) -> None:
    """Each path (and, for a folder, everything in it) has the umask-022 mode."""
    wrong = {}
    for path in paths:
        assert path.exists(), f"{path} was not written"
        for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
            want = FOLDER if p.is_dir() else FILE
            if mode(p) != want:
                wrong[str(p)] = oct(mode(p))
    assert not wrong, f"expected files {oct(FILE)} and folders {oct(FOLDER)}: {wrong}"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A working folder, with the process umask 022 for the whole module."""
    old = os.umask(0o022)
    try:
        yield tmp_path_factory.mktemp("modes")
    finally:
        os.umask(old)


def owleval(work: Path, *args: str) -> str:
    old = os.getcwd()
    os.chdir(work)
    try:
        result = CliRunner().invoke(app, list(args))
    finally:
        os.chdir(old)
    assert result.exit_code == 0, f"owleval {' '.join(args)}:\n{result.output}\n{result.exception!r}"
    return result.output


@pytest.fixture(scope="module")
def answers(work: Path, owl_data: Path) -> Path:
    owleval(work, "answers", "import", "--published", "--out", "answers", "--data", str(owl_data))
    return work / "answers"


@pytest.fixture(scope="module")
def study(work: Path, answers: Path, owl_data: Path) -> Path:
    owleval(work, "study", "create", "--db", "study.sqlite", "--answers", "answers", "--annotators", "ann,bob", "--data", str(owl_data))
    db = work / "study.sqlite"
    store = Store(db)  # a few grades, as the app records them
    try:
        for name in ("ann", "bob"):
            annotator_id = store.conn.execute("SELECT annotator_id FROM annotators WHERE name = ?", (name,)).fetchone()[0]
            for i, item in enumerate(load_queue(store, annotator_id)[:40]):
                record_grade(store, annotator_id, item.answer_id, "ABCD"[(item.question_id + i) % 4])
    finally:
        store.close()
    return db


def test_data_fetch_installs_files_and_folders_readable_by_the_team(work: Path) -> None:
    owleval(work, "data", "fetch", "--from", str(SHARED_DATA), "--dest", "data")
    assert (work / "data" / "questions.jsonl").is_file() and any((work / "data" / "cases").iterdir())
    assert_shared(work / "data")


def test_imported_answers(answers: Path) -> None:
    assert len(list(answers.glob("*.jsonl"))) == 6
    assert_shared(answers)


def test_generated_answers_and_their_meta(work: Path, answers: Path) -> None:
    owleval(work, "generate", "--model", "answers-file", "--checkpoint", str(answers / "llava-13b.jsonl"), "--out", "replay/llava.jsonl",
            "--device", "cpu")
    assert (work / "replay" / "llava.jsonl.meta.json").is_file()
    assert_shared(work / "replay")


def test_judge_grades_meta_and_raw_log(work: Path, owl_data: Path) -> None:
    write_answer_sets(work / "judge-answers", list(load_questions(owl_data))[:4], {"alpha-7b": lambda qid: "grade=B"})
    with ChatServer(reply=grade_from_content) as server:
        owleval(work, "judge", "--answers", "judge-answers", "--judge", "openai", "--checkpoint", "tiny-vlm",
                "--base-url", server.base_url, "--out", "judged", "-o", "backoff=0.01")
    assert {"grades.csv", "meta.json", "raw.jsonl"} <= {p.name for p in (work / "judged").iterdir()}
    assert_shared(work / "judged")


def test_study_sqlite_and_its_wal_and_shm(work: Path, study: Path) -> None:
    store = Store(study)  # open: the -wal and -shm files exist now
    try:
        store.conn.execute("SELECT COUNT(*) FROM grade_events").fetchone()
        companions = [p for p in (Path(f"{study}-wal"), Path(f"{study}-shm")) if p.exists()]
        assert companions, "an open WAL study has its -wal/-shm files"
        assert_shared(study, *companions)
    finally:
        store.close()
    assert_shared(study)


def test_exported_grades(work: Path, study: Path) -> None:
    owleval(work, "grades", "export", "--db", str(study), "--out", "export/grades.csv")
    assert_shared(work / "export")


def test_report_folder_and_its_files(work: Path, study: Path) -> None:
    owleval(work, "grades", "export", "--db", str(study), "--out", "report-grades.csv")
    owleval(work, "report", "--grades", "report-grades.csv", "--answers", "answers", "--out", "report", "--bootstrap", "50")
    assert (work / "report" / "report.html").is_file()
    assert_shared(work / "report")


def test_legacy_folder_and_its_files(work: Path, answers: Path) -> None:
    owleval(work, "legacy", "--answers", "answers", "--references", "leave-one-out", "--metrics", "bleu", "--out", "legacy")
    assert (work / "legacy" / "legacy.csv").is_file()
    assert_shared(work / "legacy")
