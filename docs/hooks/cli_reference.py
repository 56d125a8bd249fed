"""MkDocs hook: the command reference page, generated when the site is built from the click tree of ``owleval.cli``
(the same tree, tidied the same way, that ``owleval ... --help`` prints), so it is never copied by hand."""

from __future__ import annotations

import html
import re
from typing import Any

import typer

from owleval.cli import app
from owleval.cli_help import walk_commands

#: where the generated page sits in the site (the nav names it)
PAGE = "reference/commands.md"
_EXAMPLE = re.compile(r"^(?:Examples?|[A-Z][a-z]+):\s*(owleval\s.*)$")
_CODE_SPAN = re.compile(r"(`[^`]*`)")
_MARKDOWN_SPECIALS = re.compile(r"([*_\[\]|\\])")


def on_files(files: Any, config: Any) -> Any:
    """Add the generated page to the site's files (MkDocs 1.6 hook)."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=render_reference()))
    return files


def _inline(text: str) -> str:
    """Help text as Markdown prose: code spans kept, everything else shown literally (no HTML, no emphasis)."""
    pieces = _CODE_SPAN.split(text)
    return "".join(p if p.startswith("`") else _MARKDOWN_SPECIALS.sub(r"\\\1", html.escape(p, quote=False)) for p in pieces)


def _help_blocks(help_text: str) -> list[str]:
    """Paragraphs of a command's help; example command lines become a shell code block."""
    out: list[str] = []
    for paragraph in help_text.split("\n\n"):
        prose: list[str] = []
        examples: list[str] = []
        for line in paragraph.splitlines():
            line = line.strip()
            if line in ("Example:", "Examples:"):
                continue
            found = _EXAMPLE.match(line)
            if found or (line.startswith("owleval ") and (examples or not prose)):
                examples += [c.strip() for c in re.split(r"\s+;\s+", found.group(1) if found else line) if c.strip()]
            elif line:
                prose.append(line)
        if prose:
            out.append(_inline(" ".join(prose)))
        if examples:
            out.append("```bash\n" + "\n".join(examples) + "\n```")
    return out


def _params_table(command: Any, ctx: Any) -> list[str]:
    rows = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None or getattr(param, "hidden", False):
            continue
        name, help_text = record
        rows.append(f"| `{name.strip()}` | {_inline(' '.join(help_text.split()))} |")
    return ["| Argument or option | Description |", "|---|---|", *rows] if rows else []


def render_command(path: tuple[str, ...], command: Any, ctx: Any) -> list[str]:
    """One command's section: heading, help, usage, options (and its sub-commands, for a group)."""
    title = " ".join(("owleval", *path))
    usage = " ".join([ctx.command_path, *command.collect_usage_pieces(ctx)])
    lines = [f"## `{title}`", ""]
    for block in _help_blocks(command.help or ""):
        lines += [block, ""]
    lines += ["```text", f"Usage: {usage}", "```", ""]
    subcommands = [name for name, sub in getattr(command, "commands", {}).items() if not sub.hidden]
    if subcommands:
        lines += ["Commands: " + ", ".join(f"`{title} {name}`" for name in subcommands), ""]
    table = _params_table(command, ctx)
    return lines + (table + [""] if table else [])


def render_reference() -> str:
    """The whole page: every command of the CLI, in the order ``--help`` lists them."""
    root = typer.main.get_command(app)
    lines = [
        "# Command reference",
        "",
        "Generated from the command line itself when this site is built: the same text as `owleval COMMAND --help`.",
        "",
    ]
    contexts: dict[tuple[str, ...], Any] = {}
    for path, command in walk_commands(root):
        parent = contexts.get(path[:-1]) if path else None
        ctx = command.context_class(command, info_name=path[-1] if path else "owleval", parent=parent)
        contexts[path] = ctx
        lines += render_command(path, command, ctx)
    return "\n".join(lines)
