"""``owleval grades export|import``: the current grades of a study as CSV (what ``owleval report`` reads), and
grades from such a CSV into a study."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rich.markup import escape

from owleval.console import console, counted

grades_app = typer.Typer(help="Export the grades of a study, or import grades into one.", no_args_is_help=True)


@grades_app.command("export")
def export(
    db: Annotated[Path | None, typer.Option("--db", help="The study file (SQLite); default: the local default study.")] = None,
    out: Annotated[Path, typer.Option("--out", help="CSV file to write.")] = Path("grades.csv"),
) -> None:
    """One row per current grade: annotator, model_id, question_id, grade, comment, graded_at, flags.

    Example: owleval grades export --db grades.sqlite --out grades.csv
    """
    from owleval.grading.default_study import default_db_path
    from owleval.grading.export import write_grades_csv

    db = db or default_db_path()
    rows = write_grades_csv(db, out)
    console.print(f"wrote {rows} grades to {out}", highlight=False)


@grades_app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(help="CSV in the export's columns (annotator, model_id, question_id, grade; comment, graded_at, flags optional).")],
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
    from owleval.grading.importer import import_grades

    summary = import_grades(db, source, create_annotators=create_annotators, data_dir=data)
    created = f"; added annotators {', '.join(summary.created)}" if summary.created else ""
    console.print(escape(f"imported {counted(summary.imported, 'grade')} into {db} ({summary.unchanged} already there, "
                         f"{summary.assignments_added} answers added to queues{created})"), highlight=False)
    print_tokens(None, {name: token for name, token in summary.created.items() if token})


def register(app: typer.Typer) -> None:
    app.add_typer(grades_app, name="grades")
