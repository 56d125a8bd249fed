"""report.md and report.html from the report's tables, through jinja2 with autoescaping on.

Model names, annotator names and comments are untrusted text: they reach the templates only as data and are
escaped there. Charts are inline SVG whose geometry is computed here (numbers only), so the HTML needs no
network and no script.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import pandas as pd

from owleval.questions import ABILITIES, GRADES
from owleval.report.compare import listed_pairs
from owleval.report.estimands import ALL_GRADED
from owleval.records.grades import GRADE_LETTERS
from owleval.report.render_format import (
    GRADE_COLORS,
    ci,
    dot_chart,
    interval_chart,
    is_missing,
    md_cell,
    num,
    pct,
    pval,
    rank_range,
    score_rows,
    stacked_chart,
)
from owleval.report.tables import TOO_FEW
from owleval.textsafety import mark_format_chars

if TYPE_CHECKING:
    import jinja2

    from owleval.report.build import Report


MAX_COMMENTS = 300


@functools.cache
def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("owleval.report", "templates"),
        autoescape=True,  # every template, .md included: untrusted names and comments are escaped
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        finalize=_visible,
    )
    env.filters["pct"] = pct
    env.filters["num"] = num
    env.filters["pval"] = pval
    env.filters["cell"] = md_cell
    return env


def _visible(value: Any) -> Any:
    """Every value a template prints, format characters (bidi controls, zero-width) shown as markers such as
    ``[U+202E]``: a name or comment cannot reorder or hide what the report says. Markup (a macro's output, already
    made of such values) is left as it is."""
    import markupsafe

    if isinstance(value, str) and not isinstance(value, markupsafe.Markup):
        return mark_format_chars(value)
    return value


def _context(report: Report) -> dict[str, Any]:
    t = report.tables
    by_ability = t["by_ability"]
    abilities = []
    for key, name in ABILITIES.items():
        part = by_ability[by_ability["ability"] == key].drop(columns="ability")
        abilities.append({"key": key, "name": name, "rows": score_rows(part), "chart": stacked_chart(part, f"({key}) {name}")})
    comments = report.grades[report.grades["comment"].astype(str).str.strip() != ""]
    agreement_rows = t["agreement"].to_dict("records")
    pairwise_listed, pairwise_summary = listed_pairs(t["pairwise"], t["leaderboard"])
    return {
        "meta": report.meta,
        "grades_legend": GRADES,
        "grade_colors": GRADE_COLORS,
        "letters": GRADE_LETTERS,
        "agreement_all": [r for r in agreement_rows if r["annotators"] == "all"],
        "agreement_pairs": [r for r in agreement_rows if r["annotators"] != "all"],
        "scores": scores_rows(t["scores"]) if "scores" in t else [],
        "summary": score_rows(t["summary"]),
        "summary_chart": stacked_chart(t["summary"], "All questions"),
        "single": score_rows(t["summary_single_turn"]),
        "single_chart": stacked_chart(t["summary_single_turn"], "Single-turn set"),
        "multi": score_rows(t["summary_multi_turn"]),
        "multi_chart": stacked_chart(t["summary_multi_turn"], "Multi-turn set"),
        "abilities": abilities,
        "pairwise": pairwise_listed.to_dict("records"),
        "pairwise_summary": pairwise_summary,
        "leaderboard": t["leaderboard"].to_dict("records"),
        "leaderboard_chart": interval_chart(t["leaderboard"], "Bradley-Terry strength (log scale)") if len(t["leaderboard"]) else None,
        "correlation": t["correlation"].to_dict("records") if "correlation" in t else None,
        "legacy_corpus": report.legacy_corpus.to_dict("records") if report.legacy_corpus is not None else None,
        "legacy_metrics": [c for c in (report.legacy_corpus.columns if report.legacy_corpus is not None else []) if c not in ("model", "n")],
        "judge": judge_context(report),
        "arena": _arena_context(report),
        "annotators": _annotators_context(report),
        "sampling": report.meta.get("sampling"),
        "comments": comments.head(MAX_COMMENTS).to_dict("records"),
        "comments_total": int(len(comments)),
        "ci": ci,
        "num": num,
        "pct": pct,
        "rank_range": rank_range,
    }


def _annotators_context(report: Report) -> dict[str, Any] | None:
    from owleval.report.render_qc import annotators_context

    return annotators_context(report)


def _arena_context(report: Report) -> dict[str, Any] | None:
    from owleval.report.render_arena import arena_context

    return arena_context(report)


#: how each judge-agreement measure is shown
JUDGE_MEASURE_LABELS = {
    "exact_agreement": "exact agreement",
    "cohen_kappa": "Cohen κ",
    "cohen_kappa_quadratic": "Cohen κ (quadratic)",
    "spearman": "Spearman ρ",
    "mean_shift": "shift (judge − human)",
}
#: metric -> (formatter, lowest and highest value of its scale)
PPI_SCALES = {"mean_score": (num, 0.0, 3.0), "acceptable": (pct, 0.0, 1.0)}


def _interval_text(estimate: Any, low: Any, high: Any, fmt: Any, note: Any = "") -> str:
    """"value [low, high]"; "value (too few)" when a note says so and there is no interval. The bounds are shown as
    the CSVs hold them: every interval is built inside its scale (a share in [0, 1], a mean score in [0, 3])."""
    if (is_missing(low) or is_missing(high)) and isinstance(note, str) and "too few" in note:
        return f"{fmt(estimate)} ({TOO_FEW})"
    return f"{fmt(estimate)} {ci(low, high, fmt)}"


def scores_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """scores.csv rows with display strings: the estimate with its CI, n and rank."""
    rows = []
    for r in table.to_dict("records"):
        fmt = PPI_SCALES[r["metric"]][0]
        text = f"{fmt(r['estimate'])} (judge only)" if r["source"] == "judge" else _interval_text(r["estimate"], r["ci_low"], r["ci_high"], fmt, r["note"])
        rows.append({**r, "text": text,
                     "rank_text": "–" if is_missing(r["rank"]) else str(int(r["rank"])),
                     "range_text": rank_range(r.get("rank_low"), r.get("rank_high")),
                     "n_judge_text": "–" if is_missing(r["n_judge"]) else str(int(r["n_judge"])),
                     "note": r["note"] if isinstance(r["note"], str) else ""})  # fmt: skip
    return rows


def ppi_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """ppi.csv rows with display strings for the headline, "these answers", human-only and judge-only estimates."""
    rows = []
    for r in table.to_dict("records"):
        fmt = PPI_SCALES[r["metric"]][0]
        note = r["note"] if isinstance(r["note"], str) else ""
        sample = ALL_GRADED if ALL_GRADED in note else ci(r["sample_ci_low"], r["sample_ci_high"], fmt)
        rows.append(
            {
                **r,
                "human_text": _interval_text(r["human_only_estimate"], r["human_only_ci_low"], r["human_only_ci_high"], fmt, "too few"),
                "ppi_text": _interval_text(r["estimate"], r["ci_low"], r["ci_high"], fmt, note),
                "sample_text": "–" if "too few" in note else sample,
                "judge_text": fmt(r["judge_only_estimate"]),
                "lambda_text": num(r["lambda"]),
                "note": note,
            }
        )
    return rows


def confusion_cells(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The human x judge counts with a shade per cell (share of the largest count), for the heat map."""
    letters = list(GRADE_LETTERS)
    counts = table[[f"judge_{g}" for g in letters]].to_numpy(dtype=float)
    top = counts.max() if counts.size and counts.max() > 0 else 1.0
    rows = []
    for g, row, total in zip(table["human_grade"], counts, table["total"], strict=True):
        cells = []
        for j, count in zip(letters, row, strict=True):
            shade = count / top
            cells.append({"judge": j, "count": int(count), "alpha": f"{0.08 + 0.82 * shade:.2f}" if count else "0", "dark": shade > 0.55,
                          "diagonal": j == g})  # fmt: skip
        rows.append({"human": g, "cells": cells, "total": int(total)})
    return rows


def judge_context(report: Report) -> dict[str, Any] | None:
    """Everything the "Judge vs humans" section shows; None without --judge."""
    meta = report.meta.get("judge")
    if meta is None:
        return None
    t = report.tables
    shown = meta.get("name")  # the judge the section shows: the combination when there are several
    agreement = t["judge_agreement"]
    confusion = t["judge_confusion"]
    if shown is not None and "judge" in agreement.columns:
        agreement, confusion = agreement[agreement["judge"] == shown], confusion[confusion["judge"] == shown]
    groups = []
    for model, part in agreement.groupby("model", sort=False):
        cells = {}
        for r in part.to_dict("records"):
            fmt = pct if r["measure"] == "exact_agreement" else (num if r["measure"] == "mean_shift" else (lambda v: num(v, 3)))
            cells[r["measure"]] = f"{fmt(r['value'])} {ci(r['ci_low'], r['ci_high'], fmt)}"
        groups.append({"model": model, "n": int(part["n"].iloc[0]), "cells": cells})
    shift = agreement[(agreement["measure"] == "mean_shift") & (agreement["model"] != "all")]
    points = [(str(r["model"]), r["value"], r["ci_low"], r["ci_high"]) for r in shift.to_dict("records")]
    coverage = report.judge_coverage.to_dict("records") if report.judge_coverage is not None else []
    worst = report.judge_disagreements
    letters = {3: "A", 2: "B", 1: "C", 0: "D"}
    return {
        "meta": meta,
        "measures": JUDGE_MEASURE_LABELS,
        "agreement": groups,
        "confusion": confusion_cells(confusion),
        "shift_chart": dot_chart(points, "Judge − human mean score, per model") if points else None,
        "coverage": coverage,
        "ppi": ppi_rows(t["ppi"]),
        "ppi_notes": [r for r in ppi_rows(t["ppi"]) if r["note"]],
        "disagreements": [
            {**r, "human_grade": letters[int(r["human"])], "judge_grade": letters[int(r["judge"])]} for r in worst.to_dict("records")
        ] if worst is not None else [],
    }


#: format name -> (file name, template)
DOCUMENTS = {"md": ("report.md", "report.md.j2"), "html": ("report.html", "report.html.j2")}


def render_documents(report: Report, formats: Collection[str]) -> dict[str, str]:
    """File name -> text of report.md and/or report.html, from one shared context."""
    wanted = [DOCUMENTS[f] for f in formats if f in DOCUMENTS]
    if not wanted:
        return {}
    if report.meta.get("votes_only"):  # `report --votes` without --grades: the pairwise-vote sections alone
        from owleval.report.render_arena import votes_only_context

        context = votes_only_context(report)
        wanted = [(name, "arena_report" + template.removeprefix("report")) for name, template in wanted]
        return {name: _environment().get_template(template).render(**context) for name, template in wanted}
    context = _context(report)
    return {name: _environment().get_template(template).render(**context) for name, template in wanted}


def render_markdown(report: Report) -> str:
    return render_documents(report, ["md"])["report.md"]


def render_html(report: Report) -> str:
    return render_documents(report, ["html"])["report.html"]
