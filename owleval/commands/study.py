"""``owleval study create|add-annotator|refresh|status``: set up a blind grading study in a SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from owleval.console import console, err_console

study_app = typer.Typer(
    help="Create and manage a grading study (a SQLite file that holds answers and grades).\n\n"
    "Example: owleval study create --db grades.sqlite --answers answers/ --annotators ann,bob",
    no_args_is_help=True,
)

DbOption = Annotated[Path, typer.Option("--db", help="The study file (SQLite).")]


def print_tokens(admin: str | None, tokens: dict[str, str]) -> None:
    """Tokens go to stdout once; they are stored only as hashes and cannot be shown again."""
    if admin:
        console.print(f"admin token: {admin}", highlight=False, soft_wrap=True)
    for name, token in tokens.items():
        console.print(f"token for {escape(name)}: {token}", highlight=False, soft_wrap=True)
    if admin or tokens:
        err_console.print("[yellow]These tokens are shown once and stored only hashed: hand each to its owner now.[/]")


@study_app.command("create")
def create(
    db: DbOption,
    answers: Annotated[list[Path], typer.Option("--answers", help="Answer files or folders of *.jsonl files (repeatable).")],
    annotators: Annotated[str, typer.Option("--annotators", help="Comma-separated annotator names; more can be added later.")] = "",
    overlap: Annotated[int | None, typer.Option("--overlap", min=1, help="Give each answer to K annotators (default: all grade all).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the assignment, each annotator's order and the --sample draw.")] = 0,
    sample_size: Annotated[
        int | None,
        typer.Option("--sample", min=1, help="Grade only K answers per model (pairwise: K items per model pair): a random sample, stratified by turn type (for --judge reports); see --design."),
    ] = None,
    sample_design: Annotated[
        str,
        typer.Option("--design", help="How --sample draws: 'uniform' (the default) or 'active' (more likely where the judge of --judgements is unsure; Poisson, about K)."),
    ] = "uniform",
    judgements: Annotated[Path | None, typer.Option("--judgements", help="--design active: the judge's grades.csv (or its folder) whose uncertainty sets the probabilities.")] = None,
    pairwise: Annotated[bool, typer.Option("--pairwise", help="A pairwise study: people vote which of two answers is better.")] = False,
    pairs: Annotated[str | None, typer.Option("--pairs", help="Pairwise: 'all' (every pair of models on every question; the default).")] = None,
    against: Annotated[str | None, typer.Option("--against", help="Pairwise: each model against this baseline model.")] = None,
    pairs_per_question: Annotated[int | None, typer.Option("--pairs-per-question", min=1, help="Pairwise: K model pairs per question, every model pair about equally often.")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Data-set folder (default: the installed one).")] = None,
    gold: Annotated[Path | None, typer.Option("--gold", help="Gold answers: a CSV of question_id, model_id, grade[, note] (answers of this study whose right grade an expert fixed), mixed blind into every queue. Pairwise: question_id, model_a, model_b, winner[, note] (votes.csv's winner words, model_a < model_b).")] = None,
    gold_rate: Annotated[float, typer.Option("--gold-rate", min=0.0, max=1.0, help="Blind gold items per annotator: max(1, round(rate x their queue length)), capped at the gold rows left.")] = 0.1,
    onboarding: Annotated[int, typer.Option("--onboarding", min=0, help="Each annotator's first K items are gold, and after each the app shows the expected grade and its note (training); needs --gold.")] = 0,
    attention_checks: Annotated[int, typer.Option("--attention-checks", min=0, help="N attention checks per annotator (instructed-response and nonsense answers, alternating), placed at random after the first few answers.")] = 0,
    retest: Annotated[int, typer.Option("--retest", min=0, help="N of each annotator's answers shown again later in their queue (test-retest).")] = 0,
) -> None:
    """Load validated answer files into a new study and print the admin token and annotator tokens once.

    Example: owleval study create --db grades.sqlite --answers answers/ --annotators ann,bob,cy --overlap 2
    Sampled: owleval study create --db sample.sqlite --answers answers/ --annotators ann,bob --sample 20 --seed 7
    Active: owleval study create --db active.sqlite --answers answers/ --annotators ann --sample 20 --design active --judgements judgements/gpt-4o/
    Pairwise: owleval study create --pairwise --against base-7b --db pairs.sqlite --answers answers/ --annotators ann,bob --sample 20
    Hired annotators: owleval study create --db hired.sqlite --answers answers/ --annotators ann,bob --gold gold.csv --onboarding 3 --attention-checks 4 --retest 5
    """
    from owleval.errors import OwlEvalError
    from owleval.study.special import QcSettings
    from owleval.report.judge import active_judge_reader
    from owleval.study.manage import create_study
    from owleval.study.pairs import design_from_flags

    names = [n for n in (part.strip() for part in annotators.split(",")) if n]
    if sample_design not in ("uniform", "active"):
        raise OwlEvalError(f"--design must be 'uniform' or 'active', got {sample_design!r}")
    if (sample_design == "active") != (judgements is not None):
        raise OwlEvalError("--design active needs --judgements DIR (the judge's grades), and --judgements is only for --design active")
    if sample_design == "active" and (pairwise or sample_size is None):
        raise OwlEvalError("--design active draws the --sample of a graded (not --pairwise) study: give --sample K")
    design = None
    if pairwise:
        design = design_from_flags(pairs, against, pairs_per_question, sample_size, seed)
        sample_size = None
    elif pairs is not None or against is not None or pairs_per_question is not None:
        raise OwlEvalError("--pairs, --against and --pairs-per-question choose the pairs of a --pairwise study; add --pairwise")
    quality = QcSettings(gold_rate=gold_rate, onboarding=onboarding, attention_checks=attention_checks, retest=retest)
    created = create_study(db, answers, annotators=names, overlap=overlap, seed=seed, data_dir=data, sample_size=sample_size,
                           pairwise=design, judgements=None if judgements is None else active_judge_reader(judgements), gold=gold, quality=quality)
    if created.pairs is not None:
        console.print(escape(f"created pairwise study {db}: {created.pairs['asked']} pair items to vote on "
                             f"({created.pairs['design']}), {created.pairs['identical']} identical pairs recorded as ties "
                             f"and not asked; models {', '.join(created.models)}; {len(names)} annotators"),
                      highlight=False, soft_wrap=True)
        print_tokens(created.admin_token, created.tokens)
        return
    total = sum(created.models.values())
    console.print(escape(f"created {db}: {total} answers of {len(created.models)} models ({', '.join(created.models)}), "
                         f"{len(names)} annotators"), highlight=False)
    if created.sample_design is not None:
        _print_design(created.sample_design)
    _print_special_items(db)
    print_tokens(created.admin_token, created.tokens)


def _print_special_items(db: Path) -> None:
    """Quality-control items per annotator, when the study has any."""
    from owleval.study.special import special_counts
    from owleval.study.store import Store

    store = Store(db)
    try:
        counts = special_counts(store)
    finally:
        store.close()
    for name, by_kind in counts.items():
        if any(by_kind.values()):
            what = ", ".join(f"{n} {kind}" for kind, n in by_kind.items() if n)
            console.print(escape(f"  {name}: {what}"), highlight=False, soft_wrap=True)


@study_app.command("add-gold")
def add_gold(
    db: DbOption,
    gold: Annotated[Path, typer.Option("--gold", help="Gold answers: a CSV of question_id, model_id, grade[, note]; in a pairwise study question_id, model_a, model_b, winner[, note].")],
    gold_rate: Annotated[float | None, typer.Option("--gold-rate", min=0.0, max=1.0, help="Replace the study's gold rate (default: keep it; 0.1 for a study made without one).")] = None,
) -> None:
    """Add gold answers to an existing study: each annotator's blind gold is topped up to max(1, round(rate x queue
    length)) items, placed at random after the answers they have graded so far.

    Example: owleval study add-gold --db grades.sqlite --gold gold.csv
    """
    from owleval.study.add_gold import add_gold as add
    from owleval.study.store import Store

    store = Store(db)
    try:
        new_rows, added = add(store, gold, gold_rate)
    finally:
        store.close()
    console.print(escape(f"added {new_rows} gold answers; blind gold items added: "
                         + (", ".join(f"{name} {count}" for name, count in added.items()) or "none (no annotators)")), highlight=False, soft_wrap=True)


def _print_design(design: dict | None) -> None:
    from owleval.study.sample import describe, model_lines

    console.print(escape(f"to grade: {describe(design)}"), highlight=False, soft_wrap=True)
    for line in model_lines(design) if design is not None else []:
        console.print(escape(f"  {line}"), highlight=False, soft_wrap=True)


@study_app.command("add-annotator")
def add_annotator(db: DbOption, name: Annotated[str, typer.Argument(help="The annotator's name.")]) -> None:
    """Add an annotator with their share of the answers and print their sign-in token once.

    Example: owleval study add-annotator --db grades.sqlite carol
    """
    from owleval.study.store import Store
    from owleval.study.manage import add_annotator as add
    from owleval.study.manage import check_name

    store = Store(db)
    name = check_name(name)  # as stored, to count what they got
    token = add(store, name)
    from owleval.study.pair_study import is_pairwise

    pairwise = is_pairwise(store.meta())
    table = "pair_assignments" if pairwise else "assignments"
    assigned = store.conn.execute(
        f"SELECT COUNT(*) FROM {table} s JOIN annotators n ON n.annotator_id = s.annotator_id WHERE n.name = ?", (name,)
    ).fetchone()[0]
    what = "pairs to vote on" if pairwise else "answers to grade"
    console.print(f"added {escape(name)} with {assigned} {what}", highlight=False)
    print_tokens(None, {name: token} if token else {})


@study_app.command("refresh")
def refresh(
    db: DbOption,
    answers: Annotated[list[Path], typer.Option("--answers", help="Regenerated answer files or folders (repeatable).")],
) -> None:
    """Load regenerated answers: unchanged answers keep their grades, changed ones must be graded again.

    Example: owleval study refresh --db grades.sqlite --answers answers/
    """
    from owleval.study.store import Store
    from owleval.study.manage import refresh_study

    s = refresh_study(Store(db), answers)
    if s.pairs is not None:
        p = s.pairs
        console.print(f"pair items: kept {p.kept}, added {p.added}, changed {p.changed} (their votes stay in history), "
                      f"retired {p.retired}; {p.identical} identical pairs are ties, not asked", highlight=False)
    console.print(f"kept {s.kept}, changed {s.changed}, added {s.added}, retired {s.retired}, restored {s.restored}; "
                  f"{s.grades_set_aside} grades belonged to changed answers and stay in history only", highlight=False)


@study_app.command("status")
def status(
    db: DbOption,
    list_sample: Annotated[
        Path | None,
        typer.Option(
            "--list-sample",
            help="Also write the drawn answers of a sampled study to this CSV (model_id, question_id, stratum, "
            "inclusion_probability), to grade them in another tool and import the grades.",
        ),
    ] = None,
) -> None:
    """Graded / assigned per annotator and per model, and how the answers to grade were chosen.

    Example: owleval study status --db grades.sqlite --list-sample drawn.csv
    """
    from owleval.study.export import progress_by, progress_frame
    from owleval.study.sample import read_design
    from owleval.study.store import Store

    store = Store(db)
    if list_sample is not None:
        _write_sample_list(db, read_design(store.meta()), list_sample)
    if _pairwise_status(store):
        return
    progress = progress_frame(store)
    _print_design(read_design(store.meta()))
    for column, title in (("annotator", "Per annotator"), ("model_id", "Per model")):
        frame = progress_by(progress, column)
        table = Table(title=title)
        for name in (column, "graded", "assigned", "done %"):
            table.add_column(name, justify="left" if name == column else "right")
        for row in frame.itertuples(index=False):
            table.add_row(escape(str(row[0])), str(row[1]), str(row[2]), f"{row[3]:.1f}")
        console.print(table)


def _write_sample_list(db: Path, design: dict | None, out: Path) -> None:
    """Write the drawn answers of a sampled study to ``out`` (refused for a study that grades every answer)."""
    from owleval.csvio import rows_to_csv
    from owleval.errors import OwlEvalError
    from owleval.fileio import atomic_write_text
    from owleval.study.sample import SAMPLE_COLUMNS, sample_rows
    from owleval.questions import load_questions

    if design is None:
        raise OwlEvalError(f"{db}: not a sampled study (made without --sample): every answer is to be graded, there is no draw to list")
    rows = sample_rows(design, load_questions())
    try:
        atomic_write_text(out, rows_to_csv(SAMPLE_COLUMNS, rows))
    except OSError as exc:
        raise OwlEvalError(f"cannot write {out}: {exc.strerror or exc}") from exc
    err_console.print(f"wrote {len(rows)} drawn answers to {escape(str(out))}", highlight=False)


def _pairwise_status(store) -> bool:
    """``study status`` of a pairwise study: voted / assigned per annotator and per model pair (False: not one)."""
    import pandas as pd

    from owleval.study.export import progress_by
    from owleval.study import pair_study as pairwise_study

    meta = store.meta()
    if not pairwise_study.is_pairwise(meta):
        return False
    console.print(escape(f"pairs: {pairwise_study.read_design(meta).describe()}; "
                         f"{pairwise_study.identical_count(store.conn)} identical pairs are ties, not asked"), highlight=False, soft_wrap=True)
    progress = pd.DataFrame(pairwise_study.progress_rows(store.conn), columns=["annotator", "model pair", "graded", "assigned"])
    for column, title in (("annotator", "Per annotator"), ("model pair", "Per model pair")):
        frame = progress_by(progress, column)
        table = Table(title=title)
        for name in (column, "voted", "assigned", "done %"):
            table.add_column(name, justify="left" if name == column else "right")
        for row in frame.itertuples(index=False):
            table.add_row(escape(str(row[0])), str(row[1]), str(row[2]), f"{row[3]:.1f}")
        console.print(table)
    return True


def register(app: typer.Typer) -> None:
    app.add_typer(study_app, name="study")
