"""`owleval report`: score tables with CIs, agreement, pairwise tests, leaderboard, charts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from owleval.errors import OwlEvalError

if TYPE_CHECKING:
    import pandas as pd
    from rich.table import Table

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
    judge: Annotated[
        Optional[Path],
        typer.Option("--judge", help="grades.csv of `owleval judge` (or its folder): adds judge-vs-human agreement and PPI scores"),
    ] = None,
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
    from owleval.report.grades import is_sqlite, read_grades
    from owleval.report.judge import read_judge, resolve_judge_path, sampling_info
    from owleval.report.render import score_rows

    chosen = parse_formats(formats)
    check_rule(combine)
    target = out if out is not None else default_reports_dir() / grades.stem
    check_out_dir(target, overwrite)
    if legacy is not None and not legacy.is_file():
        raise OwlEvalError(f"--legacy {legacy}: no such file")
    if judge is not None:
        resolve_judge_path(judge)  # a missing file fails before any work
    questions = load_questions(data)
    models = answer_models(answers, questions) if answers is not None else None
    frame = read_grades(grades, questions, models=models, models_origin=str(answers))
    judged = None
    if judge is not None:
        judged = read_judge(judge, questions, models=set(frame["model_id"]), models_origin=f"{grades} (the models people graded)")
    from_db = is_sqlite(grades)
    sampling = sampling_info(grades, from_db, frame) if judged is not None or from_db else None
    report = build_report(
        frame, questions, source=str(grades), rule=combine, n_boot=bootstrap, seed=seed, legacy_path=legacy, judge=judged, sampling=sampling
    )
    written = write_folder(target, render_files(report, chosen), overwrite=overwrite)
    console = Console()
    table = Table(title=f"OwlEval: {report.meta['n_answers']} answers, data set {report.meta['dataset_version']} ({combine})")
    for col in ("model", "n", "A", "B", "C", "D", "acceptable [95% CI]", "mean [95% CI]"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in score_rows(report.tables["summary"]):
        table.add_row(Text(str(r["model"])), str(r["n"]), *(str(r[g]) for g in "ABCD"), r["acceptable_text"], r["mean_text"])
    console.print(table)
    if "ppi" in report.tables:
        console.print(ppi_terminal_table(report.tables["ppi"]))
    console.print(Text(f"wrote {len(written)} files to {target}"))


def ppi_terminal_table(ppi: pd.DataFrame) -> Table:
    """The PPI estimates beside the human-only and judge-only ones, for the terminal."""
    from rich.table import Table
    from rich.text import Text

    from owleval.report.render import ci, num, pct

    table = Table(title="Human-anchored scores (PPI++ with the judge; 95% CLT intervals)")
    for col in ("model", "metric", "n human", "n judge", "human only [95% CI]", "PPI [95% CI]", "judge only"):
        table.add_column(col, justify="left" if col in ("model", "metric") else "right")
    for r in ppi.to_dict("records"):
        fmt = pct if r["metric"] == "acceptable" else num
        table.add_row(
            Text(str(r["model"])),
            r["metric"],
            str(r["n_human"]),
            str(r["n_judge"]),
            f"{fmt(r['human_only_estimate'])} {ci(r['human_only_ci_low'], r['human_only_ci_high'], fmt)}",
            f"{fmt(r['estimate'])} {ci(r['ci_low'], r['ci_high'], fmt)}",
            fmt(r["judge_only_estimate"]),
        )
    return table


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)
