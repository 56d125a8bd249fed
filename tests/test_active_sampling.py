"""Active sampling (`study create --sample K --design active --judgements DIR`): inclusion probabilities that grow
with the judge's uncertainty, floored, inside the turn-type strata, stored with the study; and the report's matching
inverse-probability-weighted estimator."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from owleval.cli import app
from owleval.study.sample import (
    FLOOR_SHARE,
    TURN_TYPES,
    allocate,
    draw_model_active,
    inclusion_probabilities,
    read_design,
    sampled_slots,
)
from owleval.study.store import Store
from owleval.study.manage import create_study
from owleval.questions import load_questions
from owleval.report.judge import active_judge_reader
from tests.grading_helpers import MODELS, write_answer_files

ALL_QIDS = tuple(range(1, 83))
runner = CliRunner()


def _judge_folder(folder: Path, *, soft: bool = True, seed: int = 0) -> Path:
    """A judge's grades.csv for every answer of MODELS; p_acceptable spread over [0, 1] when ``soft``."""
    rng = np.random.default_rng(seed)
    rows = []
    for model in MODELS:
        for q in ALL_QIDS:
            p = float(rng.choice([0.02, 0.5, 0.97, 0.3]))
            row = {"annotator": "judge:j", "model_id": model, "question_id": q, "grade": "B" if p >= 0.5 else "C", "comment": "",
                   "graded_at": "2024-02-01T00:00:00Z", "flags": ""}  # fmt: skip
            if soft:
                row["p_acceptable"] = p
            rows.append(row)
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / "grades.csv", index=False, lineterminator="\n")
    return folder


def _active_study(tmp_path: Path, owl_data: Path, *, seed: int = 7, soft: bool = True, name: str = "a.sqlite"):
    answers = write_answer_files(tmp_path / f"answers-{name}", owl_data, MODELS, ALL_QIDS)
    judge = _judge_folder(tmp_path / f"judge-{name}", soft=soft)
    return create_study(tmp_path / name, answers, annotators=("ann",), seed=seed, data_dir=owl_data, sample_size=20,
                        judgements=active_judge_reader(judge))


def test_inclusion_probabilities_floor_cap_and_sum():
    u = [0.0, 0.0, 0.5, 0.1, 0.4]
    pi = inclusion_probabilities(u, 2)
    assert sum(pi) == pytest.approx(2.0)
    assert min(pi) == pytest.approx(FLOOR_SHARE * 2 / 5)  # the floor: answers the judge is sure of
    assert pi[2] > pi[4] > pi[3] > pi[0]
    capped = inclusion_probabilities([1.0, 0.0, 0.0, 0.0], 3)  # the first would exceed 1
    assert capped[0] == 1.0 and sum(capped) == pytest.approx(3.0) and all(0 < p <= 1 for p in capped)
    assert inclusion_probabilities([0.0] * 4, 2) == pytest.approx([0.5] * 4)  # hard grades only: uniform
    assert inclusion_probabilities([0.3] * 3, 5) == [1.0] * 3


def test_poisson_draw_hits_each_answer_at_its_probability():
    turn = {q: "single" for q in range(1, 21)}
    u = {q: (0.5 if q <= 5 else 0.0) for q in range(1, 21)}
    hits: Counter[int] = Counter()
    sizes = []
    for seed in range(3000):
        part = draw_model_active("m", range(1, 21), turn, 6, seed, u)
        hits.update(part["question_ids"])
        sizes.append(len(part["question_ids"]))
    pi = part["probabilities"]
    for q in range(1, 21):
        p = pi[str(q)]
        assert abs(hits[q] / 3000 - p) < 4 * math.sqrt(p * (1 - p) / 3000), q
    assert np.mean(sizes) == pytest.approx(6, abs=0.15) and np.std(sizes) > 0.5  # Poisson: size varies around K


def test_active_study_stores_probabilities_within_strata_and_is_reproducible(tmp_path, owl_data):
    study = _active_study(tmp_path, owl_data)
    design = study.sample_design
    turn = {q.question_id: q.turn_type for q in load_questions(owl_data)}
    assert design["design"] == "active" and design["judgements"].endswith("grades.csv")
    for model in MODELS:
        part = design["models"][model]
        pi = {int(q): p for q, p in part["probabilities"].items()}
        assert sorted(pi) == list(ALL_QIDS)
        assert part["expected"] == allocate({t: part["answers"][t] for t in TURN_TYPES}, 20)
        for t in TURN_TYPES:
            mine = [pi[q] for q in ALL_QIDS if turn[q] == t]
            assert sum(mine) == pytest.approx(part["expected"][t])
            assert min(mine) >= FLOOR_SHARE * part["expected"][t] / len(mine) - 1e-12
            assert max(mine) > 1.5 * min(mine)  # the judge's uncertainty moves them
            assert part["drawn"][t] == sum(1 for q in part["question_ids"] if turn[q] == t)
    store = Store(study.path)
    assert read_design(store.meta()) == design
    store.close()
    again = _active_study(tmp_path, owl_data, name="again.sqlite")
    assert sampled_slots(again.sample_design) == sampled_slots(design)
    status = runner.invoke(app, ["study", "status", "--db", str(study.path)])
    assert status.exit_code == 0 and "active sample (Poisson" in " ".join(status.output.split()), status.output


def test_hard_letters_give_the_uniform_rate(tmp_path, owl_data):
    design = _active_study(tmp_path, owl_data, soft=False).sample_design
    turn = {q.question_id: q.turn_type for q in load_questions(owl_data)}
    for part in design["models"].values():
        for t in TURN_TYPES:
            mine = {round(p, 12) for q, p in part["probabilities"].items() if turn[int(q)] == t}
            assert len(mine) == 1


def test_design_flags_are_checked(tmp_path, owl_data):
    write_answer_files(tmp_path / "answers", owl_data, MODELS, ALL_QIDS)
    judge = _judge_folder(tmp_path / "judge")
    base = ["study", "create", "--db", str(tmp_path / "x.sqlite"), "--answers", str(tmp_path / "answers"), "--data", str(owl_data)]
    for extra, said in (
        (["--sample", "20", "--design", "active"], "--design active needs --judgements"),
        (["--sample", "20", "--judgements", str(judge)], "--design active needs --judgements"),
        (["--design", "active", "--judgements", str(judge)], "give --sample K"),
        (["--sample", "20", "--design", "clever"], "--design must be"),
    ):
        result = runner.invoke(app, base + extra)
        assert result.exit_code != 0 and said in " ".join(result.output.split()), (extra, result.output)
        assert not (tmp_path / "x.sqlite").exists()
    ok = runner.invoke(app, base + ["--sample", "20", "--design", "active", "--judgements", str(judge)])
    assert ok.exit_code == 0 and "active sample" in " ".join(ok.output.split()), ok.output


# --- the estimator ------------------------------------------------------------------------------------------------

from owleval.report.estimands import (  # noqa: E402
    Population,
    bootstrap_estimates,
    difference_estimate,
    headline_interval,
    pop_lambda,
    sample_interval,
    sampling_variance,
)


def _population(rng: np.random.Generator, big_n: int = 60):
    """A finite population: judge score f in 0..3, human grade y near it; a judge uncertainty u per answer."""
    f = rng.integers(0, 4, big_n).astype(float)
    u = np.where(f >= 2, rng.choice([0.2, 0.5], big_n), 0.05)  # unsure on the good answers: the draw favours them
    y = np.clip(f + np.where(rng.random(big_n) < u, rng.choice([-1.0, 1.0], big_n), 0.0), 0, 3)
    return f, y, u


def test_equal_probabilities_give_the_uniform_estimator_exactly():
    rng = np.random.default_rng(3)
    f, y_all, _ = _population(rng)
    y = np.where(rng.random(f.size) < 0.35, y_all, np.nan)
    image = np.arange(f.size) // 2
    n = int((~np.isnan(y)).sum())
    plain = Population(f, y, image)
    weighted = Population(f, y, image, np.full(f.size, n / f.size))
    lam = pop_lambda(plain)
    assert pop_lambda(weighted) == pytest.approx(lam, abs=1e-12)
    assert difference_estimate(weighted, lam) == pytest.approx(difference_estimate(plain, lam), abs=1e-12)
    for metric in ("mean_score", "acceptable"):
        for floor in (True, False):
            assert sampling_variance(weighted, lam, "mean_score", floor=floor) == pytest.approx(
                sampling_variance(plain, lam, "mean_score", floor=floor), rel=1e-9)
    assert sample_interval(weighted, lam, "mean_score") == pytest.approx(sample_interval(plain, lam, "mean_score"), abs=1e-9)
    counts = rng.multinomial(image.max() + 1, np.full(image.max() + 1, 1 / (image.max() + 1)), size=200).astype(float)
    reps_w, reps_p = bootstrap_estimates(weighted, counts), bootstrap_estimates(plain, counts)
    assert np.allclose(reps_w, reps_p, equal_nan=True)
    assert headline_interval(weighted, lam, reps_w, "mean_score") == pytest.approx(headline_interval(plain, lam, reps_p, "mean_score"))


def test_weighted_estimator_is_unbiased_and_its_variance_matches_under_poisson_sampling():
    """Active draws of a fixed population: the estimate's mean is the population mean (within Monte-Carlo error;
    lam and the ratio form leave an O(1/n) bias), and the variance formula (unfloored) tracks the real variance."""
    rng = np.random.default_rng(11)
    f, y_all, u = _population(rng, 80)
    pi = np.array(inclusion_probabilities(list(u), 25))
    image = np.arange(f.size)
    estimates, variances = [], []
    for _ in range(3000):
        drawn = rng.random(f.size) < pi
        if drawn.sum() < 5:
            continue
        pop = Population(f, np.where(drawn, y_all, np.nan), image, pi)
        lam = pop_lambda(pop)
        estimates.append(difference_estimate(pop, lam))
        variances.append(sampling_variance(pop, lam, "mean_score", floor=False))
    estimates = np.array(estimates)
    se = estimates.std() / math.sqrt(estimates.size)
    assert abs(estimates.mean() - y_all.mean()) < 4 * se + 0.005, (estimates.mean(), y_all.mean(), se)
    assert 0.75 < np.mean(variances) / estimates.var() < 1.35, (np.mean(variances), estimates.var())
    # the plain (unweighted) mean of the graded answers is biased under this design: the weights matter
    plain = [np.mean(y_all[rng.random(f.size) < pi]) for _ in range(2000)]
    assert abs(np.mean(plain) - y_all.mean()) > 8 * np.std(plain) / math.sqrt(2000)


# --- the report on an active study ----------------------------------------------------------------------------------

import json  # noqa: E402
import sqlite3  # noqa: E402

from owleval.study.queue import load_queue, record_grade  # noqa: E402


def _graded_active_study(tmp_path: Path, owl_data: Path):
    study = _active_study(tmp_path, owl_data, name="graded.sqlite")
    judge = pd.read_csv(tmp_path / "judge-graded.sqlite" / "grades.csv")
    store = Store(study.path)
    try:
        who = store.conn.execute("SELECT annotator_id FROM annotators WHERE name = 'ann'").fetchone()[0]
        for item in load_queue(store, who):  # the human agrees with the judge's letter, one step down every third answer
            letter = judge.set_index(["model_id", "question_id"]).at[(item.model_id, item.question_id), "grade"]
            record_grade(store, who, item.answer_id, {"B": "C", "C": "D"}[letter] if item.question_id % 3 == 0 else letter, "")
    finally:
        store.close()
    return study, tmp_path / "judge-graded.sqlite"


def _report(study_path: Path, judge: Path, out: Path, owl_data: Path):
    return runner.invoke(app, ["report", "--data", str(owl_data), "--grades", str(study_path), "--judge", str(judge), "--out", str(out),
                               "--bootstrap", "50", "--format", "csv"])  # fmt: skip


def _set_design(path: Path, change) -> None:
    with sqlite3.connect(path) as conn:
        design = json.loads(conn.execute("SELECT value FROM meta WHERE key = 'sample_design'").fetchone()[0])
        change(design)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'sample_design'", (json.dumps(design),))


def test_report_weights_an_active_study_and_refuses_one_that_does_not_match(tmp_path, owl_data):
    study, judge_dir = _graded_active_study(tmp_path, owl_data)
    result = _report(study.path, judge_dir, tmp_path / "r", owl_data)
    assert result.exit_code == 0, result.output
    ppi = pd.read_csv(tmp_path / "r" / "ppi.csv").set_index(["model", "metric"])
    meta = json.loads((tmp_path / "r" / "report_meta.json").read_text())
    assert meta["judge"]["sampling_design"].startswith("active sampling")
    judge = pd.read_csv(judge_dir / "grades.csv")
    for model in MODELS:
        part = study.sample_design["models"][model]
        row = ppi.loc[(model, "acceptable")]
        assert "active sample" in row["note"] and row["n_human"] == len(part["question_ids"])
        # by hand: lam and the 1/pi-weighted means over the drawn answers, the judge's mean over all 82
        mine = judge[judge.model_id == model].set_index("question_id").sort_index()
        f = mine["p_acceptable"].to_numpy()
        drawn = np.array(part["question_ids"])
        w = np.array([1 / part["probabilities"][str(q)] for q in drawn])
        letters = mine.loc[drawn, "grade"].to_numpy()
        y = np.array([0.0 if q % 3 == 0 else float(g == "B") for q, g in zip(drawn, letters, strict=True)])
        fs = mine.loc[drawn, "p_acceptable"].to_numpy()
        fm, ym = np.average(fs, weights=w), np.average(y, weights=w)
        lam = np.clip(np.average((y - ym) * (fs - fm), weights=w) / np.average((fs - fm) ** 2, weights=w), 0, 1)
        if "does not narrow" in row["note"]:  # the judge-based interval would be wider: the human-only row (lambda 0)
            lam = 0.0
        assert row["lambda"] == pytest.approx(lam)
        assert row["estimate"] == pytest.approx(lam * f.mean() + np.average(y - lam * fs, weights=w))
        assert row["sample_ci_low"] < row["estimate"] < row["sample_ci_high"]
    status = runner.invoke(app, ["study", "status", "--db", str(study.path)])
    assert "active sample" in " ".join(status.output.split())

    model = MODELS[1]
    for change, said in (
        (lambda d: d["models"][model].pop("probabilities"), "inclusion probabilities are missing"),
        (lambda d: d["models"][model]["probabilities"].update({"1": 0.0}), "question 1: inclusion probability 0.0 is not in (0, 1]"),
        (lambda d: d["models"][model]["probabilities"].update({"1": d["models"][model]["probabilities"]["1"] / 2}), "do not match it"),
        (lambda d: d["models"][model]["probabilities"].pop("5"), "no inclusion probability for question(s) 5"),
        (lambda d: d.update(design="uniform"), "design is uniform but it stores inclusion probabilities"),
        (lambda d: d["models"][model]["question_ids"].pop(0), "have human grades but were not drawn"),
    ):
        _set_design(study.path, change)
        out = tmp_path / f"bad-{said[:8]}"
        bad = _report(study.path, judge_dir, out, owl_data)
        text = " ".join(bad.output.split())
        named = model if "uniform" not in said else sorted(MODELS)[0]  # every model stores them: the first is named
        assert bad.exit_code == 1 and f"graded.sqlite: model {named}" in text and said in text, (said, bad.output)
        assert not (out / "ppi.csv").exists()
        _set_design(study.path, lambda d: d.update(study.sample_design))  # restore


def test_a_model_added_by_refresh_gets_a_poisson_draw_with_its_probabilities(tmp_path, owl_data):
    from owleval.study.manage import refresh_study

    study = _active_study(tmp_path, owl_data, name="r.sqlite")
    extra = write_answer_files(tmp_path / "extra", owl_data, ("wombat-model-w4",), ALL_QIDS)
    answers = sorted((tmp_path / "answers-r.sqlite").iterdir()) + list(extra)
    store = Store(study.path)
    try:
        refresh_study(store, answers)
        design = read_design(store.meta())
    finally:
        store.close()
    part = design["models"]["wombat-model-w4"]
    assert len(part["probabilities"]) == 82 and sum(part["probabilities"].values()) == pytest.approx(20)
    assert {model: design["models"][model] for model in MODELS} == {model: study.sample_design["models"][model] for model in MODELS}


def test_status_lists_each_drawn_answer_with_its_stored_probability(tmp_path, owl_data):
    import pandas as pd

    study = _active_study(tmp_path, owl_data)
    out = tmp_path / "drawn.csv"
    result = runner.invoke(app, ["study", "status", "--db", str(study.path), "--list-sample", str(out)])
    assert result.exit_code == 0, result.output
    drawn = pd.read_csv(out)
    probabilities = study.sample_design["models"]
    assert set(zip(drawn["model_id"], drawn["question_id"], strict=True)) == sampled_slots(study.sample_design)
    for row in drawn.itertuples(index=False):
        assert row.inclusion_probability == probabilities[row.model_id]["probabilities"][str(row.question_id)]
