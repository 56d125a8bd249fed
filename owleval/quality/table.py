"""The annotator table: one row per person (and one per LLM judge, ``judge:<name>``) with every QC figure and the
names of the rules that fired. Importable without Streamlit and fast enough for a live Admin page."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from owleval.quality import agreement, gold as gold_mod, signals
from owleval.items import CHECK_MODEL, REGULAR, SCORES, with_item_columns
from owleval.quality.rules import Rule, fired, resolve_rules

TABLE_COLUMNS = (
    "annotator", "n_grades", "gold_n", "gold_exact", "gold_within_one", "gold_mae", "checks_n", "checks_failed", "retest_n",
    "retest_same", "kappa_w", "kappa_ci_low", "kappa_ci_high", "median_seconds", "fast_share", "longest_run", "qc_flags",
)  # fmt: skip


@dataclass
class AnnotatorQC:
    """table: the annotators.csv columns; details: the same rows with the figures behind them (kappa_n, words per
    second, grade shares, distance to the others' distribution); rules: the rules applied."""

    table: pd.DataFrame
    details: pd.DataFrame
    rules: tuple[Rule, ...]


def _prepared(grades: pd.DataFrame) -> pd.DataFrame:
    frame = with_item_columns(grades)
    frame["grade"] = frame["grade"].astype(str).str.strip().str.upper()
    frame = frame[frame["grade"].isin(SCORES)]
    frame["question_id"] = frame["question_id"].astype(int)
    return frame.assign(score=frame["grade"].map(SCORES).astype(int))


def annotator_qc(
    grades: pd.DataFrame,
    *,
    gold: pd.DataFrame | None = None,
    judges: pd.DataFrame | None = None,
    rules: Iterable[Rule] | Iterable[str] | Mapping[str, Any] | None = None,
    answers: Mapping[str, Mapping[int, str]] | None = None,
    clusters: Mapping[int, str] | None = None,
    n_boot: int = agreement.N_BOOT,
    seed: int = 0,
) -> AnnotatorQC:
    """Every figure of the annotator table, with the details behind it (see :func:`annotator_table`)."""
    rule_set = _rules(rules)
    frame = _prepared(grades)
    people = sorted(frame["annotator"].unique().tolist())
    if not people:  # nothing graded yet (a new study on the Admin page): the columns and no row
        empty = pd.DataFrame(columns=list(TABLE_COLUMNS))
        return AnnotatorQC(empty, empty.copy(), rule_set)
    regular = frame[(frame["item_kind"] == REGULAR) & (frame["model_id"] != CHECK_MODEL)]
    gold_grades = _gold_frame(gold) if gold is not None else gold_mod.gold_from_rows(frame)
    events = signals.timed_events(frame, answers)
    judge_frame = _prepared(judges) if judges is not None and len(judges) else None
    judge_names = sorted(judge_frame["annotator"].unique().tolist()) if judge_frame is not None else []
    details = pd.DataFrame(index=pd.Index(people + judge_names, name="annotator"))
    details["n_grades"] = regular.groupby("annotator").size().reindex(details.index)
    if judge_frame is not None:
        details.loc[judge_names, "n_grades"] = judge_frame.groupby("annotator").size().reindex(judge_names).to_numpy()
    details["n_grades"] = details["n_grades"].fillna(0).astype(int)
    parts = [
        gold_mod.gold_figures(frame, gold_grades, people),
        gold_mod.check_figures(frame, people),
        signals.retest_figures(frame, people),
        signals.speed_figures(events, people),
    ]
    for part in parts:
        details = details.join(part, how="left")
    details["longest_run"] = signals.longest_runs(events, people).reindex(details.index)
    if judge_frame is not None and len(gold_grades):
        details.update(gold_mod.gold_figures(judge_frame.assign(item_kind=REGULAR), gold_grades, judge_names))
    images = agreement.question_images(clusters)
    details = details.join(agreement.agreement_figures(regular, judge_frame, images, n_boot=n_boot, seed=seed), how="left")
    dist = signals.grade_distribution(regular, people).set_index("annotator")
    details = details.join(dist.drop(columns="n").add_prefix("dist_"), how="left")
    details["qc_flags"] = [";".join(fired(row, rule_set)) for row in details.reset_index().to_dict("records")]
    details = details.reset_index()
    for col in ("gold_n", "checks_n", "checks_failed", "retest_n"):  # counts: 0 for people, blank for judges
        details[col] = details[col].astype("Int64") if details[col].isna().any() else details[col].astype(int)
    return AnnotatorQC(details[list(TABLE_COLUMNS)].copy(), details, rule_set)


def annotator_table(
    grades: pd.DataFrame,
    *,
    gold: pd.DataFrame | None = None,
    judges: pd.DataFrame | None = None,
    rules: Iterable[Rule] | Iterable[str] | Mapping[str, Any] | None = None,
    answers: Mapping[str, Mapping[int, str]] | None = None,
) -> pd.DataFrame:
    """annotators.csv: one row per annotator and per judge (``judge:<name>``, kappa against the people).

    ``grades``: the grades export (annotator, model_id, question_id, grade, graded_at[, item_kind, expected_grade]);
    ``gold``: gold grades (model_id, question_id, gold_grade or grade), else the expected_grade of gold/onboarding
    rows; ``judges``: judge grades in the same columns; ``rules``: Rule objects, ``NAME=THRESHOLD`` strings or a
    mapping; ``answers``: model -> question id -> answer text (for words per second). Blank (NaN) where there is
    nothing to compare.
    """
    return annotator_qc(grades, gold=gold, judges=judges, rules=rules, answers=answers).table


def _rules(rules: Iterable[Rule] | Iterable[str] | Mapping[str, Any] | None) -> tuple[Rule, ...]:
    if rules is None or isinstance(rules, Mapping):
        return resolve_rules(rules)
    items = list(rules)
    if items and all(isinstance(r, Rule) for r in items):
        return tuple(items)  # type: ignore[arg-type]
    return resolve_rules([str(r) for r in items])


def _gold_frame(gold: pd.DataFrame) -> pd.DataFrame:
    out = gold.rename(columns={"grade": "gold_grade"}) if "gold_grade" not in gold.columns else gold
    out = out[["model_id", "question_id", "gold_grade"]].copy()
    out["question_id"] = out["question_id"].astype(int)
    out["gold_grade"] = out["gold_grade"].astype(str).str.strip().str.upper()
    return out


def flagged(table: pd.DataFrame) -> list[str]:
    """People (not judges) with at least one rule fired."""
    mask = table["qc_flags"].fillna("").astype(str).ne("") & ~table["annotator"].astype(str).str.startswith("judge:")
    return table.loc[mask, "annotator"].tolist()


__all__ = ["TABLE_COLUMNS", "AnnotatorQC", "annotator_qc", "annotator_table", "flagged"]
