"""The ``owleval`` command line (typer). Thin: parses options, calls the modules, prints with rich."""

from __future__ import annotations

import importlib.util

import typer
from rich.markup import escape
from typer.core import TyperGroup

from owleval.cli_help import tidy_help
from owleval.console import err_console
from owleval.errors import InputFileError, OwlEvalError


class _UserErrorsAsMessages(TyperGroup):
    """Turn user errors (:class:`OwlEvalError`, and file-system errors) from any sub-command into one red line and
    exit code 1, not a traceback. Also tidies every command's help once the tree is built (:mod:`owleval.cli_help`)."""

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        tidy_help(self)

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except (OwlEvalError, OSError) as exc:  # OSError: a path that cannot be read or written, named in the message
            if isinstance(exc, InputFileError):  # each line already reads "FILE:LINE [field]: error: ..."
                err_console.print(escape(str(exc)), style="red", highlight=False, soft_wrap=True)
            else:
                err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            ctx.exit(1)


app = typer.Typer(
    name="owleval",
    cls=_UserErrorsAsMessages,
    help="OwlEval: answer the 82 OwlEval questions with a model, grade the answers A-D by hand, report the scores.\n\n"
    "Example: owleval answers import --published --out answers/",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

def _show_version(value: bool) -> None:
    if value:
        from owleval import __version__
        from owleval.manifest import load_manifest

        typer.echo(f"owleval {__version__} (data set {load_manifest().version}, manifest {load_manifest().digest})")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", help="Show the version and exit.", callback=_show_version, is_eager=True),
) -> None:
    """OwlEval: answer the 82 OwlEval questions with a model, grade the answers A-D by hand, report the scores."""


#: each module defines ``register(app)``; a module that is not there is skipped
COMMAND_MODULES = (
    "owleval.commands.data",
    "owleval.commands.answers",
    "owleval.commands.models",
    "owleval.commands.generate",
    "owleval.commands.judge",
    "owleval.commands.study",
    "owleval.commands.grades",
    "owleval.commands.rate",
    "owleval.commands.report",
    "owleval.commands.legacy",
    "owleval.commands.export",
)

for _name in COMMAND_MODULES:
    if importlib.util.find_spec(_name) is not None:
        importlib.import_module(_name).register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
