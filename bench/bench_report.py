"""Benchmark `owleval report`: 10 models x 82 answers x 5 annotators, 2,000 bootstrap resamples (target < 3 s).

Side by side in one run:
  1. the whole report (read + validate the CSV, every table, agreement, pairwise, leaderboard, md/html/csv
     rendered and written) in this process, and the same through the `owleval` command in a fresh process
     (imports included);
  2. the summary table's image bootstrap: vectorised (multinomial counts x per-image sums) vs a naive loop
     that lists the drawn images' answers for every resample. Reports the ratio;
  3. the report with an LLM judge (`--judge`): 6 models, judge grades on all 492 answers, people on 20 answers
     per model (3 annotators), as a fresh `owleval report` process, beside the same report without --judge;
  4. leaderboard scale (issue 18 item 6): 6, 20 and 50 models x 82 answers x 3 annotators, and 20 models with 40
     graded answers each (pairs share few questions, ties: where scipy's Wilcoxon falls back to a permutation
     test). Per case: the pairwise tests for every pair as one vectorised call vs today's scipy loop (binomtest +
     wilcoxon per pair; stopped after a time budget and extrapolated per pair), the Bradley-Terry bootstrap by
     warm-started batched Newton vs the earlier cold-started MM iterations, and the whole `owleval report` as a
     fresh process (targets: <= 3 s at 6 models, <= 10 s at 50). CPU seconds are printed beside wall seconds:
     on a shared machine the CPU figure is the one load does not inflate.

Run: .venv/bin/python bench/bench_report.py [--repeat 3] [--cases base,judge,scale]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from owleval.questions import load_questions  # noqa: E402
from owleval.report.build import build_report, render_files, write_folder  # noqa: E402
from owleval.report.combine import combine_grades  # noqa: E402
from owleval.report.grades import read_grades  # noqa: E402
from owleval.stats import percentile_ci  # noqa: E402
from owleval.report.tables import model_order, question_info, score_table  # noqa: E402
from tests.report_helpers import (  # noqa: E402
    data_dir,
    sample_per_model,
    synthetic_grades,
    synthetic_judge,
    write_grades_csv,
    write_judge_folder,
)

N_BOOT = 2000


def naive_summary_ci(units, info, models, n_boot: int, seed: int) -> np.ndarray:
    """The obvious way: per resample, draw images with replacement and recompute each model's shares."""
    rng = np.random.default_rng(seed)
    images = np.array(sorted(info.loc[units["question_id"], "image"].unique()))
    by_model_image = {
        (m, img): g["score"].to_numpy()
        for (m, img), g in units.assign(image=info.loc[units["question_id"], "image"].to_numpy()).groupby(["model_id", "image"])
    }
    empty = np.array([], dtype=float)
    acc = np.empty((n_boot, len(models)))
    for b in range(n_boot):
        drawn = rng.choice(images, size=images.size, replace=True)
        for k, m in enumerate(models):
            scores = np.concatenate([by_model_image.get((m, img), empty) for img in drawn])
            acc[b, k] = (scores >= 2).mean()
    return np.stack(percentile_ci(acc))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cases", default="base,judge,scale", help="comma-separated: base, judge, scale")
    parser.add_argument("--scipy-budget", type=float, default=15.0, help="seconds for the scipy per-pair loop per case")
    args = parser.parse_args()
    cases = {c.strip() for c in args.cases.split(",")}
    data = data_dir()
    questions = load_questions(data)
    if "scale" in cases:
        for n_models, per_model in ((6, 82), (20, 82), (50, 82), (20, 40)):
            scale_case(questions, data, n_models, per_model, args.scipy_budget)
    if "base" in cases:
        base_case(questions, data, args.repeat)
    if "judge" in cases:
        judge_case(questions, data, args.repeat)


def base_case(questions, data: Path, repeat: int) -> None:
    """10 models x 82 answers x 5 annotators: the whole report, and the summary bootstrap vectorised vs naive."""
    grades = synthetic_grades(questions, [f"model-{i:02d}" for i in range(10)], [f"annotator-{i}" for i in range(5)], seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        csv = write_grades_csv(grades, Path(tmp) / "grades.csv")
        print(f"grades: {len(grades)} ratings, {grades.model_id.nunique()} models x 82 answers x {grades.annotator.nunique()} annotators; {N_BOOT} resamples")

        def full(i: int) -> float:
            t0 = time.perf_counter()
            frame = read_grades(csv, questions)
            report = build_report(frame, questions, source=str(csv), n_boot=N_BOOT, seed=0)
            write_folder(Path(tmp) / f"out{i}", render_files(report, ["md", "html", "csv"]))
            return time.perf_counter() - t0

        full(-1)  # warm caches (imports, templates)
        times = [full(i) for i in range(repeat)]
        print(f"report in-process (read+tables+agreement+pairwise+leaderboard+render+write): best {min(times):.3f} s, median {np.median(times):.3f} s")

        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "owleval.cli", "report", "--grades", str(csv), "--out", str(Path(tmp) / "cli"), "--bootstrap", str(N_BOOT), "--data", str(data)]
        subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "OWLEVAL_DATA": str(data)})
        cli = time.perf_counter() - t0
        print(f"`owleval report` as a fresh process (imports included): {cli:.3f} s  (target < 3 s)")

    units = combine_grades(_frame(grades, questions), "median")
    info = question_info(questions)
    models = model_order(units)
    t0 = time.perf_counter()
    fast = score_table(units, info, models, N_BOOT, np.random.default_rng(0))
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = naive_summary_ci(units, info, models, N_BOOT, seed=0)
    t_slow = time.perf_counter() - t0
    width_fast = (fast.acceptable_ci_high - fast.acceptable_ci_low).mean()
    width_slow = (slow[1] - slow[0]).mean()
    print(f"summary table bootstrap: vectorised {t_fast * 1000:.1f} ms vs naive loop {t_slow * 1000:.0f} ms -> {t_slow / t_fast:.0f}x faster")
    print(f"  (same statistic: mean CI width {width_fast:.4f} vectorised vs {width_slow:.4f} naive; different random draws)")


def judge_case(questions, data: Path, repeat: int) -> None:
    """`owleval report --judge` for 6 models (judge on all 492 answers, people on 20 per model) vs without."""
    full = synthetic_grades(questions, [f"model-{i}" for i in range(6)], ["ann", "bob", "cy"], seed=1)
    judge, unparsed = synthetic_judge(full, seed=1)
    humans = sample_per_model(full, 20, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        csv = write_grades_csv(humans, Path(tmp) / "humans.csv")
        folder = write_judge_folder(Path(tmp) / "judge", judge, unparsed)
        per_model = humans.groupby("model_id").question_id.nunique().iloc[0]
        print(f"judge case: {len(judge)} judge grades, {len(humans)} human ratings ({per_model} answers per model x 3 annotators)")
        env = {**os.environ, "OWLEVAL_DATA": str(data)}
        base = [sys.executable, "-m", "owleval.cli", "report", "--grades", str(csv), "--bootstrap", str(N_BOOT), "--data", str(data)]
        timings: dict[str, list[tuple[float, float]]] = {"without --judge": [], "with --judge": []}
        for i in range(repeat):
            for label, extra in (("without --judge", []), ("with --judge", ["--judge", str(folder)])):
                wall, cpu = _timed_run([*base, "--out", str(Path(tmp) / f"{i}-{len(extra)}"), *extra], env)
                timings[label].append((wall, cpu))
        (plain, plain_cpu), (judged, judged_cpu) = min(timings["without --judge"]), min(timings["with --judge"])
        print(f"`owleval report` fresh process, best of {repeat}: without --judge {plain:.3f} s wall ({plain_cpu:.3f} s CPU), "
              f"with --judge {judged:.3f} s wall ({judged_cpu:.3f} s CPU); ratio {judged / plain:.2f} (target < 3 s)")


def scipy_pairwise_loop(diff: np.ndarray, budget: float) -> tuple[float, int]:
    """Today's way before issue 18: scipy's binomtest and wilcoxon (method 'auto') pair by pair.

    Stops once ``budget`` seconds are spent; returns (seconds, pairs done)."""
    import warnings

    from scipy.stats import binomtest, wilcoxon

    t0 = time.process_time()
    done = 0
    for k in range(diff.shape[1]):
        d = diff[~np.isnan(diff[:, k]), k]
        wins, losses = int((d > 0).sum()), int((d < 0).sum())
        if wins + losses:
            binomtest(wins, wins + losses)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                wilcoxon(d[d != 0])
        done += 1
        if time.process_time() - t0 > budget:
            break
    return time.process_time() - t0, done


def mm_bradley_terry(wins: np.ndarray, prior: float = 1.0, max_iter: int = 5000, tol: float = 1e-9) -> np.ndarray:
    """The earlier fit, kept here as the "before" way: Hunter's MM updates from 0 on every replicate at once."""
    w = np.asarray(wins, dtype=float)
    m = w.shape[-1]
    w = w + prior / 2.0 * (1.0 - np.eye(m))
    games = w + np.swapaxes(w, -1, -2)
    total_wins = w.sum(axis=-1)
    log_p = np.zeros(w.shape[:-1])
    for _ in range(max_iter):
        p = np.exp(log_p)
        new = np.log(total_wins) - np.log((games / (p[..., :, None] + p[..., None, :])).sum(axis=-1))
        new -= new.mean(axis=-1, keepdims=True)
        done = np.max(np.abs(new - log_p), initial=0.0) < tol
        log_p = new
        if done:
            break
    return log_p


def scale_case(questions, data: Path, n_models: int, per_model: int, budget: float) -> None:
    """Pairwise tests and the Bradley-Terry bootstrap, today's way vs the earlier one, and the whole report."""
    from owleval.report import combine, compare
    from owleval.stats import bootstrap_counts, bradley_terry, sign_test_pvalues, signed_rank_pvalues

    models = [f"model-{i:02d}" for i in range(n_models)]
    grades = synthetic_grades(questions, models, ["ann", "bob", "cy"], seed=2)
    if per_model < 82:
        grades = sample_per_model(grades, per_model, seed=0)
    label = f"{n_models} models x {per_model} answers x 3 annotators"
    per_answer = combine.answer_scores(_frame(grades, questions), "median")
    info = question_info(questions)
    qids, x = compare.score_matrix(per_answer, models)
    a, b = np.triu_indices(n_models, k=1)
    diff = x[:, a] - x[:, b]

    sign_test_pvalues(np.ones(1, dtype=int), np.zeros(1, dtype=int))  # imports out of the timing
    signed_rank_pvalues(np.ones((2, 1)))
    t0 = time.process_time()
    valid = ~np.isnan(diff)
    sign_test_pvalues((valid & (diff > 0)).sum(0), (valid & (diff < 0)).sum(0))
    signed_rank_pvalues(diff)
    t_new = time.process_time() - t0
    t_old, done = scipy_pairwise_loop(diff, budget)
    t_old_all = t_old / max(done, 1) * a.size
    note = "" if done == a.size else f" (stopped after {done} pairs; extrapolated)"
    print(f"[{label}] pairwise tests, {a.size} pairs: vectorised {t_new:.3f} s CPU vs scipy per pair {t_old_all:.2f} s CPU{note} "
          f"-> {t_old_all / max(t_new, 1e-9):.0f}x")

    onehot = compare._image_onehot(qids, info)
    per_img = onehot @ compare.win_matrices(x).reshape(len(qids), n_models * n_models)
    wins = per_img.sum(axis=0).reshape(n_models, n_models)
    counts = bootstrap_counts(onehot.shape[0], N_BOOT, np.random.default_rng(0))
    replicates = (counts @ per_img).reshape(N_BOOT, n_models, n_models)
    t0 = time.process_time()
    point = bradley_terry(wins, prior=compare.BT_PRIOR)
    new_fit = bradley_terry(replicates, prior=compare.BT_PRIOR, start=point, tol=compare.BT_BOOTSTRAP_TOL)
    t_newton = time.process_time() - t0
    t0 = time.process_time()
    mm_bradley_terry(wins)
    old_fit = mm_bradley_terry(replicates)
    t_mm = time.process_time() - t0
    print(f"[{label}] Bradley-Terry, {N_BOOT} bootstrap fits: warm Newton {t_newton:.2f} s CPU vs cold MM {t_mm:.2f} s CPU "
          f"-> {t_mm / max(t_newton, 1e-9):.1f}x; largest difference {np.abs(new_fit - old_fit).max():.1e}")

    with tempfile.TemporaryDirectory() as tmp:
        csv = write_grades_csv(grades, Path(tmp) / "grades.csv")
        cmd = [sys.executable, "-m", "owleval.cli", "report", "--grades", str(csv), "--out", str(Path(tmp) / "out"),
               "--bootstrap", str(N_BOOT), "--data", str(data)]  # fmt: skip
        wall, cpu = _timed_run(cmd, {**os.environ, "OWLEVAL_DATA": str(data)})
    target = 3.0 if n_models <= 6 else 10.0
    saved = (t_old_all - t_new) + (t_mm - t_newton)
    print(f"[{label}] `owleval report` fresh process: {wall:.2f} s wall, {cpu:.2f} s CPU (target <= {target:.0f} s); "
          f"the earlier pairwise tests and fit would add about {saved:.1f} s CPU")


def _timed_run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one child process: CPU time is what a busy machine does not inflate."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _frame(grades, questions):
    from owleval.records.grades import validate_records

    return validate_records(((i + 2, r) for i, r in enumerate(grades.to_dict("records"))), Path("bench"), questions)


if __name__ == "__main__":
    main()
