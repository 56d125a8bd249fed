"""The lines a new user reads: each message says what happened, once, in plain words (issue 16's small ones)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from owleval.adapters.registry import BUILTIN_ADAPTERS, get_adapter_class
from owleval.cli import app
from tests.timing import budget

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def test_report_reads_dev_null_as_an_empty_file_and_says_error_once(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", "--grades", "/dev/null", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "no such file" not in result.output and "/dev/null: error: empty file" in result.output
    empty = tmp_path / "grades.csv"
    empty.write_text("")
    result = runner.invoke(app, ["report", "--grades", str(empty), "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and f"{empty}: error: empty file" in result.output
    assert f"error: {empty}" not in result.output, "the error prefix is said once"
    missing = runner.invoke(app, ["report", "--grades", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "r")])
    assert missing.exit_code == 1 and "nope.csv: no such file" in missing.output


def test_an_unknown_model_is_refused_before_anything_loads() -> None:
    code = (
        "import sys\n"
        "from owleval.cli import app\n"
        "try:\n"
        "    app(['generate', '--model', 'nonexistent'])\n"
        "except SystemExit as exc:\n"
        "    print('EXIT', exc.code, 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=budget(120))
    assert "EXIT 1 False" in result.stdout, result.stdout + result.stderr  # refused, and torch never imported
    assert "unknown model 'nonexistent'" in result.stderr and "answers-file" in result.stderr
    assert "loading" not in result.stderr, "no loading bar for a model that does not exist"


def test_an_unknown_option_reads_as_sentences_and_points_at_models_name() -> None:
    result = runner.invoke(app, ["generate", "--model", "answers-file", "-o", "bogus=1"])
    assert result.exit_code == 1 and "loading" not in result.output
    assert "unknown option -o bogus=... for model 'answers-file'. Its options: answers (see `owleval models answers-file`)" in result.output
    typo = runner.invoke(app, ["generate", "--model", "answers-file", "-o", "answer=x.jsonl"])
    assert "for model 'answers-file' (did you mean 'answers'?). Its options: answers" in typo.output


def test_the_docs_document_every_option_of_every_built_in_adapter() -> None:
    guide = "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("**/*.md")))  # the guides
    missing = [f"{name}: -o {key}=" for name in BUILTIN_ADAPTERS for key in get_adapter_class(name).option_help
               if f"-o {key}=" not in guide]
    assert not missing, missing


def test_answers_check_counts_one_error_in_the_singular(tmp_path: Path, owl_data: Path) -> None:
    bad = tmp_path / "one.jsonl"
    line = {"image": "1.jpg", "question_id": 1, "question": "x", "model_id": "m"}  # no answer: one error
    bad.write_text(json.dumps(line) + "\n")
    result = runner.invoke(app, ["answers", "check", str(bad)])
    assert result.exit_code == 1 and f"FAIL {bad}: 1 error" in result.output and "1 errors" not in result.output


def test_models_lists_everything_whole_at_80_columns_and_models_name_gives_help_and_defaults() -> None:
    listing = runner.invoke(app, ["models"], env={"COLUMNS": "80"})
    assert listing.exit_code == 0 and "…" not in listing.output
    for name in BUILTIN_ADAPTERS:
        cls = get_adapter_class(name)
        assert cls.description in listing.output and all(key in listing.output for key in cls.option_help)
        if cls.default_checkpoint:
            assert cls.default_checkpoint in listing.output
    for name in BUILTIN_ADAPTERS:
        cls = get_adapter_class(name)
        assert set(cls.option_defaults) == set(cls.option_help), f"{name}: every option has a default (or says it is required)"
        detail = runner.invoke(app, ["models", name], env={"COLUMNS": "80"})
        assert detail.exit_code == 0 and "…" not in detail.output
        for key, help_text in cls.option_help.items():
            assert f"-o {key}=VALUE   (default: {cls.option_defaults[key]})" in detail.output and help_text in detail.output
    unknown = runner.invoke(app, ["models", "nope"])
    assert unknown.exit_code == 1 and "unknown model 'nope'; available: answers-file" in unknown.output


def test_models_output_is_whole_when_piped() -> None:
    result = subprocess.run([sys.executable, "-m", "owleval.cli", "models", "openai"], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "COLUMNS": "80"}, timeout=budget(120), cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "(default: OPENAI_API_KEY)" in result.stdout and "…" not in result.stdout
    assert get_adapter_class("openai").option_help["response_format"] in result.stdout


def test_data_info_explains_why_the_category_counts_exceed_the_question_count(owl_data: Path) -> None:
    result = runner.invoke(app, ["data", "info", "--data", str(owl_data)], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "category field holds single_turn" in result.output
    assert "gives 20 questions both single_turn and multi_turn (the questions that open a dialogue)" in result.output
    assert "add up to more than 82" in result.output
