"""Help that reads well: the tidying applied once to the click command tree that typer builds from ``owleval.cli``.

typer prints a ``<bool>`` type beside every flag and wraps a required argument in ``{name}`` on the usage line;
both are noise to a reader. The tree is also walked by the docs site's command reference (``docs/hooks``) and by
the help tests, so there is one walk.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from typing import Any

#: a line that stays on its own line: indented, or opened by one capitalised word and a colon ("Example: ...")
_OWN_LINE = re.compile(r"^(\s+\S|[A-Z][a-z]+: )")

#: the marker a command's help uses for its example lines ("Example: ..." or "Examples:" then indented lines)
EXAMPLE_MARKERS = ("Example:", "Examples:")


def walk_commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path of names below the root, command) for ``command`` and every sub-command, depth first, in help order."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        if not getattr(sub, "hidden", False):
            yield from walk_commands(sub, (*path, name))


def _usage_name(argument: Any) -> str:
    """Click's plain usage form: ``FILES...`` when required, ``[NAME]`` when not (typer writes ``{files}...``)."""
    name = (argument.metavar or argument.name or "").upper()
    name = name if argument.required else f"[{name}]"
    return f"{name}..." if argument.nargs != 1 else name


def _flag_without_type(make_help_option: Any) -> Any:
    def make(ctx: Any) -> Any:
        option = make_help_option(ctx)
        if option is not None and option.metavar is None:
            option.metavar = ""
        return option

    return make


def unwrap(help_text: str) -> str:
    """Join the lines of each paragraph that a docstring wrapped (rich markup keeps every newline, so help showed
    sentences broken mid-way); example lines and indented lines keep their own lines."""
    paragraphs = []
    for paragraph in inspect.cleandoc(help_text).split("\n\n"):
        lines: list[str] = []
        for line in paragraph.splitlines():
            if lines and not _OWN_LINE.match(line) and not _OWN_LINE.match(lines[-1]):
                lines[-1] = f"{lines[-1]} {line.strip()}"
            else:
                lines.append(line)
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def tidy_help(root: Any) -> None:
    """Drop the ``<bool>`` placeholder of flags and the braces of required arguments in usage lines, everywhere."""
    for _, command in walk_commands(root):
        if command.help:
            command.help = unwrap(command.help)
        if hasattr(command, "get_help_option"):  # --help is made afresh for each context, so tidy it as it is made
            command.get_help_option = _flag_without_type(command.get_help_option)
        for param in getattr(command, "params", []):
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""  # typer shows the metavar in place of the type; an empty one shows nothing
            elif getattr(param, "param_type_name", "") == "argument" and hasattr(param, "get_usage_pieces"):
                param.get_usage_pieces = lambda ctx, _arg=param: [_usage_name(_arg)]


def has_example(help_text: str | None) -> bool:
    """Whether a command's help carries an example line."""
    return any(marker in (help_text or "") for marker in EXAMPLE_MARKERS)
