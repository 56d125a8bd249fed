"""Every command and sub-command answers --help, and the command line stays light to start."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from owleval.cli import app

runner = CliRunner()


def _command_paths(command: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            paths += _command_paths(sub, (*prefix, name))
    return paths


ALL_COMMANDS = _command_paths(typer.main.get_command(app))


def test_the_main_commands_exist() -> None:
    names = {" ".join(p) for p in ALL_COMMANDS}
    assert {"data fetch", "data verify", "data info", "answers check", "answers import", "models", "generate"} <= names


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "owleval")
def test_help(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    if path:
        assert len(result.output.splitlines()) > 3


def test_import_owleval_does_not_load_torch_or_streamlit() -> None:
    code = "import sys, owleval, owleval.adapters, owleval.cli; print(sorted(m for m in ('torch', 'streamlit', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_models_lists_built_in_adapters() -> None:
    result = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "answers-file" in result.output


def test_file_system_errors_are_one_line_not_a_traceback(tmp_path) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    result = runner.invoke(app, ["answers", "import", "--published", "--out", str(blocker / "sub")])
    assert result.exit_code == 1 and "error:" in result.output and "Traceback" not in result.output


def test_version() -> None:
    from owleval import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and f"owleval {__version__}" in result.output


@pytest.mark.parametrize(("key", "closest"), [("attn_implmentation", "attn_implementation"), ("bogus_option", None)])
def test_unknown_adapter_option_is_refused_before_the_model_loads(key: str, closest: str | None, tmp_path, monkeypatch) -> None:
    from owleval.adapters.mplug_owl import MplugOwlAdapter

    def must_not_load(cls, options):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(MplugOwlAdapter, "load", classmethod(must_not_load))
    out = tmp_path / "a.jsonl"
    result = runner.invoke(app, ["generate", "--model", "mplug-owl", "-o", f"{key}=1", "--out", str(out)])
    assert result.exit_code == 1, result.output
    message = " ".join(result.stderr.split())
    assert f"unknown option -o {key}=" in message and "mplug-owl" in message
    assert all(name in message for name in MplugOwlAdapter.option_help)
    assert (f"did you mean {closest!r}" in message) if closest else "did you mean" not in message
    assert not out.exists() and not out.with_name(out.name + ".meta.json").exists()


def test_an_interrupted_run_says_what_was_kept_and_exits_130(capsys) -> None:
    from owleval.console import resumable_run_progress

    seen: list[tuple[int, int]] = []
    with pytest.raises(typer.Exit) as stopped:
        with resumable_run_progress("loading m", "generate m", "the answers so far are kept") as on_progress:
            on_progress(3, 82)
            seen.append((3, 82))
            raise KeyboardInterrupt
    assert stopped.value.exit_code == 130 and seen == [(3, 82)]
    assert "interrupted: the answers so far are kept" in capsys.readouterr().err
