"""The generation runner: history, batching, resume after a kill, torn lines, provenance."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from owleval.adapters.base import GenerationConfig, LoadOptions
from owleval.answers import read_answer_file
from owleval.cli import app
from owleval.errors import OwlEvalError
from owleval.generate import parse_question_ids, run_generation
from owleval.questions import load_questions
from tests.timing import budget

TESTS = Path(__file__).resolve().parent
runner = CliRunner()


def _run(out: Path, adapter=None, **kwargs):
    from generate_helpers import EchoAdapter

    adapter = adapter or EchoAdapter()
    options = kwargs.pop("load_options", LoadOptions(batch_size=4))
    result = run_generation("echo", load_options=options, config=GenerationConfig(max_new_tokens=8), out=out, adapter=adapter, **kwargs)
    return result, adapter


@pytest.fixture(autouse=True)
def _tests_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TESTS))


def test_all_questions_answered_with_own_history(tmp_path: Path) -> None:
    out = tmp_path / "echo.jsonl"
    result, adapter = _run(out)
    assert result.generated == 82 and result.resumed == 0
    checked = read_answer_file(out, load_questions())
    assert checked.ok and not checked.partial and not checked.warnings
    by_id = {a.question_id: a for a in checked.answers}
    conversations = {c.key: c for batch in adapter.calls for c in batch}
    later = conversations["q8"]
    assert [t.text for t in later.turns] == [by_id[6].question, by_id[7].question, by_id[8].question]
    assert [t.answer for t in later.history] == [by_id[6].answer, by_id[7].answer]
    assert later.turns[0].images and later.turns[0].images[0].path.name == "5.jpg"
    assert max(len(batch) for batch in adapter.calls) == 4
    assert all("seconds" in a.metadata for a in checked.answers)
    meta = json.loads(result.meta_path.read_text())
    assert meta["status"] == "finished" and meta["answers_written"] == 82
    assert meta["generation"]["max_new_tokens"] == 8 and meta["packages"]["torch"]
    assert meta["dataset"]["version"] and meta["started_at"] <= meta["finished_at"]


def test_later_turn_pulls_in_its_earlier_turns(tmp_path: Path) -> None:
    result, adapter = _run(tmp_path / "a.jsonl", question_ids=[8, 1])
    assert result.total == 4 and any("[6, 7]" in w for w in result.warnings)
    assert [a.question_id for a in read_answer_file(result.out, load_questions()).answers] == [1, 6, 7, 8]


def test_resume_after_kill_9_loses_at_most_the_batch_in_flight(tmp_path: Path) -> None:
    out = tmp_path / "killed.jsonl"
    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[2])\n"
        "from generate_helpers import KillAfterAdapter\n"
        "from owleval.adapters.base import GenerationConfig, LoadOptions\n"
        "from owleval.generate import run_generation\n"
        "run_generation('echo', load_options=LoadOptions(batch_size=5), config=GenerationConfig(max_new_tokens=8), out=Path(sys.argv[1]), adapter=KillAfterAdapter(4))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(out), str(TESTS)], capture_output=True, text=True, timeout=budget(120))
    assert proc.returncode == -9, proc.stderr
    partial = read_answer_file(out, load_questions())
    assert partial.ok and len(partial.answers) == 15  # three whole batches of five
    result, adapter = _run(out, load_options=LoadOptions(batch_size=5))
    assert result.resumed == 15 and result.generated == 67
    asked = [c.key for batch in adapter.calls for c in batch]
    assert not set(asked) & {f"q{a.question_id}" for a in partial.answers}
    final = read_answer_file(out, load_questions())
    assert final.ok and len(final.answers) == 82


def test_torn_last_line_is_dropped_with_a_warning(tmp_path: Path) -> None:
    out = tmp_path / "torn.jsonl"
    _run(out, question_ids=[1, 2, 3])
    with open(out, "a") as fh:
        fh.write('{"image": "4.jpg", "question_id": 4, "quest')
    result, _ = _run(out, question_ids=[1, 2, 3, 4])
    assert any("torn" in w for w in result.warnings)
    assert result.resumed == 3 and result.generated == 1
    assert read_answer_file(out, load_questions()).ok
    meta = json.loads(result.meta_path.read_text())
    assert meta["runs"] == 2 and [r["answers_written"] for r in meta["previous_runs"]] == [3]


def test_resume_with_other_settings_is_refused(tmp_path: Path) -> None:
    from generate_helpers import EchoAdapter

    out = tmp_path / "a.jsonl"
    _run(out, question_ids=[1])
    with pytest.raises(OwlEvalError, match="generation"):
        run_generation("echo", load_options=LoadOptions(), config=GenerationConfig(max_new_tokens=99), out=out, adapter=EchoAdapter())
    result = run_generation("echo", load_options=LoadOptions(), config=GenerationConfig(max_new_tokens=99), out=out, adapter=EchoAdapter(), overwrite=True, question_ids=[2])
    assert [a.question_id for a in read_answer_file(out, load_questions()).answers] == [2] and result.resumed == 0


def test_corrupt_answers_file_is_not_resumed(tmp_path: Path) -> None:
    out = tmp_path / "a.jsonl"
    out.write_text("garbage\n")
    with pytest.raises(OwlEvalError, match="cannot be resumed"):
        _run(out)
    assert out.read_text() == "garbage\n"


def test_question_id_parsing() -> None:
    assert parse_question_ids("1,3-5, 9") == [1, 3, 4, 5, 9]
    with pytest.raises(OwlEvalError):
        parse_question_ids("5-x")


def test_cli_generate_with_answers_file_end_to_end(tmp_path: Path, published_answers_dir: Path) -> None:
    source = published_answers_dir / "llava-13b.jsonl"
    out = tmp_path / "replay.jsonl"
    args = ["generate", "--model", "answers-file", "--checkpoint", str(source), "--out", str(out), "--batch-size", "8"]
    first = runner.invoke(app, [*args, "--limit", "10"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, args)
    assert second.exit_code == 0 and "72 answers generated, 10 already there" in second.output
    replayed = [json.loads(line) for line in out.read_text().splitlines()]
    original = {json.loads(line)["question_id"]: json.loads(line)["answer"] for line in source.read_text().splitlines()}
    assert {r["question_id"]: r["answer"] for r in replayed} == original
    assert runner.invoke(app, ["answers", "check", str(out)]).exit_code == 0


def test_cli_unknown_model_lists_the_available_ones(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "--model", "nope", "--out", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 1 and "unknown model 'nope'" in result.output and "answers-file" in result.output


def test_overwrite_keeps_the_old_file_when_the_model_fails_to_load(tmp_path: Path) -> None:
    out = tmp_path / "a.jsonl"
    _run(out, question_ids=[1, 2])
    before = out.read_bytes()
    with pytest.raises(OwlEvalError, match="not found"):
        run_generation("answers-file", load_options=LoadOptions(checkpoint=str(tmp_path / "missing.jsonl")),
                       config=GenerationConfig(), out=out, overwrite=True)
    assert out.read_bytes() == before


def test_corrupt_provenance_file_is_named(tmp_path: Path) -> None:
    out = tmp_path / "a.jsonl"
    result, _ = _run(out, question_ids=[1])
    result.meta_path.write_text("{ not json")
    with pytest.raises(OwlEvalError, match=r"a\.jsonl\.meta\.json: not valid JSON"):
        _run(out, question_ids=[1, 2])
    assert len(read_answer_file(out, load_questions()).answers) == 1
