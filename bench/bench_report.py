"""Benchmark `owleval report`: 10 models x 82 answers x 5 annotators, 2,000 bootstrap resamples (target < 3 s).

Side by side in one run:
  1. the whole report (read + validate the CSV, every table, agreement, pairwise, leaderboard, md/html/csv
     rendered and written) in this process, and the same through the `owleval` command in a fresh process
     (imports included);
  2. the summary table's image bootstrap: vectorised (multinomial counts x per-image sums) vs a naive loop
     that lists the drawn images' answers for every resample. Reports the ratio;
  3. the report with an LLM judge (`--judge`): 6 models, judge grades on all 492 answers, people on 20 answers
     per model (3 annotators), as a fresh `owleval report` process, beside the same report without --judge.

Run: .venv/bin/python bench/bench_report.py [--repeat 3]
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
from owleval.report.stats import percentile_ci  # noqa: E402
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
    args = parser.parse_args()
    data = data_dir()
    questions = load_questions(data)
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
        times = [full(i) for i in range(args.repeat)]
        print(f"report in-process (read+tables+agreement+pairwise+leaderboard+render+write): best {min(times):.3f} s, median {np.median(times):.3f} s")

        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "owleval.cli", "report", "--grades", str(csv), "--out", str(Path(tmp) / "cli"), "--bootstrap", str(N_BOOT), "--data", str(data)]
        subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "OWLEVAL_DATA": str(data)})
        cli = time.perf_counter() - t0
        print(f"`owleval report` as a fresh process (imports included): {cli:.3f} s  (target < 3 s)")

    judge_case(questions, data, args.repeat)

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
    from owleval.report.grades import validate_records

    return validate_records(((i + 2, r) for i, r in enumerate(grades.to_dict("records"))), Path("bench"), questions)


if __name__ == "__main__":
    main()
