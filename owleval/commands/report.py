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
    from owleval.report.build import Report


def default_reports_dir() -> Path:
    """reports/ at the repository root in a checkout, else ./reports in the current folder."""
    from owleval.paths import checkout_root

    root = checkout_root()
    return (root / "reports") if root is not None else Path.cwd() / "reports"


def report_command(
    grades: Annotated[
        Optional[Path], typer.Option("--grades", help="grades CSV (annotator, model_id, question_id, grade, ...) or grading database (.sqlite)")
    ] = None,
    answers: Annotated[Optional[Path], typer.Option("--answers", help="answer files/folder: every graded model must be among them")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="output folder [default: reports/<grades file name>]")] = None,
    formats: Annotated[str, typer.Option("--format", help="comma-separated: md, html, csv")] = "md,html,csv",
    combine: Annotated[str, typer.Option("--combine", help="median: one median grade per answer; all: count every rating")] = "median",
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=0, help="bootstrap resamples for the CIs")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="seed of the bootstrap")] = 0,
    legacy: Annotated[Optional[Path], typer.Option("--legacy", help="legacy.csv from `owleval legacy`: adds metric-vs-human rank correlations")] = None,
    judge: Annotated[
        Optional[list[Path]],
        typer.Option("--judge", help="grades.csv of `owleval judge` (or its folder): adds judge-vs-human agreement and PPI scores; "
                     "repeat it for several judges (each named by its folder), used together as one predictor (their mean)"),
    ] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="data-set folder [default: OWLEVAL_DATA or the installed one]")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing output folder")] = False,
    votes: Annotated[
        Optional[Path], typer.Option("--votes", help="votes.csv of a pairwise study: adds win rates and Bradley-Terry rankings from the votes")
    ] = None,
    judge_votes: Annotated[
        Optional[Path],
        typer.Option("--judge-votes", help="votes.csv of `owleval judge --pairwise` (or its folder): adds the judge's ranking and the human-anchored (PPI) one"),
    ] = None,
    against: Annotated[Optional[str], typer.Option("--against", help="baseline model: the reference of the PPI ranking")] = None,
) -> None:
    """Score tables (all, single-turn, multi-turn, per ability), agreement, pairwise tests and a leaderboard;
    with --votes, rankings from pairwise votes (people's, the judge's and human-anchored)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from owleval.questions import load_questions
    from owleval.report.build import build_report, check_out_dir, parse_formats, render_files, write_folder
    from owleval.report.combine import check_rule
    from owleval.report.grades import is_sqlite, read_grades
    from owleval.report.judge import check_answer_texts, read_judge, resolve_judge_path, sampling_info
    from owleval.report.render import score_rows

    chosen = parse_formats(formats)
    check_rule(combine)
    if grades is None and votes is None:
        raise OwlEvalError("give --grades (A-D grades) or --votes (pairwise votes), or both")
    if grades is None and (judge is not None or legacy is not None):
        raise OwlEvalError("--judge and --legacy compare with A-D grades: give --grades too")
    if judge_votes is not None and votes is None:
        raise OwlEvalError("--judge-votes needs --votes: the judge's votes are compared with people's")
    target = out if out is not None else default_reports_dir() / (grades or votes).stem
    check_out_dir(target, overwrite)
    if votes is not None and not votes.is_file():
        raise OwlEvalError(f"--votes {votes}: no such file (give the votes.csv that `owleval grades export` wrote for a pairwise study)")
    if judge_votes is not None:
        from owleval.report.votes import resolve_judge_votes

        resolve_judge_votes(judge_votes)  # a missing file fails before any work
    if grades is None:
        _votes_report(votes, judge_votes, against, answers=answers, data=data, target=target, formats=chosen, bootstrap=bootstrap, seed=seed,
                      overwrite=overwrite)  # fmt: skip
        return
    if legacy is not None and not legacy.is_file():
        raise OwlEvalError(f"--legacy {legacy}: no such file")
    judge = list(judge) if judge else None
    if judge is not None:
        for one in judge:
            resolve_judge_path(one)  # a missing file fails before any work
    questions = load_questions(data)
    from owleval.report.legacy import load_model_answers

    answer_texts = load_model_answers(answers, questions) if answers is not None else None
    models = set(answer_texts) if answer_texts is not None else None
    frame = read_grades(grades, questions, models=models, models_origin=str(answers))
    judged = None
    if judge is not None:
        # a model only the judge graded is allowed: scores.csv lists it with source "judge", no interval and no rank
        from owleval.report.build import dataset_version

        judged = [read_judge(one, questions, models=models, models_origin=str(answers), dataset_version=dataset_version()) for one in judge]
        if answer_texts is not None:
            for one in judged:
                check_answer_texts(one, answer_texts, str(answers))
    from_db = is_sqlite(grades)
    sampling = sampling_info(grades, from_db, frame) if judged is not None or from_db else None
    report = build_report(
        frame, questions, source=str(grades), rule=combine, n_boot=bootstrap, seed=seed, legacy_path=legacy, judge=judged, sampling=sampling,
        answers={m: set(texts) for m, texts in answer_texts.items()} if answer_texts is not None else None,
    )
    if votes is not None:
        report = _add_votes(report, questions, votes, judge_votes, against, models, answers, rule=combine, bootstrap=bootstrap, seed=seed)
    written = write_folder(target, render_files(report, chosen), overwrite=overwrite)
    console = Console()
    console.print(scores_terminal_table(report.tables["scores"]))
    table = Table(title=f"Human grades: {report.meta['n_answers']} answers, data set {report.meta['dataset_version']} ({combine})")
    _model_column(table, report.tables["summary"]["model"])
    _columns(table, ("n", "A", "B", "C", "D", "acceptable [95% CI]", "mean [95% CI]"))
    for r in score_rows(report.tables["summary"]):
        table.add_row(Text(str(r["model"])), str(r["n"]), *(str(r[g]) for g in "ABCD"), r["acceptable_text"], r["mean_text"])
    console.print(table)
    if "ppi" in report.tables:
        console.print(ppi_terminal_table(report.tables["ppi"]))
    if "arena" in report.tables:
        console.print(arena_terminal_table(report.tables["arena"]))
    console.print(Text(f"wrote {len(written)} files to {target}"))


def _add_votes(
    report: Report | None, questions: Sequence[Question], votes: Path, judge_votes: Path | None, against: str | None,
    models: set[str] | None, answers: Path | None, *, rule: str, bootstrap: int, seed: int,
) -> Report:  # fmt: skip
    """Read --votes / --judge-votes (checked against --answers when given) and add their tables to ``report``."""
    from owleval.report.build import add_votes
    from owleval.report.votes import read_judge_votes, read_votes

    human = read_votes(votes, questions, models=models, models_origin=str(answers))
    judged = read_judge_votes(judge_votes, questions, models=models, models_origin=str(answers)) if judge_votes is not None else None
    if against is not None:
        named = set(human["model_a"]) | set(human["model_b"])
        if against not in named:
            raise OwlEvalError(f"--against {against!r}: no vote in {votes} names this model ({', '.join(sorted(named))})")
    return add_votes(report, questions, votes=human, votes_source=str(votes), judge_votes=judged, against=against, rule=rule, n_boot=bootstrap,
                     seed=seed)  # fmt: skip


def _votes_report(
    votes: Path, judge_votes: Path | None, against: str | None, *, answers: Path | None, data: Path | None, target: Path,
    formats: list[str], bootstrap: int, seed: int, overwrite: bool,
) -> None:  # fmt: skip
    """`owleval report --votes` without --grades: the pairwise-vote sections alone."""
    from rich.console import Console
    from rich.text import Text

    from owleval.questions import load_questions
    from owleval.report.build import render_files, write_folder

    questions = load_questions(data)
    from owleval.report.legacy import load_model_answers

    models = set(load_model_answers(answers, questions)) if answers is not None else None
    report = _add_votes(None, questions, votes, judge_votes, against, models, answers, rule="median", bootstrap=bootstrap, seed=seed)
    written = write_folder(target, render_files(report, formats), overwrite=overwrite)
    console = Console()
    console.print(arena_terminal_table(report.tables["arena"]))
    console.print(Text(f"wrote {len(written)} files to {target}"))


def arena_terminal_table(arena: pd.DataFrame) -> Table:
    """arena.csv for the terminal: each source's ranking."""
    from rich.table import Table
    from rich.text import Text

    from owleval.report.render import ci, num

    table = Table(title="Rankings from pairwise votes (arena.csv; Bradley-Terry log-odds, 95% CI)")
    _columns(table, ("source",), left=("source",))
    _columns(table, ("rank",))
    _model_column(table, arena["model"])
    _columns(table, ("strength [95% CI]", "votes"))
    for r in arena.to_dict("records"):
        rank = "–" if r["rank"] != r["rank"] else str(int(r["rank"]))
        table.add_row(r["source"], rank, Text(str(r["model"])), f"{num(r['strength'])} {ci(r['ci_low'], r['ci_high'], num)}", str(r["n_votes"]))
    return table


def _model_column(table: Table, names: pd.Series) -> None:
    """A model column that shows names whole, never cut to "mplug-ow…": on one line up to 24 characters, folded
    onto more lines beyond that or in a narrow terminal."""
    width = max([len("model"), *(len(str(n)) for n in names)])
    table.add_column("model", justify="left", min_width=min(width, 24), overflow="fold")


def _columns(table: Table, names: Sequence[str], left: Sequence[str] = ()) -> None:
    """Columns whose text folds onto more lines rather than ending in "…": no number is ever cut."""
    for col in names:
        table.add_column(col, justify="left" if col in left else "right", overflow="fold")


def scores_terminal_table(scores: pd.DataFrame) -> Table:
    """scores.csv for the terminal: the numbers to quote, first."""
    from rich.table import Table
    from rich.text import Text

    from owleval.report.render import scores_rows

    table = Table(title="Scores to quote (scores.csv; 95% CI)")
    _columns(table, ("rank",))
    _model_column(table, scores["model"])
    _columns(table, ("metric", "estimate [95% CI]", "source", "n human", "n judge"), left=("metric", "source"))
    for r in scores_rows(scores):
        table.add_row(r["rank_text"], Text(str(r["model"])), r["metric"], r["text"], r["source"], str(r["n_human"]), r["n_judge_text"])
    return table


def ppi_terminal_table(ppi: pd.DataFrame) -> Table:
    """The two estimands beside the human-only and judge-only estimates, for the terminal."""
    from rich.table import Table
    from rich.text import Text

    from owleval.report.render import ppi_rows

    table = Table(title="Human-anchored scores (PPI; 95% CI)")
    _model_column(table, ppi["model"])
    _columns(table, ("metric", "n human", "n answers", "questions like these", "these answers", "human only", "judge only"), left=("metric",))
    for r in ppi_rows(ppi):
        table.add_row(Text(str(r["model"])), r["metric"], str(r["n_human"]), str(r["n_answers"]), r["ppi_text"], r["sample_text"],
                      r["human_text"], r["judge_text"])  # fmt: skip
    return table


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)
