"""`owleval report`: score tables with CIs, agreement, pairwise tests, leaderboard, charts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from owleval.errors import OwlEvalError

if TYPE_CHECKING:
    from owleval.questions import Question


def default_reports_dir() -> Path:
    """reports/ at the repository root in a checkout, else ./reports in the current folder."""
    from owleval.paths import checkout_root

    root = checkout_root()
    return (root / "reports") if root is not None else Path.cwd() / "reports"


def answer_models(answers: Path, questions: Sequence[Question]) -> set[str]:
    """The model names held by the answer files under ``answers`` (validated)."""
    from owleval.report.legacy import load_model_answers

    return set(load_model_answers(answers, questions))


def report_command(
    grades: Annotated[Path, typer.Option("--grades", help="grades CSV (annotator, model_id, question_id, grade, ...) or grading database (.sqlite)")],
    answers: Annotated[Optional[Path], typer.Option("--answers", help="answer files/folder: every graded model must be among them")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="output folder [default: reports/<grades file name>]")] = None,
    formats: Annotated[str, typer.Option("--format", help="comma-separated: md, html, csv")] = "md,html,csv",
    combine: Annotated[str, typer.Option("--combine", help="median: one median grade per answer; all: count every rating")] = "median",
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=0, help="bootstrap resamples for the CIs")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="seed of the bootstrap")] = 0,
    legacy: Annotated[Optional[Path], typer.Option("--legacy", help="legacy.csv from `owleval legacy`: adds metric-vs-human rank correlations")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="data-set folder [default: OWLEVAL_DATA or the installed one]")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing output folder")] = False,
) -> None:
    """Score tables (all, single-turn, multi-turn, per ability), agreement, pairwise tests and a leaderboard."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from owleval.questions import load_questions
    from owleval.report.build import build_report, check_out_dir, parse_formats, render_files, write_folder
    from owleval.report.combine import check_rule
    from owleval.report.grades import read_grades
    from owleval.report.render import score_rows

    chosen = parse_formats(formats)
    check_rule(combine)
    target = out if out is not None else default_reports_dir() / grades.stem
    check_out_dir(target, overwrite)
    if legacy is not None and not legacy.is_file():
        raise OwlEvalError(f"--legacy {legacy}: no such file")
    questions = load_questions(data)
    models = answer_models(answers, questions) if answers is not None else None
    frame = read_grades(grades, questions, models=models, models_origin=str(answers))
    report = build_report(frame, questions, source=str(grades), rule=combine, n_boot=bootstrap, seed=seed, legacy_path=legacy)
    written = write_folder(target, render_files(report, chosen), overwrite=overwrite)
    console = Console()
    table = Table(title=f"OwlEval: {report.meta['n_answers']} answers, data set {report.meta['dataset_version']} ({combine})")
    for col in ("model", "n", "A", "B", "C", "D", "acceptable [95% CI]", "mean [95% CI]"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in score_rows(report.tables["summary"]):
        table.add_row(Text(str(r["model"])), str(r["n"]), *(str(r[g]) for g in "ABCD"), r["acceptable_text"], r["mean_text"])
    console.print(table)
    console.print(Text(f"wrote {len(written)} files to {target}"))


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)
