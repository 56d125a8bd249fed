"""Annotator QC on a simulated study (bench/annotator_qc_sim.py): per rule, how often it catches each bad kind of
annotator and how often it flags an honest one (lenient and harsh honest raters apart), and with ~20% bad annotators
the coverage of the per-model scores.csv intervals under --qc off vs --qc exclude, driven through the functions the
CLI calls (report.qc.run_qc, then report.build.build_report on the grades it keeps). Also the Dawid-Skene model with
and without the ordinal constraint, and the time of annotator_table on a 12-annotator 6 x 82 study.

Seeded. Default 20 repetitions (about 2-4 minutes on two busy cores; 6-12 s a repetition); the stored
results are --reps 60 (12 min while other work shared the two cores). Writes
bench/results/annotator_qc.json and prints it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from annotator_qc_sim import BAD_KINDS, HONEST_KINDS, population_means, simulate  # noqa: E402

from owleval.quality.dawid_skene import fit_dawid_skene, posterior_scores  # noqa: E402
from owleval.items import regular_grades  # noqa: E402
from owleval.quality.rules import DEFAULT_RULES  # noqa: E402
from owleval.report import combine  # noqa: E402
from owleval.report.build import build_report  # noqa: E402
from owleval.records.grades import validate_records  # noqa: E402
from owleval.report.qc import run_qc  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def composition(rep: int) -> list[str]:
    """12 raters, 2 or 3 of them bad (20% on average), kinds rotating over the repetitions."""
    n_bad = 2 if rep % 2 == 0 else 3
    bad = [BAD_KINDS[(rep * 3 + j) % len(BAD_KINDS)] for j in range(n_bad)]
    honest = [HONEST_KINDS[(rep + j) % len(HONEST_KINDS)] for j in range(12 - n_bad)]
    return bad + honest


def scores(frame: pd.DataFrame, questions, rule: str, n_boot: int, seed: int) -> pd.DataFrame:
    report = build_report(frame, questions, source="bench", rule=rule, n_boot=n_boot, seed=seed)
    return report.tables["scores"]


def covered(table: pd.DataFrame, target: dict[str, float]) -> list[bool]:
    rows = table[table["metric"] == "mean_score"]
    return [bool(r.ci_low <= target[r.model] <= r.ci_high) for r in rows.itertuples()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=400)
    args = parser.parse_args()
    from owleval.questions import load_questions

    questions = load_questions()
    means = population_means()
    rule_names = [r.name for r in DEFAULT_RULES]
    fired: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    cover: dict[str, list[bool]] = defaultdict(list)
    ds_stats: dict[str, list[float]] = defaultdict(list)
    table_seconds = []
    started = time.perf_counter()
    for rep in range(args.reps):
        rng = np.random.default_rng([args.seed, rep])
        kinds = composition(rep)
        study = simulate(kinds, questions, rng)
        frame = validate_records(((i + 2, r) for i, r in enumerate(study.grades.to_dict("records"))), Path("sim.csv"), questions)
        t0 = time.perf_counter()
        checked = run_qc(frame, mode="exclude", answers=study.answers, images={q.question_id: q.image for q in questions}, seed=rep)
        table_seconds.append(time.perf_counter() - t0)
        flags = dict(zip(checked.table["annotator"], checked.table["qc_flags"], strict=True))
        for name, kind in study.kinds.items():
            names = set(filter(None, flags[name].split(";")))
            for r in rule_names:
                fired[kind][r].append(int(r in names))
            fired[kind]["any"].append(int(bool(names)))
        honest = [k for k in kinds if k in HONEST_KINDS]
        target = {f"model-{m}": float(np.mean([means[k][m] for k in honest])) for m in range(6)}
        everyone = regular_grades(frame)
        for label, graded in (("off", everyone), ("exclude", checked.kept)):
            cover[f"all/{label}"] += covered(scores(graded, questions, "all", args.bootstrap, rep), target)
        truth = {f"model-{m}": float(means["truth"][m]) for m in range(6)}
        for ordinal in (False, True):
            fit = posterior_scores(fit_dawid_skene(everyone, ordinal=ordinal))
            merged = fit.merge(study.truth, on=["model_id", "question_id"])
            label = "ordinal" if ordinal else "classic"
            best = merged[["p_D", "p_C", "p_B", "p_A"]].to_numpy().argmax(axis=1)
            ds_stats[f"{label}/accuracy"].append(float((best == merged["true"]).mean()))
            ds_stats[f"{label}/answer_mae"].append(float((merged["mean_score"] - merged["true"]).abs().mean()))
            per_model = merged.groupby("model_id")[["mean_score", "true"]].mean()
            ds_stats[f"{label}/model_mae"].append(float((per_model["mean_score"] - per_model["true"]).abs().mean()))
            combine.DS_ORDINAL = ordinal
            cover[f"ds-{label}/off"] += covered(scores(everyone, questions, "ds", args.bootstrap, rep), truth)
        med = combine.lower_median_scores(everyone).merge(study.truth, on=["model_id", "question_id"])
        ds_stats["median/accuracy"].append(float((med["score"] == med["true"]).mean()))
        ds_stats["median/answer_mae"].append(float((med["score"] - med["true"]).abs().mean()))
        print(f"rep {rep + 1}/{args.reps} done, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    combine.DS_ORDINAL = False
    detection = {kind: {r: round(float(np.mean(v)), 3) for r, v in rules.items()} | {"n": len(rules["any"])} for kind, rules in fired.items()}
    honest_pool = [k for k in ("honest-0.4", "honest-0.6", "honest-0.8") if k in fired]
    result = {
        "reps": args.reps, "seed": args.seed, "bootstrap": args.bootstrap, "seconds": round(time.perf_counter() - started, 1),
        "rules": [r.describe() for r in DEFAULT_RULES],
        "detection_by_kind": detection,
        "honest_false_flag_any": round(float(np.mean(sum((fired[k]["any"] for k in honest_pool), []))), 3),
        "lenient_harsh_false_flag_any": round(float(np.mean(fired["lenient"]["any"] + fired["harsh"]["any"])), 3),
        "coverage_mean_score": {k: {"coverage": round(float(np.mean(v)), 3), "n_intervals": len(v)} for k, v in cover.items()},
        "dawid_skene": {k: round(float(np.mean(v)), 4) for k, v in ds_stats.items()},
        "annotator_table_seconds_median": round(float(np.median(table_seconds)), 3),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "annotator_qc.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
