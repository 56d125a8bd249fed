"""``owleval grades export``: the current grades of a study as CSV (what ``owleval report`` reads)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from owleval.console import console

grades_app = typer.Typer(help="Export the grades of a study.", no_args_is_help=True)


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


def register(app: typer.Typer) -> None:
    app.add_typer(grades_app, name="grades")
