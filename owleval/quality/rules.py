"""QC rules: each compares one figure of the annotator table with a threshold in a fixed direction.

Defaults come from the anchors of existing tools (Prolific: reject after 2 failed attention checks; Potato: gold
accuracy) and from ``bench/bench_annotator_qc.py`` (see docs/guides/annotator-qc-report.md). Every threshold can be
overridden with ``NAME=THRESHOLD`` (``NAME=off`` turns a rule off); the minimum counts (``gold_min_n``,
``retest_min_n``, ``agreement_min_n``) are set the same way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from owleval.errors import OwlEvalError


@dataclass(frozen=True)
class Rule:
    """Fires on a rater when ``column`` is ``direction`` ``threshold`` ("at_least": value >= threshold; "below":
    value < threshold) and ``count_column`` is at least ``min_count``. A blank figure never fires."""

    name: str
    column: str
    direction: str
    threshold: float
    why: str
    count_column: str | None = None
    min_count: float = 0.0
    enabled: bool = True

    def fires(self, row: Mapping[str, Any]) -> bool:
        value = row.get(self.column)
        if not self.enabled or value is None or bool(pd.isna(value)):
            return False
        count = row.get(self.count_column) if self.count_column is not None else None
        if self.count_column is not None and (count is None or bool(pd.isna(count)) or not count >= self.min_count):
            return False
        return value >= self.threshold if self.direction == "at_least" else value < self.threshold

    def describe(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("gold", "gold_mae", "at_least", 0.9, "mean absolute distance to the expert's gold grades (A-D one step = 1); "
         "honest raters, lenient or harsh ones included, stay near 0.5", "gold_n", 8),
    Rule("attention", "checks_failed", "at_least", 2, "failed attention checks (Prolific asks for 2 failures before rejecting)", "checks_n", 1),
    Rule("speed", "fast_share", "at_least", 0.5, "share of grades given faster than the reading floor "
         "(max(3 s, words / 12 words per second))"),
    Rule("straight", "longest_run", "at_least", 25, "longest run of one grade in graded_at order; 25 in a row has a "
         "chance under 1 in 1,000 for an honest rater whose most common grade is 70% of their grades"),
    Rule("agreement", "kappa_ci_high", "below", 0.3, "upper end of the 95% interval of quadratic-weighted kappa against the "
         "lower median of the others: clearly below 0.3", "kappa_n", 20),
    Rule("retest", "retest_same", "below", 0.2, "share of retest items graded as the first time (a careful but noisy rater "
         "repeats about half; the bench's 6 retests a rater flag 26-50% of honest raters at 0.34, so the rule waits for 10)", "retest_n", 10),
)
#: minimum-count settings, NAME=N
MIN_COUNT_SETTINGS = {"gold_min_n": "gold", "agreement_min_n": "agreement", "retest_min_n": "retest", "attention_min_n": "attention"}


def resolve_rules(overrides: Iterable[str] | Mapping[str, Any] | None = None, *, defaults: Iterable[Rule] | None = None,
                  also_known: Iterable[str] = ()) -> tuple[Rule, ...]:  # fmt: skip
    """The ``defaults`` rules (the A-D rules unless given) with ``NAME=THRESHOLD`` overrides (or a mapping name ->
    threshold / "off"); names in ``also_known`` (another rule set's) are skipped, any other unknown name is refused."""
    rules = {r.name: r for r in (DEFAULT_RULES if defaults is None else defaults)}
    skip = set(also_known)
    if overrides is None:
        return tuple(rules.values())
    items = overrides.items() if isinstance(overrides, Mapping) else (_split(spec) for spec in overrides)
    for name, raw in items:
        text = str(raw).strip().lower()
        if name in skip and name not in rules:
            continue
        if name in MIN_COUNT_SETTINGS and MIN_COUNT_SETTINGS[name] in rules:
            target = MIN_COUNT_SETTINGS[name]
            rules[target] = replace(rules[target], min_count=_number(name, text))
        elif name in rules:
            rules[name] = replace(rules[name], enabled=False) if text == "off" else replace(rules[name], threshold=_number(name, text), enabled=True)
        else:
            known = ", ".join(sorted({*rules, *MIN_COUNT_SETTINGS, *skip}))
            raise OwlEvalError(f"--qc-rule {name}={raw}: no such rule or setting (known: {known})")
    return tuple(rules.values())


def _split(spec: str) -> tuple[str, str]:
    name, sep, value = str(spec).partition("=")
    if not sep or not name.strip() or not value.strip():
        raise OwlEvalError(f"--qc-rule {spec!r}: write NAME=THRESHOLD, e.g. gold=0.8 or straight=off")
    return name.strip().lower(), value.strip()


def _number(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise OwlEvalError(f"--qc-rule {name}={text}: the threshold must be a number (or off)") from None
    if not math.isfinite(value):
        raise OwlEvalError(f"--qc-rule {name}={text}: the threshold must be a finite number")
    return value


def fired(row: Mapping[str, Any], rules: Iterable[Rule]) -> list[str]:
    """Names of the rules that fire on one row of the annotator table."""
    return [r.name for r in rules if r.fires(row)]


def exclusions(table: pd.DataFrame, rules: Iterable[Rule]) -> list[dict[str, Any]]:
    """One record per flagged person (judge rows are never excluded): annotator, rules, and the figures they used."""
    rules = tuple(rules)
    out = []
    for row in table.to_dict("records"):
        names = [n for n in str(row.get("qc_flags") or "").split(";") if n]
        if not names or str(row["annotator"]).startswith("judge:"):
            continue
        used = {r.column for r in rules if r.name in names} | {r.count_column for r in rules if r.name in names and r.count_column}
        figures = {c: _plain(row.get(c)) for c in sorted(used)}
        out.append({"annotator": row["annotator"], "rules": names, "figures": figures})
    return out


def _plain(value: Any) -> Any:
    """A figure as JSON can hold it: None where blank (NaN, pd.NA), Python numbers for numpy ones."""
    if value is None or bool(pd.isna(value)):
        return None
    if isinstance(value, (int, float, np.number)):
        return float(value)
    return value
