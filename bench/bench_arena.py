"""Benchmark the pairwise-vote part of `owleval report` (arena.py), 2,000 bootstrap resamples.

Side by side in one run:
  1. the vote tables (rankings from people and judge with image-bootstrap CIs, pair tables, adjacent tests,
     agreement, the PPI ranking) at 6 models (every pair on every question) and at 50 models (3 pairs per
     question), against the issue's budgets (3 s and 10 s for the whole report);
  2. the PPI Bradley-Terry fit: ours (numpy, Newton steps) vs ppi_py (L-BFGS; run in a child process with
     NUMBA_DISABLE_JIT=1, since its numba compile alone takes a minute) on the same rows. Reports the ratio.

Run: .venv/bin/python bench/bench_arena.py [--repeat 3]   (ppi_py from .ppi_py/, see scripts/setup.sh)
"""

from __future__ import annotations

import argparse
import json
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
from owleval.report.arena import build_arena, ppi_rows  # noqa: E402
from owleval.report.ppi_logistic import ppi_logistic  # noqa: E402
from owleval.report.tables import question_info  # noqa: E402
from owleval.records.votes import OUTCOME_SCORE  # noqa: E402
from tests.report_helpers import data_dir  # noqa: E402
from tests.vote_helpers import judge_votes_from, synthetic_votes  # noqa: E402

N_BOOT = 2000
ROW_KEYS = ("x", "y", "yhat", "x_unlabeled", "yhat_unlabeled", "w", "w_unlabeled")


def votes_for(n_models: int, pairs_per_question: int | None, qids: list[int]):
    """The judge on every chosen pair of every question; one person on a random half of them."""
    strengths = {f"model{i:02d}": 3.0 * i / n_models for i in range(n_models)}
    truth = synthetic_votes(qids, strengths, ["ann"], seed=1, pairs_per_question=pairs_per_question)
    judge = judge_votes_from(truth, accuracy=0.8, seed=2)
    human = truth[np.random.default_rng(3).random(len(truth)) < 0.5].reset_index(drop=True)
    for frame in (human, judge):
        frame["outcome"] = frame["winner"].map(OUTCOME_SCORE)
    return human, judge, sorted(strengths)


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def ppi_py_seconds(rows: dict[str, np.ndarray], repeat: int) -> float | None:
    target = ROOT / ".ppi_py"
    if not (target / "ppi_py").is_dir():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "rows.npz", **{k: rows[k] for k in ROW_KEYS})
        script = (
            "import json, sys, time, numpy as np\n"
            f"sys.path.append({str(target)!r})\n"
            "import ppi_py\n"
            f"r = np.load({str(Path(tmp) / 'rows.npz')!r})\n"
            "a = (r['x'], r['y'], r['yhat'], r['x_unlabeled'], r['yhat_unlabeled'])\n"
            "kw = dict(w=r['w'], w_unlabeled=r['w_unlabeled'])\n"
            "best = 1e9\n"
            f"for _ in range({repeat}):\n"
            "    t = time.perf_counter(); ppi_py.ppi_logistic_pointestimate(*a, **kw); ppi_py.ppi_logistic_ci(*a, alpha=0.05, **kw)\n"
            "    best = min(best, time.perf_counter() - t)\n"
            "print(json.dumps(best))\n"
        )
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp, timeout=600,
                              env={**os.environ, "NUMBA_DISABLE_JIT": "1"})  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    questions = load_questions(data_dir())
    info = question_info(questions)
    qids = [q.question_id for q in questions]
    print(f"vote tables, {N_BOOT} bootstrap resamples (best of {args.repeat}; a shared, loaded machine: noisy)")
    for n_models, per_q, budget in ((6, None, 3.0), (50, 3, 10.0)):
        human, judge, models = votes_for(n_models, per_q, qids)
        build_arena(human, judge, info, n_boot=50, seed=0)  # warm up imports
        human_only = best_of(args.repeat, lambda: build_arena(human, None, info, n_boot=N_BOOT, seed=0))
        with_judge = best_of(args.repeat, lambda: build_arena(human, judge, info, n_boot=N_BOOT, seed=0))
        print(f"  {n_models:>2} models, {len(human)} human + {len(judge)} judge votes: people only {human_only:.2f} s, "
              f"with judge + PPI {with_judge:.2f} s (whole-report budget {budget:.0f} s)")  # fmt: skip
    human, judge, models = votes_for(6, None, qids)
    rows = ppi_rows(human, judge, models, models[0])
    args_ = [rows[k] for k in ROW_KEYS[:5]]
    ours = best_of(args.repeat, lambda: ppi_logistic(*args_, w=rows["w"], w_unlabeled=rows["w_unlabeled"]))
    theirs = ppi_py_seconds(rows, args.repeat)
    print(f"PPI Bradley-Terry fit + CI, 6 models, {len(rows['y'])} labelled + {len(rows['yhat_unlabeled'])} unlabelled rows:")
    if theirs is None:
        print(f"  ours {ours * 1000:.1f} ms; ppi_py not installed (scripts/setup.sh)")
    else:
        print(f"  ours {ours * 1000:.1f} ms, ppi_py (JIT off) {theirs * 1000:.1f} ms: ratio {theirs / ours:.1f}x")


if __name__ == "__main__":
    main()
