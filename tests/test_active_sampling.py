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
from owleval.grading.sample import FLOOR_SHARE, TURN_TYPES, allocate, draw_model_active, inclusion_probabilities, read_design, sampled_slots
from owleval.grading.store import Store
from owleval.grading.study import create_study
from owleval.questions import load_questions
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
    return create_study(tmp_path / name, answers, annotators=("ann",), seed=seed, data_dir=owl_data, sample_size=20, judgements=judge)


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
