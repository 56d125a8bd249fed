"""``owleval answers check|import``: validate answer files and import them in normalised form."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from owleval.console import console, counted, err_console
from owleval.errors import OwlEvalError, Problem
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
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List every known slip normalised (by default one line per kind, with its count).")] = False,
    published: Annotated[bool, typer.Option("--published", help="Import the six answer sets published with the data set.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace files that exist in --out.")] = False,
    data: Annotated[Optional[Path], typer.Option("--data", help="Data-set folder (default: the installed one).")] = None,
    from_kit: Annotated[Optional[str], typer.Option("--from", help="Read what a kit generated from OwlEval's exported task: lmms-eval (samples files or their output folder), vlmevalkit (prediction .xlsx/.tsv/.json or an outputs folder) or inspect (.eval logs or a log folder).")] = None,
    model_id: Annotated[Optional[str], typer.Option("--model-id", help="With --from: the model id to use instead of the kit's normalised model name (one model only).")] = None,
) -> None:
    """Validate answer files and write them normalised (fixed image names, canonical model names).

    All or nothing: if any input has an error, nothing is written.

    With --from KIT: one answers file per model found, with provenance in <model>.jsonl.meta.json (the kit, its
    version, the model and settings it recorded, the run file's sha256). A run on another data-set version, or not
    of OwlEval's exported task, is refused; a partial run is imported and its missing question ids listed. Kit model
    names become ids by dropping `key=` and turning `/` into `--` (pretrained=org/name -> org--name).

    Examples: owleval answers import --published --out answers/ ;  owleval answers import my_model.jsonl --out answers/ ;
    owleval answers import --from lmms-eval runs/ --out answers/
    """
    from owleval.answers import PUBLISHED_MODELS, answer_files_in, import_answer_files
    from owleval.questions import load_questions

    root = data or default_data_dir()
    if from_kit is not None:
        _import_from_kit(from_kit, sources or [], out, load_questions(root), model_id=model_id, overwrite=overwrite)
        return
    if model_id is not None:
        raise OwlEvalError("--model-id goes with --from (an answers file names its own model_id)")
    paths = answer_files_in(sources or [])
    if published:
        paths += [root / "answer" / name for name in PUBLISHED_MODELS]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise OwlEvalError(f"published answers not installed ({missing[0]} ...): run `owleval data fetch` first")
    if not paths:
        raise OwlEvalError("nothing to import: give answer files or --published")
    imported = import_answer_files(paths, out, load_questions(root), overwrite=overwrite)
    _report_slips([w for result in imported.values() for w in result.warnings], verbose)
    for name, result in imported.items():
        console.print(f"[green]imported[/] {result.path} -> {out / (name + '.jsonl')} ({len(result.answers)} answers)", highlight=False)


def _import_from_kit(kit: str, sources: list[Path], out: Path, questions, *, model_id: str | None, overwrite: bool) -> None:
    from owleval.bridges import read_kit_runs
    from owleval.bridges.importing import import_kit_runs

    if not sources:
        raise OwlEvalError(f"--from {kit}: give the kit's run files or output folder")
    imported = import_kit_runs(read_kit_runs(kit, sources), out, questions, model_id=model_id, overwrite=overwrite)
    for model in imported:
        run = model.runs[0]
        extent = f"all {model.total} questions" if not model.missing else f"{model.answers} of {model.total} questions"
        console.print(f"[green]imported[/] {run.run_file} -> {model.path} ({model.model_id}, {run.kit} {run.kit_version or '(version unknown)'}, "
                      f"{run.protocol}, {extent})", highlight=False)
        if model.missing:
            err_console.print(f"[yellow]partial run: {model.answers} of {model.total}; missing question ids: "
                              f"{', '.join(map(str, model.missing))}[/]", highlight=False)


#: (field, words of its message) -> the kind of a known slip, as the summary names it
KNOWN_SLIPS = {
    ("image", "wrong extension"): "image names with the wrong extension (N.png for N.jpg), the set's name used",
    ("question", "spacing or punctuation"): "question texts that differ in spacing or punctuation, the set's text used",
    ("question", "differs from question"): "question texts with a typo or split across lines, the set's text used",
}


def slip_kind(problem: Problem) -> str:
    """The kind of a warning for the summary: a known slip's name, else its message with the particulars out."""
    for (field, words), kind in KNOWN_SLIPS.items():
        if problem.field == field and words in problem.message:
            return kind
    return f"[{problem.field}] " + re.sub(r"'[^']*'|\d+", "...", problem.message) if problem.field else problem.message


def _report_slips(warnings: list[Problem], verbose: bool) -> None:
    """Known slips are normalised, not errors: one line per kind with its count, or (--verbose) every one."""
    if verbose:
        _print_problems(warnings, "yellow")
        return
    kinds = Counter(slip_kind(w) for w in warnings)
    if kinds:
        err_console.print(f"normalised {counted(len(warnings), 'slip')} (--verbose lists each):", highlight=False)
    for kind, count in kinds.most_common():
        err_console.print(f"  [yellow]{count}[/] {escape(kind)}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(answers_app, name="answers")
