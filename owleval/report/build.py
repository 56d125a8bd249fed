"""The report pipeline: grades -> combined observations -> every table, then all files written at once.

Everything is computed before anything is written, and the files are staged in a temporary folder beside the
output and moved into place in one rename, so an error leaves no half-written report behind.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from owleval.csvio import frame_to_csv
from owleval.errors import OwlEvalError
from owleval.fileio import temp_dir_beside
from owleval.items import regular_grades
from owleval.questions import Question
from owleval.report import agreement, combine, compare, correlation, estimands, finite, ppi, ranks, scores, tables
from owleval.stats import CI_LEVEL

if TYPE_CHECKING:
    from owleval.report.judge import JudgeInput
    from owleval.report.qc import QCResult
    from owleval.records.votes import JudgeVotes

FORMATS = ("md", "html", "csv")
#: CSV tables in the order the report presents them
CSV_TABLES = (
    "scores", "agreement", "summary", "summary_single_turn", "summary_multi_turn", "by_ability", "pairwise", "leaderboard", "correlation",
    "judge_agreement", "judge_confusion", "ppi",
    "arena", "arena_pairs", "arena_adjacent", "arena_agreement",
    "annotators", "scores_without_qc", "voters", "arena_without_qc",
)  # fmt: skip


#: a folder holding one of these was written by `owleval report` or `owleval legacy`: --overwrite may replace it
OUTPUT_MARKERS = ("report_meta.json", "legacy.json")


@dataclass
class Report:
    """Everything the renderers need: the validated grades (for comments), the tables and the run's facts."""

    grades: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    meta: dict[str, Any]
    legacy_corpus: pd.DataFrame | None = None
    #: with --judge: per-model coverage (human / judge / both / unparsed / failed) and the worst disagreements
    judge_coverage: pd.DataFrame | None = None
    judge_disagreements: pd.DataFrame | None = None
    #: annotator QC: the table's figures in full (grade shares for the chart) and the scores with and without exclusions
    qc_details: pd.DataFrame | None = None
    qc_compare: pd.DataFrame | None = None


def dataset_version() -> str:
    """The data-set digest from the shipped manifest ('unknown' when no manifest ships with this install)."""
    try:
        from owleval.manifest import load_manifest

        return load_manifest().digest
    except (OwlEvalError, FileNotFoundError, ModuleNotFoundError, OSError):
        return "unknown"


def parse_formats(spec: str) -> list[str]:
    names = [s.strip().lower() for s in spec.split(",") if s.strip()]
    bad = [n for n in names if n not in FORMATS]
    if bad or not names:
        raise OwlEvalError(f"unknown format(s) {bad or spec!r}; choose from {', '.join(FORMATS)}")
    return [f for f in FORMATS if f in names]


UNIFORM_DESIGN = (
    "each model's human-graded answers are taken as a simple random sample of its answers (equal probabilities, without "
    "replacement). `study create --sample` stratifies by turn type with proportional allocation, which is self-weighting up "
    "to rounding: it is analysed as a simple random sample, not weighted by stratum, whose variance is at least the stratified one"
)
ACTIVE_DESIGN = (
    "active sampling (`study create --design active`): Poisson sampling with the study's stored inclusion probabilities pi_i "
    "(growing with the judge's uncertainty, floored, within turn-type strata); the inverse-probability-weighted PPI estimator "
    "(Zrnic & Candes 2024) in ratio form, with the Poisson-design variance sum (1 - pi) / pi^2 e^2 / N^2 of its residuals"
)


def _study_probabilities(sampling: dict[str, Any] | None, source: str, human: pd.DataFrame, judge_values: pd.DataFrame,
                         judge: JudgeInput, questions: Sequence[Question],
                         answers: dict[str, Collection[int]] | None = None) -> dict[str, dict[int, float]] | None:  # fmt: skip
    """The active design's checked inclusion probabilities (None for a uniform design or grades from a CSV)."""
    if sampling is None or sampling.get("design") is None:
        return None
    from owleval.report.active import study_probabilities

    keys = ["model_id", "question_id"]
    parts = [human[keys], judge_values[keys]] + ([judge.missing[keys]] if judge.missing is not None and len(judge.missing) else [])
    if answers is not None:  # every answer PPI counts needs its probability
        parts.append(pd.DataFrame([(m, int(q)) for m in set(human["model_id"]) for q in answers.get(m, ())], columns=keys))
    turn = {q.question_id: q.turn_type for q in questions}
    return study_probabilities(sampling["design"], source, human[keys], pd.concat(parts, ignore_index=True), turn)


def build_report(
    grades: pd.DataFrame,
    questions: Sequence[Question],
    *,
    source: str,
    rule: str = "median",
    n_boot: int = 2000,
    seed: int = 0,
    legacy_path: Path | None = None,
    judge: JudgeInput | Sequence[JudgeInput] | None = None,
    sampling: dict[str, Any] | None = None,
    answers: dict[str, Collection[int]] | None = None,
) -> Report:
    """Every table of the report from validated grades (see :func:`grades.read_grades`).

    ``judge``: an LLM judge's grades (:func:`judge.read_judge`), or several judges' (combined as one predictor,
    :mod:`multijudge`), adding agreement with the humans and PPI scores;
    ``sampling``: how the human-graded answers were chosen (:func:`judge.sampling_info`); ``answers``: model ->
    question ids of the answer files (--answers), so PPI's N counts every answer.
    """
    combine.check_rule(rule)
    if n_boot < 0:
        raise OwlEvalError("--bootstrap must be 0 or more")
    grades = regular_grades(grades)  # special items (gold, checks, retests) never count as grades
    legacy = correlation.read_legacy_csv(legacy_path) if legacy_path is not None else None
    units = combine.combine_grades(grades, rule)
    models = tables.model_order(units)
    out = tables.build_score_tables(units, questions, n_boot=n_boot, seed=seed, models=models)
    info = tables.question_info(questions)
    per_answer = combine.answer_scores(grades, rule)
    out["pairwise"] = compare.pairwise_table(per_answer, info, models, n_boot=n_boot, seed=seed)
    out["leaderboard"] = compare.leaderboard_table(per_answer, info, models, n_boot=n_boot, seed=seed)
    out["agreement"] = agreement.agreement_table(grades)
    legacy_corpus = None
    if legacy is not None:
        answers = correlation.answer_rows(legacy)
        out["correlation"] = correlation.correlation_table(answers, per_answer, info, n_boot=n_boot, seed=seed, source=str(legacy_path))
        legacy_corpus = correlation.legacy_corpus(legacy, models)
    coverage = worst = None
    judge_meta = None
    judge_only = None
    if judge is not None:
        from owleval.report import judge as judging
        from owleval.report import multijudge

        judges = [judge] if not isinstance(judge, (list, tuple)) else list(judge)
        names = multijudge.judge_names([j.path for j in judges])
        judge = judges[0] if len(judges) == 1 else multijudge.combined_input(judges, names)
        agreement_parts, confusion_parts = [], []
        for name, one in [*zip(names, judges, strict=True), *([(multijudge.COMBINED, judge)] if len(judges) > 1 else [])]:
            one_pairs = judging.pair_answers(grades, one.grades)
            if one_pairs.empty:
                raise OwlEvalError(f"{one.path}: the judge graded none of the answers people graded; nothing anchors its grades")
            agreement_parts.append(judging.agreement_table(one_pairs, info, models, n_boot=n_boot, seed=seed).assign(judge=name))
            confusion_parts.append(judging.confusion_table(one_pairs).assign(judge=name))
        shown = multijudge.COMBINED if len(judges) > 1 else names[0]
        out["judge_agreement"] = _judge_first(pd.concat(agreement_parts, ignore_index=True))
        out["judge_confusion"] = _judge_first(pd.concat(confusion_parts, ignore_index=True))
        pairs = judging.pair_answers(grades, judge.grades)
        human_values, judge_values = ppi.human_values(grades, rule), ppi.judge_values(judge.grades)
        probabilities = _study_probabilities(sampling, source, human_values, judge_values, judge, questions, answers)
        out["ppi"] = estimands.ppi_table(
            human_values, judge_values, models, info,
            summary_questions=units["question_id"].tolist(), n_boot=n_boot, seed=seed, missing=judge.missing,
            probabilities=probabilities, answers=answers,
        )  # fmt: skip
        judge_only = scores.judge_only_models(ppi.judge_values(judge.grades), models)
        coverage = judging.coverage_table(grades, judge, models)
        worst = judging.disagreements(pairs)
        judge_meta = {
            "name": shown,
            "judges": [{"name": name, "source": str(one.path), "annotator": one.annotator, "n_grades": int(len(one.grades)), "counts": one.counts}
                       for name, one in zip(names, judges, strict=True)],
            "judge_combination": multijudge.COMBINATION_RULE if len(judges) > 1 else "one judge: its own values",
            "source": ", ".join(str(one.path) for one in judges),
            "annotator": judge.annotator,
            "meta_file": str(judge.meta_path) if judge.meta_path else None,
            "settings": judge.settings,
            "n_grades": int(len(judge.grades)),
            "n_both": int(len(pairs)),
            "counts": judge.counts,
            "missing_listed": judge.missing is not None,
            "unparsed": None if coverage["unparsed"].isna().any() else int(coverage["unparsed"].sum()),
            "failed": None if coverage["failed"].isna().any() else int(coverage["failed"].sum()),
            "comparison_rule": "humans: each answer's lower-median grade (whatever --combine is); judge: its one grade",
            "ppi_rule": ppi.HUMAN_VALUE_RULES[rule],
            "ppi_alpha": ppi.PPI_ALPHA,
            "soft_scores": int(judge.grades["judge_score"].notna().sum()) if "judge_score" in judge.grades.columns else 0,
            "estimands": estimands.ESTIMANDS,
            "lambda_rule": estimands.LAMBDA_RULE,
            "stand_in_rule": estimands.STAND_IN_RULE,
            "min_n_interval": estimands.MIN_N_INTERVAL,
            "n_rule": "N = every answer in --answers (those without a judge grade keep the stand-in value)" if answers is not None
            else "N = the answers the judge graded, people graded or the judge's meta.json lists (no --answers given)",
            "sample_variance_rule": finite.VARIANCE_RULE,
            "sampling_design": ACTIVE_DESIGN if probabilities is not None else UNIFORM_DESIGN,
        }
    replicates = tables.score_replicates(units, questions, models, n_boot=n_boot, seed=seed) if "ppi" not in out else None
    out["scores"] = scores.scores_table(out["summary"], out.get("ppi"), judge_only, replicates=replicates, n_draws=n_boot, seed=seed)
    ratings_per_answer = grades.groupby(["model_id", "question_id"]).size()
    meta = {
        "title": "OwlEval report",
        "generated_at": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "dataset_version": dataset_version(),
        "owleval_version": _owleval_version(),
        "grades_source": source,
        "legacy_source": str(legacy_path) if legacy_path else None,
        "legacy": _legacy_meta(legacy_path),
        "combine": rule,
        "combine_rule": combine.COMBINE_RULES[rule],
        "pairing_rule": combine.PAIRING_RULES[rule],
        "bootstrap": n_boot,
        "seed": seed,
        "ci_level": CI_LEVEL,
        "n_ratings": int(len(grades)),
        "n_answers": int(len(ratings_per_answer)),
        "n_models": len(models),
        "n_questions": int(grades["question_id"].nunique()),
        "annotators": sorted(grades["annotator"].unique().tolist()),
        "ratings_per_answer_min": int(ratings_per_answer.min()),
        "ratings_per_answer_max": int(ratings_per_answer.max()),
        "bt_prior": compare.BT_PRIOR,
        "judge": judge_meta,
        "judge_combination": judge_meta["judge_combination"] if judge_meta else None,
        "sampling": sampling,
        "single_pass_models": [],  # models whose answers came from a kit's single-pass task (the command fills it in)
        "ranks": {
            "rank": "scores.csv: 1 + the number of models of that metric whose interval lies wholly above (conservative: "
            "overlapping intervals share a rank); leaderboard.csv: the order of Bradley-Terry strength among ranked models",
            "rank_interval_scores": ranks.RANK_INTERVAL_RULES["normal" if "ppi" in out else "bootstrap"],
            "rank_interval_leaderboard": ranks.RANK_INTERVAL_RULES["bootstrap"],
        },
    }
    return Report(grades, out, meta, legacy_corpus, coverage, worst)


def add_qc(report: Report, result: QCResult, build: Callable[[pd.DataFrame], Report]) -> Report:
    """The annotator table, QC meta and the scores with and without the exclusions.

    ``build`` makes a report from other grades (the same settings): under exclusions it gives the scores with
    everyone (``scores_without_qc``); under ``--qc flag`` with flags it gives the scores the exclusions would give,
    shown side by side but written to no CSV.
    """
    from owleval.report.qc import qc_meta
    from owleval.quality import flagged

    report.tables["annotators"] = result.table
    report.qc_details = result.details
    report.meta["qc"] = qc_meta(result)
    other: pd.DataFrame | None = None
    if result.excluded:
        report.tables["scores_without_qc"] = build(result.everyone).tables["scores"]
        other, labels = report.tables["scores_without_qc"], ("with exclusions", "without exclusions")
    elif result.mode == "flag" and flagged(result.table):
        rest = result.everyone[~result.everyone["annotator"].isin(flagged(result.table))]
        if len(rest):
            other, labels = build(rest).tables["scores"], ("as reported (nobody excluded)", "if the flagged were excluded")
    if other is not None:
        report.qc_compare = compare_scores(report.tables["scores"], other, labels)
    return report


def compare_scores(first: pd.DataFrame, second: pd.DataFrame, labels: tuple[str, str]) -> pd.DataFrame:
    """Per model and metric: the two scores.csv estimates with their intervals, side by side."""
    keys = ["model", "metric"]
    cols = ["estimate", "ci_low", "ci_high", "n_human"]
    merged = first[keys + cols].merge(second[keys + cols], on=keys, how="outer", suffixes=("_1", "_2"))
    merged.attrs["labels"] = labels
    return merged


def add_votes(
    report: Report | None,
    questions: Sequence[Question],
    *,
    votes: pd.DataFrame | None,
    votes_source: str | None,
    judge_votes: JudgeVotes | None = None,
    against: str | None = None,
    rule: str = "median",
    n_boot: int = 2000,
    seed: int = 0,
) -> Report:
    """The pairwise-vote tables (arena.py) added to ``report``, or a report of the votes alone when it is None.

    With A-D grades as well, each human vote is also compared with the two answers' grades.
    """
    from owleval.report import arena

    if n_boot < 0:
        raise OwlEvalError("--bootstrap must be 0 or more")
    if votes is None and judge_votes is None:
        raise OwlEvalError("no votes: give --votes and/or --judge-votes")
    info = tables.question_info(questions)
    answer_scores = combine.answer_scores(report.grades, rule) if report is not None and votes is not None else None
    result = arena.build_arena(votes, judge_votes.votes if judge_votes else None, info, n_boot=n_boot, seed=seed, against=against,
                               answer_scores=answer_scores)  # fmt: skip
    result.meta.update(
        {
            "votes_source": votes_source,
            "annotators": sorted(votes["annotator"].unique().tolist()) if votes is not None else [],
            "n_questions": int(pd.concat([f["question_id"] for f in (votes, judge_votes.votes if judge_votes else None) if f is not None]).nunique()),
            "judge": None if judge_votes is None else {
                "source": str(judge_votes.path), "annotator": judge_votes.annotator,
                "meta_file": str(judge_votes.meta_path) if judge_votes.meta_path else None,
                "position_consistency": judge_votes.position_consistency,
                "position_consistency_pairs": judge_votes.consistency_pairs,
                "position_consistency_ci": list(judge_votes.consistency_ci) if judge_votes.consistency_ci else None,
            },
            "against": against,
        }
    )  # fmt: skip
    if report is None:
        meta = {
            "title": "OwlEval pairwise report",
            "generated_at": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "dataset_version": dataset_version(),
            "owleval_version": _owleval_version(),
            "bootstrap": n_boot,
            "seed": seed,
            "ci_level": CI_LEVEL,
            "votes_only": True,
        }
        report = Report(pd.DataFrame(columns=["annotator", "model_id", "question_id", "grade", "comment"]), {}, meta)
    report.tables.update(result.tables)
    report.meta["arena"] = result.meta
    return report


def _judge_first(table: pd.DataFrame) -> pd.DataFrame:
    """The ``judge`` column first (judge_agreement.csv and judge_confusion.csv hold one block per judge)."""
    return table[["judge", *[c for c in table.columns if c != "judge"]]]


def _legacy_meta(legacy_path: Path | None) -> dict[str, Any] | None:
    """references rule and CIDEr variant from the legacy.json that `owleval legacy` writes beside legacy.csv."""
    if legacy_path is None:
        return None
    try:
        doc = json.loads(legacy_path.with_name("legacy.json").read_text(encoding="utf-8"))
        return {"references_rule": str(doc.get("references_rule", "")), "cider_variant": str(doc.get("cider_variant") or "")}
    except (OSError, ValueError, AttributeError):
        return {"references_rule": "unknown (no legacy.json beside the CSV)", "cider_variant": "unknown"}


def _owleval_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("owleval")
    except PackageNotFoundError:  # a checkout used without installing it
        return "unknown"


def render_files(report: Report, formats: Collection[str]) -> dict[str, str]:
    """File name -> content for every requested format (report_meta.json always)."""
    from owleval.report import render

    files: dict[str, str] = {"report_meta.json": json.dumps(report.meta, indent=2) + "\n"}
    if "csv" in formats:
        for name in CSV_TABLES:
            if name in report.tables:
                files[f"{name}.csv"] = frame_to_csv(report.tables[name])
    files.update(render.render_documents(report, formats))
    return files


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse an output folder that holds files, unless --overwrite and an earlier owleval run wrote them.

    --overwrite replaces the whole folder, so a mistyped ``--out ~/paper`` must not delete someone's work.
    """
    if out.exists() and not out.is_dir():
        raise OwlEvalError(f"{out} exists and is not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise OwlEvalError(f"{out} already holds files; pass --overwrite to replace it, or choose another --out")
    if not any((out / name).is_file() for name in OUTPUT_MARKERS):
        raise OwlEvalError(
            f"{out} holds files that no owleval report or legacy run wrote (no {' or '.join(OUTPUT_MARKERS)}); "
            "--overwrite replaces only such folders: choose another --out"
        )


def write_folder(out: Path, files: dict[str, str], *, overwrite: bool = False) -> list[Path]:
    """Write ``files`` as the folder ``out`` in one step: staged beside it, then renamed into place."""
    check_out_dir(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = temp_dir_beside(out)
    old: Path | None = None
    try:
        for name, text in files.items():
            with open(stage / name, "w", encoding="utf-8", newline="") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
        if out.exists():
            old = temp_dir_beside(out, suffix=".old")
            os.replace(out, old / out.name)
        os.replace(stage, out)
    except BaseException:
        if old is not None and not out.exists():
            os.replace(old / out.name, out)
        shutil.rmtree(stage, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return [out / name for name in files]
