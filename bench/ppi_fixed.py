"""Fixed-population coverage of the "these answers" interval (``bench_ppi_coverage.py --fixed``).

A population of 82 answers (human grades, a judge's grades) is drawn once per (share, judge, population index);
only the human sample is redrawn, thousands of times, vectorised over repetitions with the report's own batch
functions (owleval.report.finite). The target is the population's own mean human value. Redrawing the population in
every repetition (the default bench) averages over populations and hides the ones where the interval misses.

Designs: ``uniform`` (a simple random sample of n) and ``stratified`` (`study create --sample`: proportional
allocation over the turn types, analysed as a simple random sample). Judges: good, lenient, noisy-soft, random,
and ``good/all`` -- the good judge against human values that are means of three ratings (``--combine all``: an
answer's acceptable value lies in {0, 1/3, 2/3, 1}). Each row applies the report's choice: the human-only interval
(lam = 0) where the judge-based one is wider (the report also falls back where the judge's headline would be wider
than the human-only one; that needs the image bootstrap and is measured by the default, redrawn bench).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from owleval.study.sample import TURN_TYPES, allocate
from owleval.report import finite

FIXED_SHARES = (0.2, 0.5, 0.85)  # weak, middle, strong
FIXED_JUDGES = ("good", "lenient", "noisy-soft", "random", "good/all")
FIXED_NS = (10, 15, 20, 40)
FIXED_DESIGNS = ("uniform", "stratified")
#: the issue's cells (share, judge, n, design), acceptable share: pooled over their populations at 10,000+ repetitions
LISTED = ((0.85, "good", 15, "uniform"), (0.85, "good", 15, "stratified"), (0.5, "lenient", 20, "uniform"), (0.2, "good", 40, "uniform"))
SD_RATER = 0.5  # a rater's own noise around the answer's latent quality (the --combine all cells)


def population(bench, share: float, kind: str, index: int, images: np.ndarray, n_images: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """metric -> (human values, judge values) of one fixed population."""
    rng = np.random.default_rng([7, int(share * 100), FIXED_JUDGES.index(kind), index])
    mu = bench.mu_for_share(share)
    y, latent = bench.grades(mu, images, n_images, rng)
    judge_kind = kind.split("/")[0]
    if judge_kind == "noisy-soft":
        _, f, f_acc = bench.noisy_judge(latent + rng.normal(0.0, bench.SD_JUDGE, latent.size))
    else:
        f = bench.judge(judge_kind, y, rng)
        f_acc = (f >= 2) * 1.0
    if kind.endswith("/all"):
        ratings = np.clip(np.rint(latent[:, None] + rng.normal(0.0, SD_RATER, (latent.size, 3))), 0, 3)
        return {"mean_score": (ratings.mean(axis=1), f), "acceptable": ((ratings >= 2).mean(axis=1), f_acc)}
    return {"mean_score": (y, f), "acceptable": ((y >= 2) * 1.0, f_acc)}


def draws(rng: np.random.Generator, reps: int, n: int, turn: np.ndarray, design: str) -> np.ndarray:
    """(reps, n) indices of the drawn answers."""
    if design == "uniform":
        return np.argsort(rng.random((reps, turn.size)), axis=1)[:, :n]
    counts = allocate({t: int((turn == t).sum()) for t in TURN_TYPES}, n)
    parts = []
    for t in TURN_TYPES:
        mine = np.flatnonzero(turn == t)
        parts.append(mine[np.argsort(rng.random((reps, mine.size)), axis=1)[:, : counts[t]]])
    return np.concatenate(parts, axis=1)


def reported_intervals(y: np.ndarray, f: np.ndarray, f_mean: float, big_n: int, metric: str) -> tuple[np.ndarray, ...]:
    """(estimate, low, high, lam) per row as the report gives them: the human-only row where the judge's is wider."""
    est, lo, hi, lam = finite.sample_intervals(y, f, f_mean, big_n, metric, 0.05)
    est0, lo0, hi0, _ = finite.sample_intervals(y, f, f_mean, big_n, metric, 0.05, np.zeros(y.shape[0]))
    human = (lam == 0.0) | (hi - lo > hi0 - lo0 + 1e-12)
    return np.where(human, est0, est), np.where(human, lo0, lo), np.where(human, hi0, hi), np.where(human, 0.0, lam)


def simulate_fixed(bench, reps: int, populations: int, images: np.ndarray, n_images: int, turn: np.ndarray,
                   listed_reps: int = 0) -> pd.DataFrame:  # fmt: skip
    """One row per (share, judge, population, metric, n, design): coverage and mean width of the reported interval,
    and how often it is the human-only one."""
    rows = []
    for share in FIXED_SHARES:
        for kind in FIXED_JUDGES:
            for index in range(populations):
                values = population(bench, share, kind, index, images, n_images)
                for n in FIXED_NS:
                    for design in FIXED_DESIGNS:
                        listed = (share, kind, n, design) in LISTED
                        r = max(reps, listed_reps // populations) if listed else reps
                        idx = draws(np.random.default_rng([11, index, n, FIXED_DESIGNS.index(design)]), r, n, turn, design)
                        for metric, (y, f) in values.items():
                            truth = float(y.mean())
                            _, lo, hi, lam = reported_intervals(y[idx], f[idx], float(f.mean()), y.size, metric)
                            covered = (lo <= truth + 1e-12) & (truth <= hi + 1e-12)
                            rows.append((share, kind, index, metric, n, design, r, float(covered.mean()), float((hi - lo).mean()),
                                         float((lam == 0).mean())))  # fmt: skip
    return pd.DataFrame(rows, columns=["share", "judge", "population", "metric", "n", "design", "reps", "coverage", "width", "human_only"])


def report_fixed(table: pd.DataFrame) -> str:
    """Per design and metric: the lowest cell coverage with its Monte-Carlo s.e., cells below 0.94 - 2 s.e., and the
    listed cells pooled."""
    table = table.assign(se=np.sqrt(table.coverage.clip(0.01, 0.99) * (1 - table.coverage.clip(0.01, 0.99)) / table.reps))
    lines = ["fixed populations, 'these answers' (finite-population target):",
             "design      metric      cells  lowest coverage (s.e.)  cells < 0.94 - 2 s.e.  mean width"]  # fmt: skip
    for (design, metric), part in table.groupby(["design", "metric"]):
        worst = part.loc[part.coverage.idxmin()]
        below = int((part.coverage < 0.94 - 2 * part.se).sum())
        lines.append(f"{design:<11} {metric:<11} {len(part):>5}  {worst.coverage:.4f} ({worst.se:.4f}) {worst.judge} {worst.share:g} n={worst.n:<3} "
                     f"{below:>5}  {part.width.mean():.3f}")  # fmt: skip
    lines.append("listed cells (acceptable share), pooled over their populations:")
    acc = table[table.metric == "acceptable"]
    for share, kind, n, design in LISTED:
        part = acc[(acc.share == share) & (acc.judge == kind) & (acc.n == n) & (acc.design == design)]
        total = int(part.reps.sum())
        pooled = float((part.coverage * part.reps).sum() / total)
        lines.append(f"  share {share:g} {kind} n={n} {design}: {pooled:.4f} (s.e. {np.sqrt(pooled * (1 - pooled) / total):.4f}, {total} repetitions)")
    return "\n".join(lines)
