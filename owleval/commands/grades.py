"""``owleval grades export|import``: the current grades of a study as CSV (what ``owleval report`` reads), and
grades from such a CSV into a study."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rich.markup import escape

from owleval.console import console, counted, err_console

grades_app = typer.Typer(
    help="Export the grades of a study, or import grades into one.\n\nExample: owleval grades export --db grades.sqlite --out grades.csv",
    no_args_is_help=True,
)


@grades_app.command("export")
def export(
    db: Annotated[Path | None, typer.Option("--db", help="The study file (SQLite); default: the local default study.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="File to write (default grades.csv; votes.csv for a pairwise study; owleval_scores.jsonl with --format inspect).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out when it exists (refused without it).")] = False,
    format_: Annotated[str, typer.Option("--format", help="csv: the current grades; inspect: one JSONL record per dialogue of --model for Inspect's precomputed_scores.")] = "csv",
    model: Annotated[str | None, typer.Option("--model", help="With --format inspect: the model whose grades to export (its model_id).")] = None,
    grades: Annotated[Path | None, typer.Option("--grades", help="With --format inspect: read grades from this CSV (e.g. a judge's grades.csv) instead of --db.")] = None,
) -> None:
    """One row per current grade: annotator, model_id, question_id, grade, comment, graded_at, flags, item_kind,
    expected_grade (item_kind: regular, gold, onboarding, attention or retest; a quality-control item's grade is a
    row of its own, expected_grade its gold or check grade).

    A pairwise study writes its current votes instead: annotator, question_id, model_a, model_b, left, winner,
    reason, voted_at, item_kind, expected_winner (winner: model_a, model_b, tie or both_bad; left: the model shown on
    the left; item_kind: regular or gold).

    --format inspect writes, for Inspect's precomputed_scores, one record per sample (dialogue) of --model:
    value {"mean_score": 0-3, "acceptable": 0|1} (numbers, never letters) and each turn's grade in metadata.

    Example: owleval grades export --db grades.sqlite --out grades.csv

    Example: owleval grades export --format inspect --model mockllm--model --db grades.sqlite --out scores.jsonl
    """
    if format_ == "inspect":
        out = out or Path("owleval_scores.jsonl")
        _refuse_existing(out, overwrite)
        _export_inspect(db, grades, model, out)
        return
    if format_ != "csv":
        from owleval.errors import OwlEvalError

        raise OwlEvalError(f"unknown --format {format_!r}; choose csv or inspect")
    from owleval.study.default_study import default_db_path
    from owleval.study.export import write_grades_csv
    from owleval.study.store import Store
    from owleval.study.pair_study import is_pairwise
    from owleval.study.votes import write_votes_csv

    if db is None:
        db = default_db_path()
        err_console.print(escape(f"no --db: exporting the default study, {db}"), highlight=False)
    store = Store(db)
    try:
        if is_pairwise(store.meta()):
            out = out or Path("votes.csv")
            _refuse_existing(out, overwrite)
            console.print(f"wrote {write_votes_csv(store, out)} votes to {out}", highlight=False)
            return
    finally:
        store.close()
    out = out or Path("grades.csv")
    _refuse_existing(out, overwrite)
    rows = write_grades_csv(db, out)
    console.print(f"wrote {rows} grades to {out}", highlight=False)


def _refuse_existing(out: Path, overwrite: bool) -> None:
    """An export never replaces a file (people's grades, a judge's, another study's) unless asked to."""
    from owleval.errors import OwlEvalError

    if out.exists() and not overwrite:
        raise OwlEvalError(f"{out} exists; pass --overwrite to replace it, or choose another --out")


def _export_inspect(db: Path | None, grades: Path | None, model: str | None, out: Path) -> None:
    from owleval.bridges.inspect_scores import format_records, score_records
    from owleval.errors import OwlEvalError
    from owleval.fileio import atomic_write_text
    from owleval.study.default_study import default_db_path
    from owleval.questions import load_questions
    from owleval.report.grades import read_grades

    if not model:
        raise OwlEvalError("--format inspect needs --model (the model_id whose grades become the log's scores)")
    if db is not None and grades is not None:
        raise OwlEvalError("give --db or --grades, not both")
    questions = load_questions()
    from owleval.items import regular_grades

    records = score_records(regular_grades(read_grades(grades or db or default_db_path(), questions)), model, questions)
    atomic_write_text(out, format_records(records))
    turns = sum(r["metadata"]["graded_turns"] for r in records)
    console.print(escape(f"wrote {counted(len(records), 'sample')} ({counted(turns, 'graded answer')}) of {model} to {out}"), highlight=False)


@grades_app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(help="CSV in the export's columns (annotator, model_id, question_id, grade; comment, graded_at, flags, item_kind, expected_grade optional); for a pairwise study, votes.csv.")],
    db: Annotated[Path, typer.Option("--db", help="The study file (SQLite) to add the grades to.")],
    create_annotators: Annotated[bool, typer.Option("--create-annotators", help="Add annotators the study does not know (with an empty queue) instead of refusing their rows.")] = False,
    data: Annotated[Path | None, typer.Option("--data", help="Data-set folder (default: the study's).")] = None,
) -> None:
    """Add grades given elsewhere (another tool, a spreadsheet, a second study) as grade events.

    The whole file is checked first, every problem named by line; nothing is written unless all rows pass.

    Each grade keeps its graded_at; an answer not yet in that annotator's queue is added to it.

    In a sampled study, a grade for an answer outside the draw is refused. Rows equal to the current grade are skipped.

    Example: owleval grades import other-grades.csv --db grades.sqlite
    """
    from owleval.commands.study import print_tokens
    from owleval.study.importer import import_grades

    if _import_votes(db, source, create_annotators):
        return
    summary = import_grades(db, source, create_annotators=create_annotators, data_dir=data)
    created = f"; added annotators {', '.join(summary.created)}" if summary.created else ""
    console.print(escape(f"imported {counted(summary.imported, 'grade')} into {db} ({summary.unchanged} already there, "
                         f"{summary.assignments_added} answers added to queues{created})"), highlight=False)
    print_tokens(None, {name: token for name, token in summary.created.items() if token})


def _import_votes(db: Path, source: Path, create_annotators: bool) -> bool:
    """``grades import`` into a pairwise study: votes.csv rows as vote events (False: not a pairwise study)."""
    from owleval.commands.study import print_tokens
    from owleval.errors import OwlEvalError
    from owleval.study.store import Store
    from owleval.study.pair_study import is_pairwise
    from owleval.study.votes import import_votes

    store = Store(db)
    try:
        if not is_pairwise(store.meta()):
            return False
        if not Path(source).exists():
            raise OwlEvalError(f"{source}: no such file")
        summary = import_votes(store, source, create_annotators=create_annotators)
    finally:
        store.close()
    created = f"; added annotators {', '.join(summary.created)}" if summary.created else ""
    console.print(escape(f"imported {counted(summary.imported, 'vote')} into {db} ({summary.unchanged} already there, "
                         f"{summary.assignments_added} pairs added to queues{created})"), highlight=False)
    print_tokens(None, {name: token for name, token in summary.created.items() if token})
    return True


def register(app: typer.Typer) -> None:
    app.add_typer(grades_app, name="grades")
