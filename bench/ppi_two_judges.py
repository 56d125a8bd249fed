"""Two judges at once (``bench_ppi_coverage.py --two-judges``): the issue's bench item.

Two judges of the "good" kind (the human grade 80% of the time, else one grade off; quadratic kappa ~0.8 with the
humans) with independent errors grade every answer; people grade a uniform sample of n = 20. Populations are
redrawn every repetition (as the default bench). Compared: one judge; the judges' mean as one predictor (the
report's rule, owleval.report.multijudge.mean_of_judges); a cross-fitted least-squares calibration on the human sample
(multijudge.crossfit). Printed: coverage of both estimands and the headline width relative to all 82 graded.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from owleval.report import multijudge
from owleval.stats import bootstrap_counts, cohen_kappa

WAYS = ("one judge", "mean of two", "crossfit of two")


def run(bench, reps: int, n_boot: int, seed: int, n: int = 20) -> pd.DataFrame:
    from owleval.questions import load_questions
    from owleval.report.tables import question_info

    questions = load_questions(bench.data_dir())
    info = question_info(questions)
    images, names = pd.factorize(info["image"].to_numpy())
    start = time.perf_counter()
    rows, kappas = [], []
    for s_index, share in enumerate(bench.SHARES):
        mu = bench.mu_for_share(share)
        truth = bench.targets(mu)
        rng = np.random.default_rng([seed, s_index, 24])
        for _ in range(reps):
            y_all, _ = bench.grades(mu, images, len(names), rng)
            counts = bootstrap_counts(len(names), n_boot, rng)
            f1, f2 = bench.judge("good", y_all, rng), bench.judge("good", y_all, rng)
            kappas.append(cohen_kappa(y_all.astype(int), f1.astype(int), 4, "quadratic"))
            picked = np.zeros(y_all.size, dtype=bool)
            picked[rng.choice(y_all.size, n, replace=False)] = True
            for way in WAYS:
                if way == "one judge":
                    f, a = f1, (f1 >= 2) * 1.0
                elif way == "mean of two":
                    both = np.c_[f1, f2]
                    f, a = multijudge.mean_of_judges(both), multijudge.mean_of_judges((both >= 2) * 1.0)
                else:
                    y_seen = np.where(picked, y_all, np.nan)
                    f = multijudge.crossfit(np.c_[f1, f2], y_seen, 0.0, 3.0)
                    a = multijudge.crossfit((np.c_[f1, f2] >= 2) * 1.0, np.where(picked, (y_all >= 2) * 1.0, np.nan), 0.0, 1.0)
                rows += bench._cells(way, share, n, "uniform", y_all, f, a, picked, None, images, counts, truth)
            all82 = np.ones(y_all.size, dtype=bool)
            rows += bench._cells("all 82 graded", share, 82, "uniform", y_all, f1, (f1 >= 2) * 1.0, all82, None, images, counts, truth)
    sim = pd.DataFrame(rows, columns=["judge", "share", "n", "design", "n_drawn", "metric", "super", "finite", "estimate", "h_lo", "h_hi", "s_lo",
                                      "s_hi", "p_lo", "p_hi", "u_lo", "u_hi"])  # fmt: skip
    table = bench.summarise(sim)
    full = table[table.judge == "all 82 graded"].set_index(["metric", "share"]).headline_w
    table["width_ratio"] = [w / full[(m, s)] for m, s, w in zip(table.metric, table.share, table.headline_w, strict=True)]
    se = float(np.sqrt(0.95 * 0.05 / reps))
    print(f"{reps} repetitions, {n_boot} resamples; good judge's quadratic kappa with the humans: {np.mean(kappas):.3f}; "
          f"coverage s.e. {se:.3f}; {time.perf_counter() - start:.0f} s")  # fmt: skip
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        print(table[["metric", "judge", "share", "n", "headline_cov", "sample_cov", "headline_w", "sample_w", "human_w", "width_ratio"]].to_string(index=False))
    return table
