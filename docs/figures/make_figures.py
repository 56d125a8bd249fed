"""Draw the figures of docs/statistics.md from a real `owleval report` run on simulated grades.

    python docs/figures/make_figures.py        # needs the data set installed (owleval data fetch)

Four simulated models answer the 82 questions; a judge grades every answer (right most of the time, a little
lenient); one person grades a random 20 answers per model. The report's ppi.csv then gives, per model, the
people-only interval, the PPI interval for "these answers" and the one for "questions like these", drawn as
intervals.svg (plain SVG, no plotting library). The seed is fixed, so a rerun draws the same figure.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from owleval.cli import app
from owleval.questions import load_questions

HERE = Path(__file__).resolve().parent
LETTERS = "DCBA"  # score 0..3
MODELS = {"model-a": 1.2, "model-b": 1.6, "model-c": 1.8, "model-d": 2.3}  # mean true score on 0..3
SERIES = (  # (ppi.csv columns, label, colour)
    (("human_only_estimate", "human_only_ci_low", "human_only_ci_high"), "people alone (20 answers)", "#9e9e9e"),
    (("estimate", "sample_ci_low", "sample_ci_high"), "PPI: these answers", "#1e88e5"),
    (("estimate", "ci_low", "ci_high"), "PPI: questions like these (headline)", "#d81b60"),
)


def simulate(seed: int = 0, sample: int = 20) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    qids = [q.question_id for q in load_questions()]
    human, judge = [], []
    for model, skill in MODELS.items():
        truth = np.clip(np.rint(rng.normal(skill, 0.9, len(qids))), 0, 3).astype(int)
        noisy = np.clip(truth + rng.choice([0, 0, 0, 1, -1, 1], len(qids)), 0, 3)  # right 1/2, lenient more often
        for q, t, j in zip(qids, truth, noisy, strict=True):
            judge.append(("judge:sim", model, q, LETTERS[j], "", "2024-01-01T00:00:00Z"))
        for i in rng.choice(len(qids), sample, replace=False):
            human.append(("ann", model, qids[i], LETTERS[truth[i]], "", "2024-01-01T00:00:00Z"))
    columns = ["annotator", "model_id", "question_id", "grade", "comment", "graded_at"]
    return pd.DataFrame(human, columns=columns), pd.DataFrame(judge, columns=columns)


def run_report(work: Path) -> pd.DataFrame:
    human, judge = simulate()
    human.to_csv(work / "human.csv", index=False)
    judge.to_csv(work / "judge.csv", index=False)
    result = CliRunner().invoke(app, ["report", "--grades", str(work / "human.csv"), "--judge", str(work / "judge.csv"),
                                      "--out", str(work / "report"), "--format", "csv", "--bootstrap", "2000"])
    if result.exit_code != 0:
        sys.exit(result.output)
    ppi = pd.read_csv(work / "report" / "ppi.csv")
    return ppi[ppi["metric"] == "mean_score"].set_index("model").loc[list(MODELS)]


def intervals_svg(ppi: pd.DataFrame) -> str:
    width, left, right, row_h, top = 640, 90, 20, 66, 30
    scale = (width - left - right) / 3.0
    x = lambda v: left + v * scale  # noqa: E731
    height = top + row_h * len(ppi) + 70
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="18" font-weight="bold">Mean score (A=3 ... D=0) with 95% intervals, simulated models</text>']
    for tick in range(4):
        out.append(f'<line x1="{x(tick):.1f}" y1="{top}" x2="{x(tick):.1f}" y2="{top + row_h * len(ppi)}" stroke="#e0e0e0"/>')
        out.append(f'<text x="{x(tick):.1f}" y="{top + row_h * len(ppi) + 15}" text-anchor="middle">{tick} ({LETTERS[tick]})</text>')
    for r, (model, row) in enumerate(ppi.iterrows()):
        base = top + r * row_h + 14
        out.append(f'<text x="{left - 8}" y="{base + 17}" text-anchor="end">{model}</text>')
        for k, ((est, low, high), _, colour) in enumerate(SERIES):
            y = base + k * 16
            out.append(f'<line x1="{x(row[low]):.1f}" y1="{y}" x2="{x(row[high]):.1f}" y2="{y}" stroke="{colour}" stroke-width="4"/>')
            out.append(f'<circle cx="{x(row[est]):.1f}" cy="{y}" r="4" fill="white" stroke="{colour}" stroke-width="2"/>')
    legend_y = top + row_h * len(ppi) + 38
    for k, (_, label, colour) in enumerate(SERIES):
        lx = left + k * 185 - 60
        out.append(f'<line x1="{lx}" y1="{legend_y}" x2="{lx + 18}" y2="{legend_y}" stroke="{colour}" stroke-width="4"/>')
        out.append(f'<text x="{lx + 24}" y="{legend_y + 4}">{label}</text>')
    return "\n".join([*out, "</svg>", ""])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ppi = run_report(Path(tmp))
    (HERE / "intervals.svg").write_text(intervals_svg(ppi), encoding="utf-8")
    print(ppi[["human_only_ci_low", "human_only_ci_high", "sample_ci_low", "sample_ci_high", "ci_low", "ci_high"]].round(2))


if __name__ == "__main__":
    main()
