"""Coverage of the human-anchored (PPI) Bradley-Terry intervals, by simulation; beside it the same intervals with
every vote counted twice (two identical half-weight rows), the construction that looks equivalent but is not.

Votes are drawn from a Bradley-Terry model with known strengths (no ties), a judge right with a given accuracy
votes on every pair item, people on a random share of them. Reports the share of 95% intervals (reference-coded
coefficients) that hold the true coefficients, and their mean width.

Run: .venv/bin/python bench/bench_ppi_bt_coverage.py [--reps 150]   (~40 s per 150 replications on a loaded machine)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from owleval.report.arena import ppi_rows  # noqa: E402
from owleval.report.ppi_logistic import ppi_logistic  # noqa: E402
from owleval.records.votes import OUTCOME_SCORE  # noqa: E402

STRENGTHS = {"m0": 0.0, "m1": 0.4, "m2": 0.8, "m3": 1.2}


def simulate(rng: np.random.Generator, n_items: int, share_people: float, accuracy: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    models = sorted(STRENGTHS)
    pairs = [(a, b) for i, a in enumerate(models) for b in models[i + 1 :]]
    k = rng.integers(0, len(pairs), n_items)
    a, b = np.array([pairs[i][0] for i in k]), np.array([pairs[i][1] for i in k])
    won = rng.random(n_items) < 1.0 / (1.0 + np.exp(-(np.vectorize(STRENGTHS.get)(a) - np.vectorize(STRENGTHS.get)(b))))
    judged = np.where(rng.random(n_items) < accuracy, won, ~won)
    cols = {"question_id": np.arange(n_items), "model_a": a, "model_b": b}
    judge = pd.DataFrame({**cols, "winner": np.where(judged, "model_a", "model_b")})
    voted = rng.random(n_items) < share_people
    human = pd.DataFrame({c: v[voted] for c, v in cols.items()} | {"winner": np.where(won[voted], "model_a", "model_b")})
    for frame in (human, judge):
        frame["outcome"] = frame["winner"].map(OUTCOME_SCORE)
    return human, judge


def doubled(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = dict(rows)
    for x, ys, w in (("x", ("y", "yhat"), "w"), ("x_unlabeled", ("yhat_unlabeled",), "w_unlabeled")):
        out[x] = np.vstack([rows[x], rows[x]])
        for y in ys:
            out[y] = np.r_[rows[y], rows[y]]
        out[w] = np.r_[rows[w], rows[w]] / 2.0
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=150)
    parser.add_argument("--accuracy", type=float, default=0.9)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    models = sorted(STRENGTHS)
    truth = np.array([STRENGTHS[m] - STRENGTHS[models[0]] for m in models[1:]])
    results: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"one row per vote (ours)": [], "every vote twice": []}
    for _ in range(args.reps):
        human, judge = simulate(rng, 1500, 0.15, args.accuracy)
        rows = ppi_rows(human, judge, models, models[0])
        for name, r in (("one row per vote (ours)", rows), ("every vote twice", doubled(rows))):
            est = ppi_logistic(r["x"], r["y"], r["yhat"], r["x_unlabeled"], r["yhat_unlabeled"], w=r["w"], w_unlabeled=r["w_unlabeled"])
            results[name].append(((est.ci_low <= truth) & (truth <= est.ci_high), est.ci_high - est.ci_low))
    print(f"{args.reps} replications, 1,500 judged pairs, 15% voted by people, judge accuracy {args.accuracy}, 95% intervals:")
    for name, got in results.items():
        hits = np.array([h for h, _ in got])
        width = np.mean([w for _, w in got])
        print(f"  {name:<26} coverage {hits.mean():.3f} (n = {hits.size}), mean width {width:.3f}")


if __name__ == "__main__":
    main()
