"""The report's "Annotators" section: the annotator table, each annotator's grade distribution (the stacked-bar
chart of the score tables, one bar per annotator) and the scores with and without the QC exclusions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from owleval.report.render_format import ci, num, pct, stacked_chart
from owleval.records.grades import GRADE_LETTERS

if TYPE_CHECKING:
    from owleval.report.build import Report


def _share(x: Any) -> str:
    return pct(x, 0)


def annotator_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """annotators.csv rows as display text ("–" where blank)."""
    rows = []
    for r in table.to_dict("records"):
        rows.append(
            {
                "annotator": str(r["annotator"]),
                "n_grades": r["n_grades"],
                "gold": "–" if not r["gold_n"] or pd.isna(r["gold_n"]) else f"{_share(r['gold_exact'])} / {_share(r['gold_within_one'])} / {num(r['gold_mae'])} (n={int(r['gold_n'])})",
                "checks": "–" if pd.isna(r["checks_n"]) or not r["checks_n"] else f"{int(r['checks_failed'])} of {int(r['checks_n'])}",
                "retest": "–" if pd.isna(r["retest_n"]) or not r["retest_n"] else f"{_share(r['retest_same'])} (n={int(r['retest_n'])})",
                "kappa": f"{num(r['kappa_w'])} {ci(r['kappa_ci_low'], r['kappa_ci_high'], num)}",
                "seconds": "–" if pd.isna(r["median_seconds"]) else f"{float(r['median_seconds']):.0f}",
                "fast": _share(r["fast_share"]),
                "run": "–" if pd.isna(r["longest_run"]) else str(int(r["longest_run"])),
                "flags": str(r["qc_flags"] or ""),
            }
        )
    return rows


def distribution_chart(details: pd.DataFrame) -> dict[str, Any] | None:
    """One stacked A-D bar per person (regular grades), reusing the score tables' chart."""
    people = details[details["n_grades"] > 0]
    people = people[~people["annotator"].astype(str).str.startswith("judge:")]
    if people.empty:
        return None
    frame = pd.DataFrame({"model": people["annotator"].astype(str), "n": people["n_grades"].astype(int)})
    for g in GRADE_LETTERS:
        frame[f"share_{g}"] = people[f"dist_share_{g}"].to_numpy()
        frame[g] = (frame[f"share_{g}"] * frame["n"]).round().astype(int)
    frame["acceptable"] = frame["share_A"] + frame["share_B"]
    frame["acceptable_ci_low"] = frame["acceptable_ci_high"] = float("nan")
    chart = stacked_chart(frame, "Grades given, per annotator (regular items)")
    for row, tv in zip(chart["rows"], people["dist_tv_distance"], strict=True):
        row["note"] = f"{row['note'].split('A+B')[0]}TV to others {num(tv)}"
    return chart


def distribution_rows(details: pd.DataFrame) -> list[dict[str, Any]]:
    people = details[(details["n_grades"] > 0) & ~details["annotator"].astype(str).str.startswith("judge:")]
    return [
        {"annotator": str(r["annotator"]), "n": int(r["n_grades"]), "shares": {g: _share(r[f"dist_share_{g}"]) for g in GRADE_LETTERS},
         "tv": num(r["dist_tv_distance"])}
        for r in people.to_dict("records")
    ]  # fmt: skip


def compare_rows(compare: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for r in compare.to_dict("records"):
        fmt = num if r["metric"] == "mean_score" else pct
        rows.append(
            {
                "model": str(r["model"]),
                "metric": r["metric"],
                "first": f"{fmt(r['estimate_1'])} {ci(r['ci_low_1'], r['ci_high_1'], fmt)} (n={r['n_human_1']})",
                "second": f"{fmt(r['estimate_2'])} {ci(r['ci_low_2'], r['ci_high_2'], fmt)} (n={r['n_human_2']})",
            }
        )
    return rows


def annotators_context(report: Report) -> dict[str, Any] | None:
    if "annotators" not in report.tables:
        return None
    qc = report.meta.get("qc", {})
    compare = report.qc_compare
    return {
        "rows": annotator_rows(report.tables["annotators"]),
        "chart": distribution_chart(report.qc_details) if report.qc_details is not None else None,
        "distribution": distribution_rows(report.qc_details) if report.qc_details is not None else [],
        "rules": qc.get("rules", []),
        "mode": qc.get("mode"),
        "applied": qc.get("rules_applied", True),
        "excluded": qc.get("excluded", []),
        "gold_source": qc.get("gold_source"),
        "compare": compare_rows(compare) if compare is not None else None,
        "compare_labels": compare.attrs.get("labels", ("", "")) if compare is not None else None,
    }
