"""Pairwise voter QC: position bias, tie share, agreement with the Bradley-Terry fit of the other voters, gold pairs.

Per voter: ``left_share`` (of the decisive votes, the share won by the answer shown on the left; 0.5 = no position
bias) and ``tie_share`` (tie or both bad), each with Wilson's 95% interval; ``anomaly_z`` / ``anomaly_p``: how
unlikely the voter's decisive votes are under a Bradley-Terry model fitted to everyone else's votes (the sum of
log-probabilities of the outcomes they chose, standardised by its mean and variance under that model: a z-score and
its one-sided normal p-value, far below 0 for votes that go against the others' ranking); gold accuracy on gold pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.special import expit

from owleval.quality.rules import Rule, fired
from owleval.stats import bradley_terry, wilson_interval

VOTER_COLUMNS = (
    "annotator", "n_votes", "left_share", "left_ci_low", "left_ci_high", "tie_share", "tie_ci_low", "tie_ci_high", "anomaly_z",
    "anomaly_p", "gold_n", "gold_correct", "qc_flags",
)  # fmt: skip
DECISIVE = ("model_a", "model_b")
TIES = ("tie", "both_bad")

VOTER_RULES: tuple[Rule, ...] = (
    Rule("vote_position", "left_excess", "at_least", 0.2, "the 95% interval of left_share lies beyond 0.5 +/- this (position bias)"),
    Rule("vote_ties", "tie_share", "at_least", 0.8, "share of ties and both-bad votes", "n_votes", 10),
    Rule("vote_anomaly", "anomaly_p", "below", 0.001, "one-sided p of the voter's decisive votes under the others' Bradley-Terry fit",
         "n_decisive", 10),
    Rule("vote_gold", "gold_correct", "below", 0.6, "share of gold pairs voted as the expert did", "gold_n", 5),
)


def _wins(votes: pd.DataFrame, models: Sequence[str]) -> np.ndarray:
    pos = {m: i for i, m in enumerate(models)}
    a, b = votes["model_a"].map(pos).to_numpy(), votes["model_b"].map(pos).to_numpy()
    wins = np.zeros((len(models), len(models)))
    s = votes["outcome"].to_numpy(dtype=float)
    np.add.at(wins, (a, b), s)
    np.add.at(wins, (b, a), 1.0 - s)
    return wins


def anomaly(mine: pd.DataFrame, others: pd.DataFrame, models: Sequence[str]) -> tuple[float, float, int]:
    """(z, one-sided p, decisive votes) of the voter's decisive votes under the others' Bradley-Terry strengths."""
    from scipy.stats import norm

    decisive = mine[mine["winner"].isin(DECISIVE)]
    if decisive.empty or others.empty:
        return np.nan, np.nan, int(len(decisive))
    theta = bradley_terry(_wins(others, models), prior=1.0)
    pos = {m: i for i, m in enumerate(models)}
    q = expit(theta[decisive["model_a"].map(pos).to_numpy()] - theta[decisive["model_b"].map(pos).to_numpy()])  # P(model_a wins)
    q = np.clip(q, 1e-9, 1 - 1e-9)
    chose_a = (decisive["winner"] == "model_a").to_numpy()
    loglik = np.where(chose_a, np.log(q), np.log1p(-q))
    mean = q * np.log(q) + (1 - q) * np.log1p(-q)
    var = q * (1 - q) * (np.log(q) - np.log1p(-q)) ** 2
    if var.sum() <= 0:
        return np.nan, np.nan, int(len(decisive))
    z = float((loglik.sum() - mean.sum()) / np.sqrt(var.sum()))
    return z, float(norm.cdf(z)), int(len(decisive))


def voter_table(votes: pd.DataFrame, *, gold: pd.DataFrame | None = None, rules: Sequence[Rule] = VOTER_RULES) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(voters.csv table, details with the figures the rules read). ``votes``: validated votes with item_kind and
    expected_winner; ``gold``: pairs (question_id, model_a, model_b, winner), else the expected_winner of gold rows."""
    kind = votes["item_kind"] if "item_kind" in votes.columns else pd.Series("regular", index=votes.index)
    regular = votes[kind == "regular"]
    if gold is None and "expected_winner" in votes.columns:
        rows = votes[(kind == "gold") & (votes["expected_winner"] != "")]
        gold = rows[["question_id", "model_a", "model_b", "expected_winner"]].rename(columns={"expected_winner": "gold_winner"}).drop_duplicates(
            ["question_id", "model_a", "model_b"])  # fmt: skip
    elif gold is not None:
        gold = gold.rename(columns={"winner": "gold_winner"})
    models = sorted(set(votes["model_a"]) | set(votes["model_b"]))
    out = []
    for name in sorted(votes["annotator"].unique()):
        mine = regular[regular["annotator"] == name]
        decisive = mine[mine["winner"].isin(DECISIVE) & (mine["left"] != "")]
        left_wins = int(((decisive["winner"] == "model_a") & (decisive["left"] == decisive["model_a"])).sum()
                        + ((decisive["winner"] == "model_b") & (decisive["left"] == decisive["model_b"])).sum())  # fmt: skip
        lo, hi = wilson_interval(np.array([left_wins]), np.array([len(decisive)]))
        ties = int(mine["winner"].isin(TIES).sum())
        tlo, thi = wilson_interval(np.array([ties]), np.array([len(mine)]))
        z, p, n_decisive = anomaly(mine, regular[regular["annotator"] != name], models)
        row = {"annotator": name, "n_votes": int(len(mine)), "left_share": left_wins / len(decisive) if len(decisive) else np.nan,
               "left_ci_low": float(lo[0]), "left_ci_high": float(hi[0]), "tie_share": ties / len(mine) if len(mine) else np.nan,
               "tie_ci_low": float(tlo[0]), "tie_ci_high": float(thi[0]), "anomaly_z": z, "anomaly_p": p, "n_decisive": n_decisive}  # fmt: skip
        row["left_excess"] = max(row["left_ci_low"] - 0.5, 0.5 - row["left_ci_high"]) if len(decisive) else np.nan
        if gold is not None and len(gold):
            pairs = votes[votes["annotator"] == name].merge(gold, on=["question_id", "model_a", "model_b"])
            row["gold_n"] = int(len(pairs))
            row["gold_correct"] = float((pairs["winner"] == pairs["gold_winner"]).mean()) if len(pairs) else np.nan
        else:
            row["gold_n"], row["gold_correct"] = 0, np.nan
        row["qc_flags"] = ";".join(fired(row, rules))
        out.append(row)
    details = pd.DataFrame(out)
    return details[list(VOTER_COLUMNS)].copy(), details


def read_gold_pairs(path) -> pd.DataFrame:  # noqa: ANN001 - a Path
    """A pairwise gold file ``question_id, model_a, model_b, winner`` (votes.csv vocabulary, model_a < model_b)."""
    from owleval.csvio import read_records
    from owleval.errors import InputFileError, Problem
    from owleval.records.votes import WINNER_TOKENS

    rows, problems = [], []
    for line, rec in read_records(path, ("question_id", "model_a", "model_b", "winner"), known=("note",), what="a pairwise gold file has"):
        qid, a, b, w = (str(rec.get(k) or "").strip() for k in ("question_id", "model_a", "model_b", "winner"))
        if not qid.isdigit():
            problems.append(Problem(path, line, "question_id", f"{qid!r} is not a question id"))
        if not a or not b or a >= b:
            problems.append(Problem(path, line, "model_a", f"model_a {a!r} must sort before model_b {b!r}"))
        if w not in WINNER_TOKENS:
            problems.append(Problem(path, line, "winner", f"{w!r} is not a vote; allowed {', '.join(WINNER_TOKENS)}"))
        if qid.isdigit() and a and b and a < b and w in WINNER_TOKENS:
            rows.append({"question_id": int(qid), "model_a": a, "model_b": b, "winner": w})
    if problems:
        raise InputFileError(problems)
    return pd.DataFrame(rows, columns=["question_id", "model_a", "model_b", "winner"])
