"""Annotator QC in the report: the annotator table, which grades the scores count, and what the exclusions change.

``--qc flag`` (default) computes the table and flags, and changes no number; ``--qc exclude`` drops the flagged
people's grades (and writes ``scores_without_qc.csv``, the scores with everyone); ``--qc off`` applies no rule.
``--exclude-annotators`` drops people by hand under any mode. Special items (gold, onboarding, attention, retest)
never count as grades; ``--gold-counts`` adds the expert's gold grade of each gold answer as one more grade.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from owleval.errors import OwlEvalError
from owleval.quality import annotator_qc, flagged
from owleval.quality.gold import gold_from_rows, read_gold_csv
from owleval.items import REGULAR, regular_grades
from owleval.quality.rules import Rule, exclusions, resolve_rules
from owleval.records.grades import GRADE_SCORES

QC_MODES = ("flag", "exclude", "off")
#: the annotator name of the expert's gold grades under --gold-counts
GOLD_ANNOTATOR = "gold:expert"


@dataclass
class QCResult:
    """kept: the regular grades (or votes) the scores count; everyone: the same before any exclusion. One type for the
    A-D grades and the pairwise votes."""

    mode: str
    table: pd.DataFrame
    details: pd.DataFrame
    rules: tuple[Rule, ...]
    excluded: list[dict[str, Any]]
    kept: pd.DataFrame
    everyone: pd.DataFrame
    gold_source: str
    gold_counts: bool = False
    notes: list[str] = field(default_factory=list)


def parse_exclusions(spec: str | None, annotators: Sequence[str]) -> list[str]:
    """--exclude-annotators a,b: every name must be an annotator of the grades or a voter of the votes given."""
    names = [n.strip() for n in (spec or "").split(",") if n.strip()]
    unknown = [n for n in names if n not in set(annotators)]
    if unknown:
        raise OwlEvalError(f"--exclude-annotators: no grades or votes by {', '.join(map(repr, unknown))} (annotators: {', '.join(sorted(annotators))})")
    return names


def check_mode(mode: str) -> str:
    if mode not in QC_MODES:
        raise OwlEvalError(f"--qc {mode!r}: choose one of {', '.join(QC_MODES)}")
    return mode


def run_qc(
    grades: pd.DataFrame,
    *,
    mode: str = "flag",
    rule_specs: Sequence[str] = (),
    exclude_by_hand: Sequence[str] = (),
    gold_path: Path | None = None,
    gold_counts: bool = False,
    judges: pd.DataFrame | None = None,
    answers: Mapping[str, Mapping[int, str]] | None = None,
    images: Mapping[int, str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> QCResult:
    """The annotator table of validated grades (all item kinds) and the regular grades the scores count."""
    check_mode(mode)
    from owleval.quality.voters import VOTER_RULES

    rules = resolve_rules(list(rule_specs), also_known=[r.name for r in VOTER_RULES])
    applied = rules if mode != "off" else tuple(r.__class__(**{**r.describe(), "enabled": False}) for r in rules)
    gold = read_gold_csv(gold_path) if gold_path is not None else gold_from_rows(grades)
    gold_source = str(gold_path) if gold_path is not None else "expected_grade of the gold and onboarding rows"
    qc = annotator_qc(grades, gold=gold, judges=judges, rules=applied, answers=answers, clusters=images, n_boot=n_boot, seed=seed)
    everyone = regular_grades(grades)
    if gold_counts:
        everyone = pd.concat([everyone, gold_rows(gold, everyone)], ignore_index=True)
    dropped = _dropped(qc.details, applied, mode, exclude_by_hand, set(grades["annotator"]))
    kept = everyone[~everyone["annotator"].isin({d["annotator"] for d in dropped})]
    if kept.empty:
        raise OwlEvalError("every annotator's grades were excluded: nothing is left to score (see annotators.csv; --qc flag keeps them)")
    notes = []
    if mode == "flag" and flagged(qc.table):
        notes.append(f"flagged, not excluded (--qc flag): {', '.join(flagged(qc.table))}")
    return QCResult(mode, qc.table, qc.details, rules, dropped, kept.reset_index(drop=True), everyone.reset_index(drop=True), gold_source,
                    gold_counts, notes)  # fmt: skip


def gold_rows(gold: pd.DataFrame, grades: pd.DataFrame) -> pd.DataFrame:
    """The expert's gold grades as grades of annotator ``gold:expert``, for answers of the graded models only."""
    keep = gold[gold["model_id"].isin(set(grades["model_id"]))]
    return pd.DataFrame(
        {
            "annotator": GOLD_ANNOTATOR, "model_id": keep["model_id"].to_numpy(), "question_id": keep["question_id"].astype("int64").to_numpy(),
            "grade": keep["gold_grade"].to_numpy(), "score": keep["gold_grade"].map(GRADE_SCORES).astype("int64").to_numpy(), "comment": "",
            "graded_at": "", "item_kind": REGULAR, "expected_grade": "", "source_line": -1,
        }
    )  # fmt: skip


def refuse_gold_counts_if_sampled(sampling: Mapping[str, Any] | None, source: str) -> None:
    """--gold-counts is refused for a sampled study: gold answers are not part of its random draw."""
    if sampling is not None and sampling.get("design") is not None:
        raise OwlEvalError(
            f"--gold-counts: {source} is a sampled study (its answers were drawn at random for PPI and the active design); "
            "gold answers are not part of that draw, so their expert grades cannot count as human grades"
        )


def qc_meta(result: QCResult) -> dict[str, Any]:
    """report_meta.json's ``qc``: mode, every rule with its direction and threshold, every exclusion with its figures."""
    return {
        "mode": result.mode,
        "rules": [r.describe() for r in result.rules],
        "rules_applied": result.mode != "off",
        "directions": {"at_least": "fires when the figure is at least the threshold", "below": "fires when the figure is below the threshold"},
        "excluded": result.excluded,
        "flagged": flagged(result.table),
        "gold_source": result.gold_source,
        "gold_counts": result.gold_counts,
        "special_items": "gold, onboarding, attention and retest rows (and model owleval:check) never count as grades in a score",
        "n_grades_kept": int(len(result.kept)),
        "n_grades_before_exclusions": int(len(result.everyone)),
        "notes": result.notes,
    }


def _dropped(details: pd.DataFrame, applied: Sequence[Rule], mode: str, by_hand: Sequence[str], present: set[str]) -> list[dict[str, Any]]:
    """Who is excluded and why: the rules that fired (under --qc exclude) and the names given by hand."""
    dropped = exclusions(details, applied) if mode == "exclude" else []
    for name in (n for n in by_hand if n in present):
        hit = next((d for d in dropped if d["annotator"] == name), None)
        if hit is None:
            dropped.append({"annotator": name, "rules": ["by hand"], "figures": {}})
        else:
            hit["rules"].append("by hand")
    return dropped


def run_vote_qc(votes: pd.DataFrame, *, mode: str, rule_specs: Sequence[str] = (), exclude_by_hand: Sequence[str] = (),
                gold_path: Path | None = None) -> QCResult:  # fmt: skip
    """voters.csv of validated votes (all item kinds) and the regular votes the rankings count."""
    from owleval.quality.voters import VOTER_RULES, read_gold_pairs, voter_table

    check_mode(mode)
    rules = resolve_rules(list(rule_specs), defaults=VOTER_RULES, also_known=_grade_rule_names())
    applied = rules if mode != "off" else tuple(r.__class__(**{**r.describe(), "enabled": False}) for r in rules)
    gold = read_gold_pairs(gold_path) if gold_path is not None else None
    table, details = voter_table(votes, gold=gold, rules=applied)
    everyone = votes[votes["item_kind"] == REGULAR] if "item_kind" in votes.columns else votes
    dropped = _dropped(details, applied, mode, exclude_by_hand, set(votes["annotator"]))
    kept = everyone[~everyone["annotator"].isin({d["annotator"] for d in dropped})]
    if kept.empty:
        raise OwlEvalError("every voter's votes were excluded: nothing is left to rank (see voters.csv; --qc flag keeps them)")
    source = str(gold_path) if gold_path is not None else "expected_winner of the gold vote rows"
    return QCResult(mode, table, details, rules, dropped, kept.reset_index(drop=True), everyone.reset_index(drop=True), source)


def vote_qc_meta(result: QCResult, mode: str) -> dict[str, Any]:
    return {
        "mode": mode,
        "rules": [r.describe() for r in result.rules],
        "excluded": result.excluded,
        "flagged": flagged(result.table),
        "gold_source": result.gold_source,
        "special_items": "gold vote rows never count in a ranking",
        "n_votes_kept": int(len(result.kept)),
        "n_votes_before_exclusions": int(len(result.everyone)),
    }


def _grade_rule_names() -> list[str]:
    from owleval.quality.rules import DEFAULT_RULES, MIN_COUNT_SETTINGS

    return [r.name for r in DEFAULT_RULES] + list(MIN_COUNT_SETTINGS)
