"""Display text and chart geometry shared by the report's sections (render, render_arena, render_qc).

Numbers become text here (shares, scores, p-values, intervals, ranks) and charts become coordinates; nothing here
touches a template or untrusted text.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from owleval.records.grades import GRADE_LETTERS
from owleval.report.tables import TOO_FEW

GRADE_COLORS = {"A": "#1a9850", "B": "#91cf60", "C": "#fc8d59", "D": "#d73027"}
BAR_HEIGHT = 22
LABEL_WIDTH = 150
PLOT_WIDTH = 360
NOTE_WIDTH = 210


def is_missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA


def pct(x: Any, digits: int = 1) -> str:
    return "–" if is_missing(x) else f"{100.0 * float(x):.{digits}f}%"


def num(x: Any, digits: int = 2) -> str:
    return "–" if is_missing(x) else f"{float(x):.{digits}f}"


def pval(x: Any) -> str:
    if is_missing(x):
        return "–"
    return "<0.001" if float(x) < 0.001 else f"{float(x):.3f}"


#: backslash first, so an escape already in the text cannot swallow the ones added after it
_MD_ESCAPES = str.maketrans({"\\": "\\\\", "|": "\\|", "[": "\\[", "]": "\\]"})


def md_cell(text: Any) -> str:
    """A value shown as itself inside a Markdown table cell: one line, pipes cannot split the cell and brackets
    cannot make a link or a remote image (``![x](https://...)``) out of a model name or a comment.

    ``<``, ``>`` and ``&`` are left to the template's HTML autoescaping, which Markdown shows as the characters.
    """
    return " ".join(str(text).split()).translate(_MD_ESCAPES)


def ci(low: Any, high: Any, fmt: Any = pct) -> str:
    return "–" if is_missing(low) or is_missing(high) else f"[{fmt(low)}, {fmt(high)}]"


def is_too_few(row: dict[str, Any]) -> bool:
    return isinstance(row.get("note"), str) and TOO_FEW in row["note"]


def count_text(x: Any) -> str:
    """A count as text: whole counts as integers, expected counts (``--combine ds``) with one decimal."""
    if is_missing(x):
        return ""
    return str(int(x)) if float(x).is_integer() else f"{float(x):.1f}"


def score_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Table rows with display strings: counts with shares, acceptable and mean with their CIs."""
    rows = []
    for r in table.to_dict("records"):
        rows.append(
            {
                **r,
                "grades": {g: f"{count_text(r[g])} ({pct(r[f'share_{g}'], 0)})" for g in GRADE_LETTERS},
                "acceptable_text": f"{pct(r['acceptable'])} {ci(r['acceptable_ci_low'], r['acceptable_ci_high'])}",
                "mean_text": f"{num(r['mean_score'])} {TOO_FEW if is_too_few(r) else ci(r['mean_score_ci_low'], r['mean_score_ci_high'], num)}",
            }
        )
    return rows


def stacked_chart(table: pd.DataFrame, title: str) -> dict[str, Any]:
    """Geometry of a horizontal stacked A/B/C/D bar per model (shares of its n), with n and acceptable CI."""
    rows = []
    for i, r in enumerate(table.to_dict("records")):
        x = 0.0
        segments = []
        for g in GRADE_LETTERS:
            share = 0.0 if is_missing(r[f"share_{g}"]) else float(r[f"share_{g}"])
            width = share * PLOT_WIDTH
            segments.append({"grade": g, "x": LABEL_WIDTH + x, "width": width, "color": GRADE_COLORS[g], "count": count_text(r[g]), "share": pct(share, 0),
                             "show": width >= 26})  # fmt: skip
            x += width
        rows.append(
            {
                "label": str(r["model"]),
                "y": 28 + i * (BAR_HEIGHT + 8),
                "segments": segments,
                "note": f"n={r['n']}  A+B {pct(r['acceptable'], 0)} {ci(r['acceptable_ci_low'], r['acceptable_ci_high'], lambda v: pct(v, 0))}",
            }
        )
    return {
        "title": title,
        "width": LABEL_WIDTH + PLOT_WIDTH + NOTE_WIDTH,
        "height": 28 + len(rows) * (BAR_HEIGHT + 8) + 26,
        "bar_height": BAR_HEIGHT,
        "label_width": LABEL_WIDTH,
        "plot_width": PLOT_WIDTH,
        "rows": rows,
        "legend": [{"grade": g, "color": GRADE_COLORS[g], "x": LABEL_WIDTH + k * 90} for k, g in enumerate(GRADE_LETTERS)],
    }


def interval_chart(table: pd.DataFrame, title: str) -> dict[str, Any]:
    """Geometry of the leaderboard: each model's Bradley-Terry strength as a dot with its CI whisker."""
    points = [
        (f"{r['rank']}. {r['model']}" if not is_missing(r["rank"]) else str(r["model"]), r["strength"], r["strength_ci_low"], r["strength_ci_high"])
        for r in table.to_dict("records")
    ]
    return dot_chart(points, title)


def dot_chart(points: list[tuple[str, Any, Any, Any]], title: str) -> dict[str, Any]:
    """Geometry of (label, value, ci_low, ci_high) rows as dots with CI whiskers, and a line at 0 when in range."""
    values = np.array([[v, lo, hi] for _, v, lo, hi in points], dtype=float).reshape(-1, 3)
    finite = values[~np.isnan(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 1.0, hi + 1.0
    pad = (hi - lo) * 0.05
    lo, hi = lo - pad, hi + pad

    def sx(v: float) -> float:
        return LABEL_WIDTH + (v - lo) / (hi - lo) * PLOT_WIDTH

    rows = []
    for i, (label, value, low, high) in enumerate(points):
        if is_missing(value):
            continue
        rows.append(
            {
                "label": label,
                "y": 28 + i * (BAR_HEIGHT + 4) + BAR_HEIGHT / 2,
                "x": sx(value),
                "x0": sx(low) if not is_missing(low) else sx(value),
                "x1": sx(high) if not is_missing(high) else sx(value),
                "note": f"{num(value)} {ci(low, high, num)}",
            }
        )
    return {
        "title": title,
        "width": LABEL_WIDTH + PLOT_WIDTH + NOTE_WIDTH,
        "height": 28 + len(points) * (BAR_HEIGHT + 4) + 20,
        "label_width": LABEL_WIDTH,
        "plot_width": PLOT_WIDTH,
        "zero": sx(0.0) if lo <= 0.0 <= hi else None,
        "rows": rows,
    }


def rank_range(low: Any, high: Any) -> str:
    """A 95% rank interval as text: "1–3", "2" when it is one rank, "–" when there is none."""
    if is_missing(low) or is_missing(high):
        return "–"
    return str(int(low)) if int(low) == int(high) else f"{int(low)}–{int(high)}"
