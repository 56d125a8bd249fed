"""The human-anchored (PPI) Bradley-Terry ranking: equal to ppi_py on the same rows, and narrower than people alone
when the judge is accurate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from owleval.questions import load_questions
from owleval.report.arena import build_arena, ppi_rows
from owleval.report.ppi_logistic import ppi_logistic
from owleval.report.tables import question_info
from owleval.records.votes import OUTCOME_SCORE

from tests.report_helpers import data_dir
from tests.vote_fixtures import STRENGTHS, fixed_rows, fixed_votes
from tests.vote_helpers import judge_votes_from, synthetic_votes
from tests.timing import budget

ROOT = Path(__file__).resolve().parent.parent

# ppi-python 0.2.3 on fixed_rows(): ppi_logistic_pointestimate(x, y, yhat, x_u, yhat_u, w=w, w_unlabeled=w_u) and
# ppi_logistic_ci(..., alpha=0.05, w=w, w_unlabeled=w_u). test_equals_ppi_py_itself recomputes them with the library.
RECORDED_COEF = [0.8792300715810936, 0.757649248368933]
RECORDED_LOW = [0.39285436905969096, 0.2509127935050032]
RECORDED_HIGH = [1.4235493693501122, 1.2683611593313513]


def _estimate(rows: dict[str, np.ndarray]):
    return ppi_logistic(rows["x"], rows["y"], rows["yhat"], rows["x_unlabeled"], rows["yhat_unlabeled"], w=rows["w"],
                        w_unlabeled=rows["w_unlabeled"], alpha=0.05)  # fmt: skip


def test_rows_follow_the_issue():
    human, judge = fixed_votes()
    rows = fixed_rows()
    n_lab, n_unl = int(rows["n_labelled_votes"]), int(rows["n_unlabelled_votes"])
    # every human vote lands on a judged pair; the unlabelled rows are the judged pairs nobody voted on
    assert n_lab == len(human) and n_unl == len(judge) - len(human)
    # a decisive vote is one row of weight 1; a vote with a tie (human's or judge's) two rows of weight 1/2
    judged = human.merge(judge[["question_id", "model_a", "model_b", "outcome"]], on=["question_id", "model_a", "model_b"], suffixes=("", "_j"))
    ties = int(((judged["outcome"] == 0.5) | (judged["outcome_j"] == 0.5)).sum())
    assert 0 < ties < n_lab
    assert rows["x"].shape == (n_lab + ties, len(STRENGTHS) - 1)  # reference (alpha) dropped
    assert sorted(set(rows["w"])) == [0.5, 1.0] and rows["w"].sum() == pytest.approx(n_lab)
    assert rows["w_unlabeled"].sum() == pytest.approx(n_unl)
    # x = e_a - e_b: each row sums to 0 or, with the reference in the pair, to -1 / +1
    assert set(np.abs(rows["x"]).sum(axis=1)) <= {1.0, 2.0}
    # per vote, the weighted mean of y is the person's outcome and of yhat the judge's
    assert np.sum(rows["w"] * rows["y"]) == pytest.approx(judged["outcome"].sum())
    assert np.sum(rows["w"] * rows["yhat"]) == pytest.approx(judged["outcome_j"].sum())


def test_equals_values_recorded_from_ppi_py():
    est = _estimate(fixed_rows())
    assert est.coef == pytest.approx(RECORDED_COEF, abs=1e-6)
    assert est.ci_low == pytest.approx(RECORDED_LOW, abs=1e-6)
    assert est.ci_high == pytest.approx(RECORDED_HIGH, abs=1e-6)
    assert 0.0 <= est.lam <= 1.0 and est.converged


@pytest.mark.slow
def test_equals_ppi_py_itself(tmp_path):
    """ppi_py run in a child process (its numba JIT disabled: same arithmetic, no minute of compiling; and its own
    top-level `tests` package cannot shadow ours) on the rows the report builds, with the --against reference."""
    target = ROOT / ".ppi_py"
    if not (target / "ppi_py").is_dir():
        pytest.skip("ppi_py not installed: run scripts/setup.sh (it installs it into .ppi_py/)")
    rows = fixed_rows(reference="beta")
    np.savez(tmp_path / "rows.npz", **{k: rows[k] for k in ("x", "y", "yhat", "x_unlabeled", "yhat_unlabeled", "w", "w_unlabeled")})
    script = (
        "import json, sys, numpy as np\n"
        f"sys.path.append({str(target)!r})\n"
        "import ppi_py\n"
        f"r = np.load({str(tmp_path / 'rows.npz')!r})\n"
        "a = (r['x'], r['y'], r['yhat'], r['x_unlabeled'], r['yhat_unlabeled'])\n"
        "kw = dict(w=r['w'], w_unlabeled=r['w_unlabeled'])\n"
        "pe = ppi_py.ppi_logistic_pointestimate(*a, **kw)\n"
        "lo, hi = ppi_py.ppi_logistic_ci(*a, alpha=0.05, **kw)\n"
        "print(json.dumps([pe.tolist(), lo.tolist(), hi.tolist()]))\n"
    )
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=budget(600))
    assert done.returncode == 0, done.stderr[-2000:]
    coef, low, high = json.loads(done.stdout.strip().splitlines()[-1])
    est = _estimate(rows)
    assert est.coef == pytest.approx(coef, abs=1e-3)
    assert est.ci_low == pytest.approx(low, abs=1e-3)
    assert est.ci_high == pytest.approx(high, abs=1e-3)


def test_reference_model_row_is_zero_and_strengths_are_centred():
    """The reference is --against when given, else the first model; its reference-coded row is 0. (lam is tuned for
    the reference-coded coefficients, so another reference moves the centred strengths a little.)"""
    human, judge = fixed_votes()
    info = question_info(load_questions(data_dir()))
    a = build_arena(human, judge, info, n_boot=0, seed=0).tables["arena"]
    b = build_arena(human, judge, info, n_boot=0, seed=0, against="gamma").tables["arena"]
    pa, pb = (t[t["source"] == "ppi"].set_index("model").sort_index() for t in (a, b))
    assert (pa.loc["alpha", ["ref_coef", "ref_ci_low", "ref_ci_high"]] == 0).all()
    assert (pb.loc["gamma", ["ref_coef", "ref_ci_low", "ref_ci_high"]] == 0).all()
    assert pa.loc["beta", "ref_coef"] == pytest.approx(RECORDED_COEF[0], abs=1e-6)
    for p in (pa, pb):
        assert p["strength"].mean() == pytest.approx(0.0, abs=1e-12)
        assert p["strength"].idxmin() == "alpha"  # both other models beat it clearly in these votes
        # centred strengths are the reference-coded coefficients shifted by their mean
        assert p["strength"].to_numpy() == pytest.approx((p["ref_coef"] - p["ref_coef"].mean()).to_numpy(), abs=1e-12)
        assert ((p["ci_low"] < p["strength"]) & (p["strength"] < p["ci_high"])).all()


def test_accurate_judge_narrows_the_intervals_and_keeps_the_order():
    """With a judge that agrees with people 95% of the time on every pair, the PPI intervals are narrower than the
    human-only ones, and the known order of strengths is recovered."""
    questions = load_questions(data_dir())
    strengths = {"m1": 0.0, "m2": 0.7, "m3": 1.4, "m4": 2.1}
    truth = synthetic_votes([q.question_id for q in questions], strengths, ["ann"], seed=21, tie=0.1)
    judge = judge_votes_from(truth, accuracy=0.95, seed=22)
    human = truth[np.random.default_rng(23).random(len(truth)) < 0.25].reset_index(drop=True)
    for frame in (human, judge):
        frame["outcome"] = frame["winner"].map(OUTCOME_SCORE)
    arena = build_arena(human, judge, question_info(questions), n_boot=300, seed=0).tables["arena"]
    width = (arena["ci_high"] - arena["ci_low"]).groupby(arena["source"]).mean()
    assert width["ppi"] < 0.8 * width["human"]
    ppi = arena[arena["source"] == "ppi"]
    assert ppi.sort_values("strength")["model"].tolist() == ["m1", "m2", "m3", "m4"]


def test_too_few_human_votes_give_no_ppi_ranking_and_say_why():
    human, judge = fixed_votes()
    info = question_info(load_questions(data_dir()))
    result = build_arena(human.head(5), judge, info, n_boot=0, seed=0)
    assert "ppi" not in set(result.tables["arena"]["source"])
    assert "at least 10 human votes on pairs the judge voted on" in result.meta["ppi"]["skipped"]
    assert "there are 1 such model(s), 0 and 0 such votes" in result.meta["ppi"]["skipped"]


def test_a_useless_judge_gives_about_the_plain_logistic_interval():
    """A judge that answers at random carries no information: lam goes to about 0 and the PPI interval is about the
    Wald interval of the plain logistic fit to the people's votes (each vote one observation: counting a vote twice
    would shrink it by sqrt 2)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(31)
    models = ["a", "b", "c", "d"]
    beta = {"a": 0.0, "b": 0.5, "c": 1.0, "d": 1.5}
    pairs = [(x, y) for i, x in enumerate(models) for y in models[i + 1 :]]
    k = rng.integers(0, len(pairs), 1600)
    a, b = np.array([pairs[i][0] for i in k]), np.array([pairs[i][1] for i in k])
    won = rng.random(k.size) < 1.0 / (1.0 + np.exp(-(np.vectorize(beta.get)(a) - np.vectorize(beta.get)(b))))
    cols = {"question_id": np.arange(k.size), "model_a": a, "model_b": b}
    judge = pd.DataFrame({**cols, "winner": np.where(rng.random(k.size) < 0.5, "model_a", "model_b")})
    people = rng.random(k.size) < 0.3
    human = pd.DataFrame({c: v[people] for c, v in cols.items()} | {"winner": np.where(won[people], "model_a", "model_b")})
    for frame in (human, judge):
        frame["outcome"] = frame["winner"].map(OUTCOME_SCORE)
    rows = ppi_rows(human, judge, models, "a")
    est = _estimate(rows)
    # the plain fit from the votes themselves, one row per vote
    x = np.array([[float(m == va) - float(m == vb) for m in models[1:]] for va, vb in zip(human["model_a"], human["model_b"], strict=True)])
    y = won[people].astype(float)
    plain = LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-10, max_iter=1000).fit(x, y).coef_.ravel()
    mu = 1.0 / (1.0 + np.exp(-(x @ plain)))
    wald_half = 1.96 * np.sqrt(np.diag(np.linalg.inv((x.T * (mu * (1 - mu))) @ x)))
    assert est.lam < 0.2
    assert (est.ci_high - est.ci_low) / 2 == pytest.approx(wald_half, rel=0.15)
