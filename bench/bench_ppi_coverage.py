"""Coverage study of the report's human-anchored intervals, seeded and reproducible.

A simulated model answers OwlEval's 82 questions, grouped on the data set's own images: answer i gets the human
grade Y_i = clip(round(mu + u_image + e_i), 0, 3) with u ~ N(0, 0.5^2) shared by the questions on one image and
e ~ N(0, 0.8^2); mu is set so the acceptable share (A or B, Y >= 2) is near 0.5 or 0.85. A judge grades every
answer:

  good         the human grade 80% of the time, else one grade off (either way)
  lenient      one grade kinder half the time, else the human grade
  random       a uniform grade, unrelated to Y
  adversarial  3 - Y 80% of the time, else a uniform grade
  noisy-hard   sees the answer's latent quality through N(0, 0.3^2) noise and gives its likeliest grade (~80% exact)
  noisy-soft   the same judge giving its grade distribution: expected score (mean_score), P(A or B) (acceptable)

People grade a sample of n answers, by one of two designs:

  uniform    a simple random sample of n answers (without replacement)
  active     `study create --design active`: Poisson sampling, expected n, inclusion probabilities from the judge's
             uncertainty sqrt(p (1 - p)) on its acceptable verdict (p = P(A or B)), floored at half the uniform rate,
             within the turn-type strata; the report's inverse-probability-weighted estimator. A judge with hard
             grades has p = 0 or 1 everywhere, so its active design is the uniform rate drawn Poisson (size varies):
             only the soft judge (noisy-soft) moves the probabilities. "n" is the expected size.

Each repetition draws new questions
(new image and answer effects), a new judge and a new sample. Both metrics (mean_score 0-3, acceptable share) are
scored against their own targets:

  headline   "questions like these": the model's expected grade over new questions (computed once from 2e6 draws)
  sample     "these answers": the mean human grade over this repetition's 82 answers
  ppi_py     ppi_py's i.i.d. PPI++ interval (our equal re-implementation), against the 82 answers' mean
  human      the report's human-only interval (image bootstrap of the n graded answers), against the headline target

Printed: coverage of the 95% intervals (with its Monte-Carlo standard error in the header), mean width, and the
share of rows the report shows without an interval (n below estimands.MIN_N_INTERVAL). Intervals are computed at
every n here, so the table also shows why small n gets no interval.

The active draws use their own random stream, so adding or filtering designs leaves the uniform rows unchanged.
``--goal`` prints, per design, the widths at each n relative to all 82 graded (the issue's goal: at most 1.15x at
coverage >= 0.94).

Run: .venv/bin/python bench/bench_ppi_coverage.py            (~2 min on 2 busy cores: 150 repetitions a cell, 300 resamples)
     .venv/bin/python bench/bench_ppi_coverage.py --full     (2,000 repetitions a cell, 1,000 resamples)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from owleval.study.sample import TURN_TYPES, allocate, inclusion_probabilities  # noqa: E402
from owleval.questions import load_questions  # noqa: E402
from owleval.report import estimands as est  # noqa: E402
from owleval.report.ppi import MeanEstimate, ppi_mean  # noqa: E402
from owleval.stats import bootstrap_counts  # noqa: E402
from owleval.report.tables import question_info  # noqa: E402
from tests.report_helpers import data_dir  # noqa: E402

JUDGES = ("good", "lenient", "random", "adversarial", "noisy-hard", "noisy-soft")
#: the noisy judge sees each answer's latent quality through N(0, SD_JUDGE^2) noise (hard: its likeliest grade,
#: about 80% exact agreement; soft: its whole grade distribution -- expected score and P(A or B))
SD_JUDGE = 0.3
SHARES = (0.5, 0.85)
NS = (5, 10, 20, 40, 82)  # 82: every answer graded (the headline is then the summary table's interval)
METRICS = ("mean_score", "acceptable")
SD_IMAGE, SD_ANSWER = 0.5, 0.8
NO_INTERVAL = MeanEstimate(np.nan, np.nan, np.nan)
DESIGNS = ("uniform", "active")


def active_probabilities(p_acceptable: np.ndarray, turn: np.ndarray, n: int) -> np.ndarray:
    """The active design's inclusion probabilities (as `study create --design active` computes them)."""
    u = np.sqrt(p_acceptable * (1.0 - p_acceptable))
    counts = allocate({t: int((turn == t).sum()) for t in TURN_TYPES}, n)
    pi = np.zeros(turn.size)
    for t in TURN_TYPES:
        mine = np.flatnonzero(turn == t)
        pi[mine] = inclusion_probabilities(list(u[mine]), counts[t])
    return pi


def grades(mu: float, images: np.ndarray, n_images: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(human grades, latent qualities) of 82 new answers."""
    latent = mu + rng.normal(0.0, SD_IMAGE, n_images)[images] + rng.normal(0.0, SD_ANSWER, images.size)
    return np.clip(np.rint(latent), 0, 3), latent


def noisy_judge(seen: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From what the judge saw (latent + noise): its likeliest grade, expected score and P(grade >= 2), with the
    grade distribution N(seen, SD_JUDGE^2) binned at 0.5, 1.5, 2.5."""
    from scipy.stats import norm

    cuts = norm.cdf((np.array([0.5, 1.5, 2.5])[None, :] - seen[:, None]) / SD_JUDGE)
    probs = np.diff(np.c_[np.zeros(seen.size), cuts, np.ones(seen.size)], axis=1)
    return probs.argmax(axis=1).astype(float), probs @ np.arange(4.0), probs[:, 2:].sum(axis=1)


def judge(kind: str, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    uniform = rng.integers(0, 4, y.size).astype(float)
    if kind == "good":
        off = rng.choice([-1.0, 1.0], y.size)
        return np.where(rng.random(y.size) < 0.8, y, np.clip(y + off, 0, 3))
    if kind == "lenient":
        return np.where(rng.random(y.size) < 0.5, np.minimum(y + 1, 3), y)
    if kind == "random":
        return uniform
    return np.where(rng.random(y.size) < 0.8, 3 - y, uniform)


def mu_for_share(share: float) -> float:
    """mu whose acceptable share (Y >= 2) is ``share`` (bisection on the normal model)."""
    from statistics import NormalDist

    sd = float(np.hypot(SD_IMAGE, SD_ANSWER))
    # Y >= 2 <=> latent >= 1.5
    return 1.5 - sd * NormalDist().inv_cdf(1.0 - share)


def targets(mu: float) -> dict[str, float]:
    rng = np.random.default_rng(12345)
    latent = mu + rng.normal(0.0, SD_IMAGE, 2_000_000) + rng.normal(0.0, SD_ANSWER, 2_000_000)
    y = np.clip(np.rint(latent), 0, 3)
    return {"mean_score": float(y.mean()), "acceptable": float((y >= 2).mean())}


def simulate(reps: int, n_boot: int, seed: int, judges=JUDGES, shares=SHARES, ns=NS, designs=("uniform",)) -> pd.DataFrame:
    questions = load_questions(data_dir())
    info = question_info(questions)
    turn = np.array([q.turn_type for q in sorted(questions, key=lambda q: q.question_id)])
    images, names = pd.factorize(info["image"].to_numpy())
    n_images = len(names)
    rows = []
    for s_index, share in enumerate(SHARES):
        if share not in shares:
            continue
        mu = mu_for_share(share)
        truth = targets(mu)
        rng = np.random.default_rng([seed, s_index])
        rng_active = np.random.default_rng([seed, s_index, 1])  # its own stream: the uniform rows do not depend on it
        for _ in range(reps):
            y_all, latent = grades(mu, images, n_images, rng)
            counts = bootstrap_counts(n_images, n_boot, rng)
            hard, soft, soft_acc = noisy_judge(latent + rng.normal(0.0, SD_JUDGE, latent.size))
            for kind in JUDGES:
                # every judge is drawn, so a filtered run sees the same data
                if kind.startswith("noisy"):
                    f_all, a_all = (hard, (hard >= 2) * 1.0) if kind == "noisy-hard" else (soft, soft_acc)
                else:
                    f_all = judge(kind, y_all, rng)
                    a_all = (f_all >= 2) * 1.0
                if kind not in judges:
                    continue
                for n in ns:
                    picked_uniform = np.zeros(y_all.size, dtype=bool)
                    picked_uniform[rng.choice(y_all.size, n, replace=False)] = True
                    for design in designs:
                        if design == "uniform":
                            picked, pi = picked_uniform, None
                        else:
                            pi = active_probabilities(a_all, turn, n)
                            picked = rng_active.random(y_all.size) < pi
                            if n == y_all.size:
                                pi = None  # every answer drawn with probability 1
                        rows += _cells(kind, share, n, design, y_all, f_all, a_all, picked, pi, images, counts, truth)
    return pd.DataFrame(rows, columns=["judge", "share", "n", "design", "n_drawn", "metric", "super", "finite", "estimate", "h_lo", "h_hi", "s_lo", "s_hi",
                                       "p_lo", "p_hi", "u_lo", "u_hi"])  # fmt: skip


def _cells(kind, share, n, design, y_all, f_all, a_all, picked, pi, images, counts, truth) -> list[tuple]:
    """Both metrics' intervals for one drawn sample."""
    rows = []
    for metric in METRICS:
        y, f = (y_all, f_all) if metric == "mean_score" else ((y_all >= 2) * 1.0, a_all)
        finite = float(y.mean())
        pop = est.Population(f, np.where(picked, y, np.nan), images, pi)
        n_drawn = int(picked.sum())
        if n_drawn < 3:  # an active draw this small gets no interval in the report either
            rows.append((kind, share, n, design, n_drawn, metric, truth[metric], finite, *([np.nan] * 9)))
            continue
        ref = ppi_mean(y[picked], f[picked], f[~picked]) if n_drawn < y.size else NO_INTERVAL
        human_pop = est.Population(f * 0.0, pop.y, images, pi)
        u_lo, u_hi = est.human_only_interval(human_pop, est.bootstrap_estimates(human_pop, counts), metric)
        _, point, (h_lo, h_hi), (s_lo, s_hi) = est.row_intervals(pop, metric, counts, (u_lo, u_hi))  # the report's choice
        rows.append((kind, share, n, design, n_drawn, metric, truth[metric], finite, point, h_lo, h_hi, s_lo, s_hi,
                     ref.ci_low, ref.ci_high, u_lo, u_hi))  # fmt: skip
    return rows


def summarise(sim: pd.DataFrame) -> pd.DataFrame:
    def covers(lo: pd.Series, hi: pd.Series, target: pd.Series) -> pd.Series:
        return ((lo <= target + 1e-12) & (target <= hi + 1e-12)).astype(float)

    sim = sim.assign(
        h_cov=covers(sim.h_lo, sim.h_hi, sim["super"]),
        s_cov=covers(sim.s_lo, sim.s_hi, sim.finite),
        p_cov=covers(sim.p_lo, sim.p_hi, sim.finite),
        u_cov=covers(sim.u_lo, sim.u_hi, sim["super"]),
        h_w=sim.h_hi - sim.h_lo,
        s_w=sim.s_hi - sim.s_lo,
        p_w=sim.p_hi - sim.p_lo,
        u_w=sim.u_hi - sim.u_lo,
        zero_w=((sim.s_hi - sim.s_lo) <= 1e-12).astype(float),
        too_few=(sim.n_drawn < est.MIN_N_INTERVAL).astype(float),
    )
    table = sim.groupby(["metric", "judge", "share", "design", "n"], sort=False).agg(
        mean_drawn=("n_drawn", "mean"),
        headline_cov=("h_cov", "mean"), headline_w=("h_w", "mean"), sample_cov=("s_cov", "mean"), sample_w=("s_w", "mean"),
        ppi_py_cov=("p_cov", "mean"), ppi_py_w=("p_w", "mean"), human_cov=("u_cov", "mean"), human_w=("u_w", "mean"),
        sample_zero_width=("zero_w", "mean"), no_interval=("too_few", "mean"),
    )  # fmt: skip
    return table.reset_index()


def markdown(table: pd.DataFrame) -> str:
    """The README's summary: per judge and share, the lowest coverage at n >= MIN_N_INTERVAL over both metrics, and
    the mean_score widths at n = 20 beside all 82 graded."""
    table = table[table.design == "uniform"] if "design" in table.columns else table
    held = table[table.n >= est.MIN_N_INTERVAL]
    lines = [
        "| judge | share | lowest coverage at n ≥ 10: questions like these / these answers / ppi_py i.i.d. | mean_score width at n = 20: questions like these / these answers / human only | all 82 graded |",
        "|---|---:|---|---|---:|",
    ]
    for (kind, share), part in held.groupby(["judge", "share"], sort=False):
        at20 = table[(table.judge == kind) & (table.share == share) & (table.n == 20) & (table.metric == "mean_score")]
        at82 = table[(table.judge == kind) & (table.share == share) & (table.n == 82) & (table.metric == "mean_score")]
        part = part[part.n < 82]
        cov = f"{part.headline_cov.min():.3f} / {part.sample_cov.min():.3f} / {part.ppi_py_cov.min():.3f}"
        width = "–" if at20.empty else f"{at20.headline_w.iloc[0]:.2f} / {at20.sample_w.iloc[0]:.2f} / {at20.human_w.iloc[0]:.2f}"
        full = "–" if at82.empty else f"{at82.headline_w.iloc[0]:.2f}"
        lines.append(f"| {kind} | {share:g} | {cov} | {width} | {full} |")
    return "\n".join(lines)


def goal_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per judge, share, metric and design: the headline width at each n relative to all 82 graded (uniform, n = 82)
    and the lowest coverage of the two estimands there; ``meets`` = width ratio <= 1.15 and both coverages >= 0.94."""
    full = table[(table.n == 82) & (table.design == "uniform")].set_index(["metric", "judge", "share"]).headline_w
    part = table[table.n < 82].copy()
    part["width_ratio"] = [w / full.get((m, j, s), np.nan) for m, j, s, w in zip(part.metric, part.judge, part.share, part.headline_w, strict=True)]
    part["meets"] = (part.width_ratio <= 1.15) & (part.headline_cov >= 0.94) & (part.sample_cov >= 0.94)
    return part[["metric", "judge", "share", "design", "n", "mean_drawn", "headline_cov", "sample_cov", "headline_w", "width_ratio", "meets"]]


def run_fixed(args: argparse.Namespace) -> None:
    import ppi_fixed

    questions = load_questions(data_dir())
    info = question_info(questions)
    turn = np.array([q.turn_type for q in sorted(questions, key=lambda q: q.question_id)])
    images, names = pd.factorize(info["image"].to_numpy())
    start = time.perf_counter()
    table = ppi_fixed.simulate_fixed(sys.modules[__name__], args.reps or 2000, args.populations, images, len(names), turn, listed_reps=10_000)
    if args.csv:
        table.to_csv(args.csv, index=False)
    print(ppi_fixed.report_fixed(table))
    print(f"{time.perf_counter() - start:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--full", action="store_true", help="2,000 repetitions a cell and 1,000 bootstrap resamples")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--bootstrap", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", type=Path, default=None, help="also write the table here")
    parser.add_argument("--judges", default=",".join(JUDGES), help="a subset, comma-separated")
    parser.add_argument("--shares", default=",".join(map(str, SHARES)), help="a subset, comma-separated")
    parser.add_argument("--ns", default=",".join(map(str, NS)), help="a subset, comma-separated")
    parser.add_argument("--designs", default=",".join(DESIGNS), help="a subset, comma-separated (uniform, active)")
    parser.add_argument("--goal", action="store_true", help="also print the width relative to all 82 graded per design")
    parser.add_argument("--fixed", action="store_true", help="fixed populations (drawn once, only the sample redrawn): the 'these answers' "
                        "interval's coverage per cell, 2,000 repetitions a cell (--reps), the issue's listed cells at 10,000+ pooled")
    parser.add_argument("--two-judges", action="store_true", help="two independent good judges at n = 20: headline width vs all 82 "
                        "graded, one judge vs the judges' mean vs a cross-fitted calibration (--reps, default 1,000)")
    parser.add_argument("--populations", type=int, default=10, help="with --fixed: populations per share and judge")
    parser.add_argument("--markdown", nargs="*", type=Path, default=None, help="print the README summary of these CSVs (from --csv) and stop")
    args = parser.parse_args()
    if args.markdown is not None:
        print(markdown(pd.concat([pd.read_csv(p) for p in args.markdown], ignore_index=True)))
        return
    if args.fixed:
        run_fixed(args)
        return
    if args.two_judges:
        import ppi_two_judges

        ppi_two_judges.run(sys.modules[__name__], args.reps or 1000, args.bootstrap or 300, args.seed)
        return
    reps = args.reps or (2000 if args.full else 150)
    n_boot = args.bootstrap or (1000 if args.full else 300)
    start = time.perf_counter()
    judges = tuple(args.judges.split(","))
    shares = tuple(float(x) for x in args.shares.split(","))
    ns = tuple(int(x) for x in args.ns.split(","))
    designs = tuple(args.designs.split(","))
    table = summarise(simulate(reps, n_boot, args.seed, judges, shares, ns, designs))
    if args.csv:
        table.to_csv(args.csv, index=False)
    mc_se = float(np.sqrt(0.95 * 0.05 / reps))
    print(f"{reps} repetitions a cell, {n_boot} image-bootstrap resamples, seed {args.seed}; Monte-Carlo s.e. of a coverage near 0.95: "
          f"{mc_se:.3f}; {time.perf_counter() - start:.0f} s")  # fmt: skip
    print(f"Rows with n < {est.MIN_N_INTERVAL} get no interval in the report ('no_interval'); their coverage is shown anyway.")
    with pd.option_context("display.width", 200, "display.max_rows", 500, "display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))
    held = table[table.n >= est.MIN_N_INTERVAL]
    print(f"\nat n >= {est.MIN_N_INTERVAL}: lowest headline coverage {held.headline_cov.min():.3f}, lowest sample coverage {held.sample_cov.min():.3f}, "
          f"lowest ppi_py coverage {held.ppi_py_cov.min():.3f}")  # fmt: skip
    for metric in METRICS:
        good = table[(table.judge == "good") & (table.metric == metric) & (table.design == "uniform")].set_index(["share", "n"])
        for share in shares if {20, 82} <= set(ns) and "good" in judges else ():
            ratio = good.loc[(share, 20), "headline_w"] / good.loc[(share, 82), "headline_w"]
            print(f"good judge, {metric}, share {share}: headline width at n=20 / all 82 graded = {ratio:.2f}")
    if args.goal and 82 in ns:
        with pd.option_context("display.width", 200, "display.max_rows", 500, "display.float_format", "{:.3f}".format):
            print("\nheadline width / all 82 graded (goal: <= 1.15 at coverage >= 0.94):")
            print(goal_table(table).to_string(index=False))


if __name__ == "__main__":
    main()
