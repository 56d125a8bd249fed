"""Every ``owleval ...`` command line in README.md and docs/**/*.md parses as click parses it: sub-commands and
flags its command has, each with a value of the option's type (``--batch-size auto`` where the option takes whole
numbers only is caught). Command lines are read from shell code blocks (backslash continuations joined, one
line per command, ``&&``, ``|`` and ``;`` split) and from inline code spans, even one that wraps onto the next line.
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from owleval.cli import app

ROOT = Path(__file__).resolve().parent.parent
SHELL_LANGS = ("", "bash", "sh", "shell", "console")
_FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
#: a code span: a run of backticks, the code, the same run (```` ```json ```` holds backticks; a span may wrap)
_INLINE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]


def command_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, command) for every ``owleval`` command in ``text``'s shell blocks and inline code."""
    def line_of(offset: int) -> int:
        return text.count("\n", 0, offset) + 1

    for fence in _FENCE.finditer(text):
        if fence.group(1) not in SHELL_LANGS or re.search("[─│▶]", fence.group(2)):  # a flow diagram
            continue
        start, pending, first = line_of(fence.start(2)), "", 0
        for n, line in enumerate(fence.group(2).splitlines()):
            first = first if pending else start + n
            if line.rstrip().endswith("\\"):  # a continuation: the command goes on on the next line
                pending += line.rstrip()[:-1] + " "
                continue
            line, pending = pending + line, ""
            yield first, line
    prose = _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for span in _INLINE.finditer(prose):
        if span.group(2).strip().startswith("owleval "):
            yield prose.count("\n", 0, span.start()) + 1, " ".join(span.group(2).split())


def invocations(line: str) -> Iterator[list[str]]:
    """The argument lists after ``owleval`` of every command of a shell line (comments, env settings dropped)."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:  # an unbalanced quote in prose: not a command
        return
    command: list[str] = []
    for token in [*tokens, ";"]:
        if token in ("&&", "||", "|", ";"):
            if command:
                yield command
            command = []
        elif command or token == "owleval" or token.endswith("/owleval"):
            command.append(token)
        elif not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", token) and token not in ("$", "time"):
            command = []  # another program's line (python, bash, pip ...)
            break
    if command:
        yield command


@functools.cache
def _root() -> Any:
    return typer.main.get_command(app)


def check(args: list[str]) -> list[str]:
    """Problems of one command's arguments as click itself parses them (``make_context``: every flag looked up in
    the command's params and its value converted to the option's type, nothing run): an unknown sub-command or flag,
    a flag without its value, a value its option cannot take. A missing required option is no problem here: prose
    names commands without all their flags (`owleval generate`)."""
    command, rest, path = _root(), list(args[1:]), ["owleval"]
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        if rest[0] not in command.commands:
            return [f"no command {rest[0]!r} in `{' '.join(path)}`"]
        path.append(rest[0])
        command = command.commands[rest.pop(0)]
    try:
        command.make_context(" ".join(path), rest)
    except Exception as exc:  # click's exceptions, from whichever copy of click typer uses
        kind = type(exc).__name__
        if kind in ("MissingParameter", "NoArgsIsHelpError", "Exit"):  # prose; `owleval data`; --help or --version
            return []
        return [f"{kind}: {exc.format_message() if hasattr(exc, 'format_message') else exc}"]
    return []


def doc_problems(path: Path, text: str) -> list[str]:
    found = []
    for line, shell in command_lines(text):
        for args in invocations(shell):
            found += [f"{path.name}:{line}: `{' '.join(args)}`: {p}" for p in check(args)]
    return found


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_documented_command_line_parses(path: Path) -> None:
    commands = [args for _, shell in command_lines(path.read_text(encoding="utf-8")) for args in invocations(shell)]
    assert path.name != "README.md" or len(commands) >= 8, "the extraction finds the README's commands"
    assert doc_problems(path, path.read_text(encoding="utf-8")) == []


def test_the_check_catches_wrong_flags_and_values() -> None:
    text = ("```bash\nowleval judge --answers a/ --judge hf \\\n    --limit many  # a comment\n"
            "OWLEVAL_X=1 owleval generate --model hf --no-such-flag && owleval data fetch --from\n```\n"
            "Run `owleval grades export\n--db s.sqlite --out g.csv --overwrite` or `owleval study launch`; `owleval judge --limit 5` too.\n")
    problems = [p.split(": ")[0] + " " + p.split(": ")[2] for p in doc_problems(Path("x.md"), text)]
    assert problems == ["x.md:2 BadParameter", "x.md:4 NoSuchOption", "x.md:4 BadOptionUsage", "x.md:7 no command 'launch' in `owleval study`"]
