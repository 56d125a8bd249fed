"""Help that reads well, for every command, at 80 and 120 columns: no ``<bool>`` beside a flag, no ``{name}`` in the
usage line, one example that parses as the command line it claims to be, and every default shown."""

from __future__ import annotations

import functools
import re
import shlex

import pytest
import typer
from typer.testing import CliRunner

from owleval.cli import app
from owleval.cli_help import has_example, unwrap, walk_commands
from tests.test_docs_commands import check

COMMANDS = list(walk_commands(typer.main.get_command(app)))
_BOX = re.compile(r"[│╭╮╰╯─]")


@functools.cache
def _help(path: tuple[str, ...], width: int) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    return result.output


def _squeezed(text: str) -> str:
    """The help without box lines and without any whitespace, so text wrapped inside a table cell reads whole."""
    return re.sub(r"\s+", "", _BOX.sub("", text))


def _example_lines(help_text: str) -> list[str]:
    lines = []
    for line in help_text.splitlines():
        found = re.search(r"(owleval\s.*)$", line)
        if found and (re.match(r"\s*([A-Z][a-z]+:\s*)?owleval\s", line)):
            lines += [c for c in re.split(r"\s+;\s+", found.group(1)) if c.strip()]
    return lines


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_help_reads_well(path: tuple[str, ...], command: object) -> None:
    for width in (80, 120):
        text = _help(path, width)
        assert "<bool>" not in text
        usage = next(line for line in text.splitlines() if "Usage:" in line)
        assert "{" not in usage and "}" not in usage, usage
        assert "Example" in text, f"{' '.join(path)} --help at {width} columns shows no example"
    help_text = command.help or ""  # type: ignore[attr-defined]
    assert has_example(help_text)
    examples = _example_lines(help_text)
    assert examples, help_text
    for line in examples:
        args = shlex.split(line)
        assert args[: len(path) + 1] == ["owleval", *path], f"the example of `owleval {' '.join(path)}` runs another command: {line}"
        assert check(args) == [], line


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_every_default_is_shown(path: tuple[str, ...], command: object) -> None:
    ctx = command.context_class(command, info_name="owleval")  # type: ignore[attr-defined]
    shown = []
    for param in command.params:  # type: ignore[attr-defined]
        if param.param_type_name != "option" or param.is_flag and not param.secondary_opts:
            continue
        _, help_text = param.get_help_record(ctx)
        if param.default not in (None, "") or isinstance(param.show_default, str):  # typer shows no empty default
            assert "[default: " in help_text, f"{' '.join(path)} {param.opts[0]}: no default shown"
            shown.append(re.search(r"\[default: [^;\]]*", help_text).group(0))  # a range is shown apart in the rich panel
    for width in (80, 120):
        squeezed = _squeezed(_help(path, width))
        for default in shown:
            assert _squeezed(default) in squeezed, f"{' '.join(path)} at {width} columns: {default} is not shown"


def test_report_and_legacy_show_where_they_write_and_read() -> None:
    for command in ("report", "legacy"):
        text = _squeezed(_help((command,), 80))
        assert "[default:(./reports/" in text
        assert "[default:($OWLEVAL_DATA,elsetheinstalledset)]" in text


def test_rate_help_names_both_screens() -> None:
    text = " ".join(_help(("rate",), 120).split())
    assert "A-D grading screen" in text and "pairwise voting screen" in text


def test_unwrap_joins_wrapped_prose_and_keeps_example_lines() -> None:
    text = "First line\n    goes on here.\n\n    Example: owleval models\n    Sampled: owleval models openai\n      indented stays\n    "
    assert unwrap(text) == "First line goes on here.\n\nExample: owleval models\nSampled: owleval models openai\n  indented stays"
