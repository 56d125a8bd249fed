"""``owleval answers check|import``: validate answer files and import them in normalised form."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from owleval.console import console, counted, err_console
from owleval.errors import OwlEvalError
from owleval.paths import default_data_dir

answers_app = typer.Typer(
    help="Check and import answer files (JSONL: image, question_id, question, answer, model_id).\n\n"
    "Example: owleval answers check answers/",
    no_args_is_help=True,
)


WARNINGS_SHOWN = 5


def _print_problems(problems: list, colour: str) -> None:
    for problem in problems:
        err_console.print(f"[{colour}]{escape(str(problem))}[/]", highlight=False)


@answers_app.command("check")
def check(
    files: Annotated[list[Path], typer.Argument(help="Answer files or folders of *.jsonl files.")],
    data: Annotated[Optional[Path], typer.Option("--data", help="Data-set folder (default: the installed one).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List every warning (by default the first few per file).")] = False,
) -> None:
    """Validate answer files against the question set; every problem is named with file, line and field.

    Exits non-zero when any file has an error. Warnings (such as N.png for N.jpg) do not fail the check;
    a partial set (fewer than 82 answers) is valid and reported as partial.

    Example: owleval answers check answers/
    """
    from owleval.answers import answer_files_in, read_answer_file
    from owleval.questions import load_questions

    questions = load_questions(data or default_data_dir())
    failed = 0
    for path in answer_files_in(files):
        result = read_answer_file(path, questions)
        warnings = result.warnings
        _print_problems(result.errors, "red")
        _print_problems(warnings if verbose else warnings[:WARNINGS_SHOWN], "yellow")
        if not verbose and len(warnings) > WARNINGS_SHOWN:
            err_console.print(f"[yellow]{path}: ... and {counted(len(warnings) - WARNINGS_SHOWN, 'more warning')} (--verbose lists them)[/]", highlight=False)
        if result.ok:
            extent = f"partial: {len(result.answers)} of {result.total_questions} questions" if result.partial else f"all {result.total_questions} questions"
            note = f", {counted(len(warnings), 'warning')}" if warnings else ""
            console.print(f"[green]ok[/] {path}: {', '.join(result.model_ids)}, {extent}{note}", highlight=False)
        else:
            failed += 1
            console.print(f"[red]FAIL[/] {path}: {counted(len(result.errors), 'error')}", highlight=False)
    if failed:
        raise typer.Exit(1)


@answers_app.command("import")
def import_(
    sources: Annotated[Optional[list[Path]], typer.Argument(help="Answer files or folders to import.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for the normalised files, one <model>.jsonl per model.")] = Path("answers"),
    published: Annotated[bool, typer.Option("--published", help="Import the six answer sets published with the data set.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace files that exist in --out.")] = False,
    data: Annotated[Optional[Path], typer.Option("--data", help="Data-set folder (default: the installed one).")] = None,
) -> None:
    """Validate answer files and write them normalised (fixed image names, canonical model names).

    All or nothing: if any input has an error, nothing is written.

    Examples: owleval answers import --published --out answers/ ;  owleval answers import my_model.jsonl --out answers/
    """
    from owleval.answers import PUBLISHED_MODELS, answer_files_in, import_answer_files
    from owleval.questions import load_questions

    root = data or default_data_dir()
    paths = answer_files_in(sources or [])
    if published:
        paths += [root / "answer" / name for name in PUBLISHED_MODELS]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise OwlEvalError(f"published answers not installed ({missing[0]} ...): run `owleval data fetch` first")
    if not paths:
        raise OwlEvalError("nothing to import: give answer files or --published")
    imported = import_answer_files(paths, out, load_questions(root), overwrite=overwrite)
    for name, result in imported.items():
        if result.warnings:
            err_console.print(f"[yellow]{result.path}: {counted(len(result.warnings), 'warning')} (see `owleval answers check -v {result.path}`)[/]", highlight=False)
        console.print(f"[green]imported[/] {result.path} -> {out / (name + '.jsonl')} ({len(result.answers)} answers)", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(answers_app, name="answers")
