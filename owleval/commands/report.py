"""`owleval report`: score tables with CIs, agreement, pairwise tests, leaderboard, charts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from owleval.console import print_table
from owleval.errors import OwlEvalError

if TYPE_CHECKING:
    import pandas as pd
    from rich.table import Table

    from owleval.questions import Question
    from owleval.report.build import Report


def default_reports_dir() -> Path:
    """./reports in the current folder, whatever the install (a checkout is never written into from elsewhere)."""
    return Path.cwd() / "reports"


def report_command(
    grades: Annotated[
        Optional[Path], typer.Option("--grades", help="grades CSV (annotator, model_id, question_id, grade, ...) or grading database (.sqlite)")
    ] = None,
    answers: Annotated[Optional[Path], typer.Option("--answers", help="answer files/folder: every graded model must be among them")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder.", show_default="./reports/<grades or votes file name>")] = None,
    formats: Annotated[str, typer.Option("--format", help="comma-separated: md, html, csv")] = "md,html,csv",
    combine: Annotated[str, typer.Option("--combine", help="median: one median grade per answer; all: count every rating; ds: Dawid-Skene posterior per answer (mean score, P(A or B))")] = "median",
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=0, help="bootstrap resamples for the CIs")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="seed of the bootstrap")] = 0,
    legacy: Annotated[Optional[Path], typer.Option("--legacy", help="legacy.csv from `owleval legacy`: adds metric-vs-human rank correlations")] = None,
    judge: Annotated[
        Optional[list[Path]],
        typer.Option("--judge", help="grades.csv of `owleval judge` (or its folder): adds judge-vs-human agreement and PPI scores; "
                     "repeat it for several judges (each named by its folder), used together as one predictor (their mean)"),
    ] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="Data-set folder.", show_default="$OWLEVAL_DATA, else the installed set")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing output folder")] = False,
    votes: Annotated[
        Optional[Path], typer.Option("--votes", help="votes.csv of a pairwise study: adds win rates and Bradley-Terry rankings from the votes")
    ] = None,
    judge_votes: Annotated[
        Optional[Path],
        typer.Option("--judge-votes", help="votes.csv of `owleval judge --pairwise` (or its folder): adds the judge's ranking and the human-anchored (PPI) one"),
    ] = None,
    against: Annotated[Optional[str], typer.Option("--against", help="baseline model: the reference of the PPI ranking")] = None,
    qc: Annotated[
        str, typer.Option("--qc", help="annotator QC: flag (report the rules that fire, change nothing), exclude (drop flagged annotators' grades), off")
    ] = "flag",
    qc_rule: Annotated[
        Optional[list[str]], typer.Option("--qc-rule", help="override a QC rule: NAME=THRESHOLD or NAME=off (repeatable; see annotator-qc-report guide)")
    ] = None,
    exclude_annotators: Annotated[Optional[str], typer.Option("--exclude-annotators", help="comma-separated annotators whose grades and votes are dropped by hand")] = None,
    gold: Annotated[
        Optional[Path],
        typer.Option("--gold", help="gold file: question_id, model_id, grade[, note] (A-D) or question_id, model_a, model_b, winner (--votes) [default: the expected grades of gold rows]"),
    ] = None,
    gold_counts: Annotated[
        bool, typer.Option("--gold-counts", help="count the expert's gold grade as one more human grade of its answer (refused for a sampled study)")
    ] = False,
) -> None:
    """Score tables (all, single-turn, multi-turn, per ability), agreement, pairwise tests and a leaderboard;
    with --votes, rankings from pairwise votes (people's, the judge's and human-anchored).

    Example: owleval report --grades grades.csv --answers answers/ --out reports/first
    """
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from owleval.questions import load_questions
    from owleval.items import regular_grades
    from owleval.report.build import Report, add_qc, build_report, check_out_dir, parse_formats, render_files, write_folder
    from owleval.report.combine import check_rule
    from owleval.report.grades import is_sqlite, read_grades
    from owleval.report.judge import check_answer_texts, read_judge, resolve_judge_path, sampling_info
    from owleval.report.render_format import count_text, score_rows

    from owleval.report.qc import check_mode

    chosen = parse_formats(formats)
    check_rule(combine)
    check_mode(qc)
    if gold is not None and not gold.is_file():
        raise OwlEvalError(f"--gold {gold}: no such file")
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
        from owleval.records.votes import resolve_judge_votes

        resolve_judge_votes(judge_votes)  # a missing file fails before any work
    qc_options = {"mode": qc, "rule_specs": list(qc_rule or []), "exclude": exclude_annotators, "gold": gold}
    if grades is None:
        _votes_report(votes, judge_votes, against, answers=answers, data=data, target=target, formats=chosen, bootstrap=bootstrap, seed=seed,
                      overwrite=overwrite, qc_options=qc_options)  # fmt: skip
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
    import pandas as pd

    from owleval.quality.gold import gold_kind
    from owleval.report.qc import parse_exclusions, refuse_gold_counts_if_sampled, run_qc

    sampling = sampling_info(grades, from_db, regular_grades(frame)) if judged is not None or from_db else None
    if gold_counts:
        refuse_gold_counts_if_sampled(sampling_info(grades, from_db) if sampling is None else sampling, str(grades))
    checked = run_qc(
        frame, mode=qc, rule_specs=list(qc_rule or []), exclude_by_hand=parse_exclusions(exclude_annotators, _rater_names(frame, votes, questions)),
        gold_path=gold if gold is not None and gold_kind(gold) == "grades" else None, gold_counts=gold_counts,
        judges=pd.concat([j.grades for j in judged], ignore_index=True) if judged else None, answers=answer_texts, images={q.question_id: q.image for q in questions},
        seed=seed,
    )  # fmt: skip

    def build(graded: pd.DataFrame) -> Report:
        return build_report(
            graded, questions, source=str(grades), rule=combine, n_boot=bootstrap, seed=seed, legacy_path=legacy, judge=judged, sampling=sampling,
            answers={m: set(texts) for m, texts in answer_texts.items()} if answer_texts is not None else None,
        )

    report = build(checked.kept)
    add_qc(report, checked, build)
    from owleval.bridges.importing import single_pass_models

    report.meta["single_pass_models"] = single_pass_models(answers)  # imported from a kit's single-pass task
    if votes is not None:
        report = _add_votes(report, questions, votes, judge_votes, against, models, answers, rule=combine, bootstrap=bootstrap, seed=seed,
                            qc_options=qc_options)  # fmt: skip
    written = write_folder(target, render_files(report, chosen), overwrite=overwrite)
    console = Console()
    print_table(scores_terminal_table(report.tables["scores"]), console)
    table = Table(title=f"Human grades: {report.meta['n_answers']} answers, data set {report.meta['dataset_version']} ({combine})")
    _model_column(table, report.tables["summary"]["model"])
    _columns(table, ("n", "A", "B", "C", "D", "acceptable [95% CI]", "mean [95% CI]"))
    for r in score_rows(report.tables["summary"]):
        table.add_row(Text(str(r["model"])), str(r["n"]), *(count_text(r[g]) for g in "ABCD"), r["acceptable_text"], r["mean_text"])
    print_table(table, console)
    if "ppi" in report.tables:
        print_table(ppi_terminal_table(report.tables["ppi"]), console)
    if "arena" in report.tables:
        print_table(arena_terminal_table(report.tables["arena"]), console)
    if report.meta["single_pass_models"]:
        console.print(Text(f"note: {', '.join(report.meta['single_pass_models'])} answered each question alone (single-pass): "
                           "their later turns did not see the dialogue", style="yellow"))
    console.print(Text(f"wrote {len(written)} files to {target}"))


def _rater_names(frame: pd.DataFrame, votes: Path | None, questions: Sequence[Question]) -> list[str]:
    """Annotators of the grades and, with --votes, the voters: the names --exclude-annotators may give."""
    names = set(frame["annotator"])
    if votes is not None:
        from owleval.records.votes import read_votes

        names |= set(read_votes(votes, questions)["annotator"])
    return sorted(names)


def _add_votes(
    report: Report | None, questions: Sequence[Question], votes: Path, judge_votes: Path | None, against: str | None,
    models: set[str] | None, answers: Path | None, *, rule: str, bootstrap: int, seed: int, qc_options: dict,
) -> Report:  # fmt: skip
    """Read --votes / --judge-votes (checked against --answers when given), check the voters (--qc) and add their
    tables to ``report``."""
    from owleval.quality.gold import gold_kind
    from owleval.report.build import add_votes
    from owleval.report.qc import parse_exclusions, run_vote_qc, vote_qc_meta
    from owleval.records.votes import read_judge_votes, read_votes

    every_vote = read_votes(votes, questions, models=models, models_origin=str(answers))
    names = sorted(set(every_vote["annotator"]) | (set(report.grades["annotator"]) if report is not None else set()))
    by_hand = parse_exclusions(qc_options["exclude"], names)
    gold = qc_options["gold"]
    checked = run_vote_qc(every_vote, mode=qc_options["mode"], rule_specs=qc_options["rule_specs"], exclude_by_hand=by_hand,
                          gold_path=gold if gold is not None and gold_kind(gold) == "votes" else None)  # fmt: skip
    human = checked.kept
    judged = read_judge_votes(judge_votes, questions, models=models, models_origin=str(answers)) if judge_votes is not None else None
    if against is not None:
        named = set(human["model_a"]) | set(human["model_b"])
        if against not in named:
            raise OwlEvalError(f"--against {against!r}: no vote in {votes} names this model ({', '.join(sorted(named))})")
    report = add_votes(report, questions, votes=human, votes_source=str(votes), judge_votes=judged, against=against, rule=rule, n_boot=bootstrap,
                       seed=seed)  # fmt: skip
    report.tables["voters"] = checked.table
    report.meta["vote_qc"] = vote_qc_meta(checked, qc_options["mode"])
    if checked.excluded:
        from owleval.report.arena import build_arena
        from owleval.report.tables import question_info

        everyone = build_arena(checked.everyone, judged.votes if judged else None, question_info(questions), n_boot=bootstrap, seed=seed,
                               against=against)  # fmt: skip
        report.tables["arena_without_qc"] = everyone.tables["arena"]
    return report


def _votes_report(
    votes: Path, judge_votes: Path | None, against: str | None, *, answers: Path | None, data: Path | None, target: Path,
    formats: list[str], bootstrap: int, seed: int, overwrite: bool, qc_options: dict,
) -> None:  # fmt: skip
    """`owleval report --votes` without --grades: the pairwise-vote sections alone."""
    from rich.console import Console
    from rich.text import Text

    from owleval.questions import load_questions
    from owleval.report.build import render_files, write_folder

    questions = load_questions(data)
    from owleval.report.legacy import load_model_answers

    models = set(load_model_answers(answers, questions)) if answers is not None else None
    report = _add_votes(None, questions, votes, judge_votes, against, models, answers, rule="median", bootstrap=bootstrap, seed=seed,
                        qc_options=qc_options)  # fmt: skip
    written = write_folder(target, render_files(report, formats), overwrite=overwrite)
    console = Console()
    print_table(arena_terminal_table(report.tables["arena"]), console)
    console.print(Text(f"wrote {len(written)} files to {target}"))


def arena_terminal_table(arena: pd.DataFrame) -> Table:
    """arena.csv for the terminal: each source's ranking."""
    from rich.table import Table
    from rich.text import Text

    from owleval.report.render_arena import ranking_rows

    table = Table(title="Rankings from pairwise votes (arena.csv; Bradley-Terry log-odds, 95% CI)")
    _columns(table, ("source",), left=("source",))
    _columns(table, ("rank", "rank range"))
    _model_column(table, arena["model"])
    _columns(table, ("strength [95% CI]", "votes", "note"))
    for source in arena["source"].drop_duplicates():
        for r in ranking_rows(arena, source):
            table.add_row(source, r["rank_text"], r["range_text"], Text(str(r["model"])), r["text"], r["n_votes"], Text(r["note"]))
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
    _columns(table, ("rank", "rank range"))
    _model_column(table, scores["model"])
    _columns(table, ("metric", "estimate [95% CI]", "source", "n human", "n judge"), left=("metric", "source"))
    for r in scores_rows(scores):
        table.add_row(r["rank_text"], r["range_text"], Text(str(r["model"])), r["metric"], r["text"], r["source"], str(r["n_human"]), r["n_judge_text"])
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
