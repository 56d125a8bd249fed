"""Rankings from pairwise votes: win rates and Bradley-Terry strengths from people's votes and from the pairwise
judge's, their agreement, and a human-anchored (PPI) Bradley-Terry ranking.

Conventions are the A-D leaderboard's (compare.py): a vote's outcome for ``model_a`` is 1 (won), 0 (lost) or 1/2
(tie or "both bad", counted apart as well); Bradley-Terry strengths are log-odds with mean 0 and the same stated
prior (``compare.BT_PRIOR`` virtual tied games per pair), fitted by ``stats.bradley_terry``; intervals are
percentile bootstrap intervals resampling images (votes about one image are not independent). A model's rank is
1 + the number of models whose interval lies wholly above its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from owleval.report.compare import BT_BOOTSTRAP_TOL, BT_PRIOR, MIN_COMPARISONS
from owleval.report.ppi_logistic import ppi_logistic
from owleval.report.ranks import as_int_column, rank_intervals
from owleval.stats import (
    CI_LEVEL,
    bootstrap_counts,
    bradley_terry,
    clustered_wilson,
    holm,
    kappa_from_confusion,
    kappa_weights,
    percentile_ci,
    ratio_bootstrap,
    sign_test_pvalues,
)

#: a pair of models with fewer votes than this is flagged "too few" in the win-rate table
MIN_PAIR_VOTES = 10
#: an agreement measure over fewer pairs than this gets its value and "too few", no interval
MIN_AGREEMENT_N = 10
PPI_ALPHA = 0.05
#: the PPI ranking needs at least this many human votes on judged pairs (and two per strength estimated)
MIN_PPI_LABELLED = 10
SOURCES = ("human", "judge", "ppi")
ARENA_COLUMNS = (
    "model", "source", "strength", "ci_low", "ci_high", "rank", "rank_low", "rank_high", "n_human_votes", "n_judge_votes",
    "ref_coef", "ref_ci_low", "ref_ci_high", "note",
)  # fmt: skip
#: a model with fewer human votes than this (on pairs the judge also voted on) gets no PPI strength, interval or rank:
#: the judge alone would place it, and nothing anchors the judge's verdicts on it to people
MIN_PPI_HUMAN_VOTES = 5
PAIR_COLUMNS = ("source", "model_a", "model_b", "n_votes", "a_wins", "b_wins", "ties", "both_bad", "a_win_rate", "ci_low", "ci_high", "too_few")
ADJACENT_COLUMNS = (
    "source", "model_higher", "model_lower", "strength_diff", "diff_ci_low", "diff_ci_high", "p_bootstrap", "p_holm",
    "n_votes", "higher_wins", "lower_wins", "ties", "sign_test_p",
)  # fmt: skip
AGREEMENT_COLUMNS = ("comparison", "measure", "value", "ci_low", "ci_high", "n", "note")
#: a vote's category for agreement: model_a won, tie (a tie or both bad), model_b won
CATEGORY = {"model_a": 0, "tie": 1, "both_bad": 1, "model_b": 2}
TIE_RULE = "a tie and a “both bad” vote count half a win for each model; “both bad” votes are also counted apart"
PPI_RULE = (
    "logistic regression without intercept on x = e_a − e_b (reference-coded), y = 1 when model_a wins; labelled rows: one per "
    "human vote on a pair the judge also voted on, with the judge’s verdict as the prediction; unlabelled rows: the judge’s "
    "verdicts on pairs no person voted on; a vote is one row of weight 1, or, when its outcome (the person’s or the judge’s) "
    "is a tie or both bad, two rows y = 1 and y = 0 of weight 1/2 (the two outcomes split in step: a tie by both is rows "
    "(1, 1) and (0, 0)); PPI++ with power tuning (λ clipped to [0, 1] and tuned for the reference-coded coefficients, so "
    "another reference moves the estimates slightly); CLT intervals over rows taken as independent (they do not resample "
    "images); no prior"
)


@dataclass
class ArenaResult:
    """The vote tables and what the report says about them."""

    tables: dict[str, pd.DataFrame]
    meta: dict[str, Any] = field(default_factory=dict)


def vote_models(*frames: pd.DataFrame | None) -> list[str]:
    """Every model that appears in a vote, sorted."""
    names: set[str] = set()
    for f in frames:
        if f is not None:
            names |= set(f["model_a"]) | set(f["model_b"])
    return sorted(names)


def _image_codes(qids: np.ndarray, info: pd.DataFrame) -> tuple[np.ndarray, int]:
    codes, names = pd.factorize(info.loc[qids, "image"].to_numpy())
    return codes, len(names)


def _index(votes: pd.DataFrame, models: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    pos = {m: i for i, m in enumerate(models)}
    return votes["model_a"].map(pos).to_numpy(), votes["model_b"].map(pos).to_numpy()


def per_image_wins(votes: pd.DataFrame, models: Sequence[str], info: pd.DataFrame) -> np.ndarray:
    """(images, m * m): wins of row model over column model per image, a tie half a win each."""
    m = len(models)
    a, b = _index(votes, models)
    img, n_img = _image_codes(votes["question_id"].to_numpy(), info)
    s = votes["outcome"].to_numpy(dtype=np.float64)
    out = np.zeros((n_img, m * m))
    np.add.at(out, (img, a * m + b), s)
    np.add.at(out, (img, b * m + a), 1.0 - s)
    return out


def _ranks(low: np.ndarray, high: np.ndarray, enough: np.ndarray | None = None) -> np.ndarray:
    """1 + the number of ranked models whose interval lies strictly above this one's; NaN without an interval or,
    where ``enough`` is False, with too few votes (as the A-D leaderboard, fewer than MIN_COMPARISONS)."""
    valid = np.isfinite(low) & np.isfinite(high)
    if enough is not None:
        valid &= enough
    above = (low[None, :] > high[:, None]) & valid[None, :]
    return np.where(valid, 1 + above.sum(axis=1), np.nan)


def _votes_per_model(votes: pd.DataFrame, models: Sequence[str]) -> np.ndarray:
    counts = pd.concat([votes["model_a"], votes["model_b"]]).value_counts()
    return np.array([int(counts.get(m, 0)) for m in models])


def bt_ranking(votes: pd.DataFrame, models: Sequence[str], info: pd.DataFrame, *, source: str, n_boot: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Bradley-Terry strengths with image-bootstrap CIs and ranks; also the (n_boot, m) bootstrap strengths."""
    m = len(models)
    per_img = per_image_wins(votes, models, info)
    strength = bradley_terry(per_img.sum(axis=0).reshape(m, m), prior=BT_PRIOR)
    counts = bootstrap_counts(per_img.shape[0], n_boot, np.random.default_rng([seed, 300, SOURCES.index(source)]))
    boot = bradley_terry((counts @ per_img).reshape(n_boot, m, m), prior=BT_PRIOR, start=strength, tol=BT_BOOTSTRAP_TOL)
    low, high = percentile_ci(boot)
    n_votes = _votes_per_model(votes, models)
    enough = n_votes >= MIN_COMPARISONS
    rank_low, rank_high = rank_intervals(boot, enough & np.isfinite(low) & np.isfinite(high))
    zero = np.zeros(m, dtype=np.int64)
    table = pd.DataFrame(
        {"model": list(models), "source": source, "strength": strength, "ci_low": low, "ci_high": high,
         "rank": _ranks(low, high, enough), "rank_low": as_int_column(rank_low), "rank_high": as_int_column(rank_high),
         "n_human_votes": n_votes if source == "human" else zero, "n_judge_votes": n_votes if source == "judge" else zero,
         "note": np.where(enough, "", f"fewer than {MIN_COMPARISONS} votes: not ranked")}  # fmt: skip
    )
    table["rank"] = table["rank"].astype("Int64")
    return table, boot


def pair_table(votes: pd.DataFrame, models: Sequence[str], info: pd.DataFrame, *, source: str, n_boot: int, seed: int) -> pd.DataFrame:
    """Per pair with votes: counts, model_a's win rate (ties half) with a clustered Wilson interval, a too-few flag."""
    keys = sorted(set(zip(votes["model_a"], votes["model_b"], strict=True)))
    if not keys:
        return pd.DataFrame(columns=list(PAIR_COLUMNS))
    pair_code = {k: i for i, k in enumerate(keys)}
    col = np.array([pair_code[k] for k in zip(votes["model_a"], votes["model_b"], strict=True)])
    img, n_img = _image_codes(votes["question_id"].to_numpy(), info)
    numer, denom = np.zeros((n_img, len(keys))), np.zeros((n_img, len(keys)))
    np.add.at(numer, (img, col), votes["outcome"].to_numpy(dtype=np.float64))
    np.add.at(denom, (img, col), 1.0)
    counts = bootstrap_counts(n_img, n_boot, np.random.default_rng([seed, 310, SOURCES.index(source)]))
    n = denom.sum(axis=0)
    rate = numer.sum(axis=0) / n
    low, high = clustered_wilson(rate, n, ratio_bootstrap(counts, numer, denom))
    tally = pd.crosstab([votes["model_a"], votes["model_b"]], votes["winner"]).reindex(columns=list(CATEGORY), fill_value=0)
    tally = tally.reindex(pd.MultiIndex.from_tuples(keys), fill_value=0)
    rows = []
    for k, (a, b) in enumerate(keys):
        w = tally.iloc[k]
        rows.append({"source": source, "model_a": a, "model_b": b, "n_votes": int(n[k]), "a_wins": int(w["model_a"]),
                     "b_wins": int(w["model_b"]), "ties": int(w["tie"]), "both_bad": int(w["both_bad"]),
                     "a_win_rate": rate[k], "ci_low": low[k], "ci_high": high[k], "too_few": bool(n[k] < MIN_PAIR_VOTES)})  # fmt: skip
    return pd.DataFrame(rows, columns=list(PAIR_COLUMNS))


def adjacent_table(ranking: pd.DataFrame, boot: np.ndarray, pairs: pd.DataFrame, *, source: str) -> pd.DataFrame:
    """Each model against the next one down in strength: the strength difference with its bootstrap CI and the
    bootstrap test of "no difference" (Holm over the adjacent pairs), and their head-to-head sign test."""
    order = np.argsort(-ranking["strength"].to_numpy(), kind="stable")
    models = ranking["model"].to_numpy()
    strength = ranking["strength"].to_numpy()
    by_pair = {(r["model_a"], r["model_b"]): r for r in pairs.to_dict("records")}
    rows = []
    for hi, lo in zip(order[:-1], order[1:], strict=True):
        d = boot[:, hi] - boot[:, lo] if boot.shape[0] else np.empty(0)
        dlow, dhigh = percentile_ci(d[:, None]) if d.size else (np.array([np.nan]), np.array([np.nan]))
        # two-sided bootstrap p of "no difference", (count + 1) / (B + 1) so that it is never 0
        p = min(1.0, 2.0 * (min(int((d <= 0).sum()), int((d >= 0).sum())) + 1) / (d.size + 1)) if d.size else np.nan
        a, b = sorted((models[hi], models[lo]))
        r = by_pair.get((a, b))
        if r is not None:
            hi_wins, lo_wins = (int(r["a_wins"]), int(r["b_wins"])) if a == models[hi] else (int(r["b_wins"]), int(r["a_wins"]))
            n_votes, ties = int(r["n_votes"]), int(r["ties"] + r["both_bad"])
        else:
            hi_wins = lo_wins = n_votes = ties = 0
        rows.append({"source": source, "model_higher": models[hi], "model_lower": models[lo], "strength_diff": strength[hi] - strength[lo],
                     "diff_ci_low": float(dlow[0]), "diff_ci_high": float(dhigh[0]), "p_bootstrap": p, "n_votes": n_votes,
                     "higher_wins": hi_wins, "lower_wins": lo_wins, "ties": ties})  # fmt: skip
    table = pd.DataFrame(rows, columns=[c for c in ADJACENT_COLUMNS if c not in ("p_holm", "sign_test_p")])
    sign_p = sign_test_pvalues(table["higher_wins"].to_numpy(dtype=np.int64), table["lower_wins"].to_numpy(dtype=np.int64))
    table["sign_test_p"] = np.where(table["n_votes"].to_numpy() > 0, sign_p, np.nan)
    p = table["p_bootstrap"].to_numpy(dtype=float)
    table["p_holm"] = holm(p) if np.isfinite(p).all() else np.full(p.size, np.nan)
    return table[list(ADJACENT_COLUMNS)]


def _kappa(conf: np.ndarray) -> np.ndarray:
    """Cohen's kappa from (..., 9) flattened 3 x 3 confusion counts (win / tie / loss)."""
    return kappa_from_confusion(conf.reshape(*conf.shape[:-1], 3, 3), kappa_weights(3))


def agreement_rows(first: np.ndarray, second: np.ndarray, qids: np.ndarray, info: pd.DataFrame, *, comparison: str, n_boot: int, seed: int) -> list[dict[str, Any]]:
    """Exact agreement and Cohen's kappa over win/tie/loss between two sets of outcomes on the same pairs."""
    n = int(first.size)
    if n == 0:
        return [{"comparison": comparison, "measure": m, "value": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n": 0, "note": "no pair voted by both"}
                for m in ("exact_agreement", "cohen_kappa")]  # fmt: skip
    img, n_img = _image_codes(qids, info)
    conf = np.zeros((n_img, 9))
    np.add.at(conf, (img, first * 3 + second), 1.0)
    same = (first == second).astype(float)
    numer, denom = np.zeros((n_img, 1)), np.zeros((n_img, 1))
    np.add.at(numer, (img, 0), same)
    np.add.at(denom, (img, 0), 1.0)
    counts = bootstrap_counts(n_img, n_boot, np.random.default_rng([seed, 320, len(comparison)]))
    share = float(same.mean())
    low, high = clustered_wilson(np.array([share]), np.array([float(n)]), ratio_bootstrap(counts, numer, denom))
    kappa = float(_kappa(conf.sum(axis=0)))
    klow, khigh = percentile_ci(_kappa(counts @ conf))
    few = n < MIN_AGREEMENT_N
    note = f"too few (n < {MIN_AGREEMENT_N})" if few else ""
    return [
        {"comparison": comparison, "measure": "exact_agreement", "value": share, "ci_low": np.nan if few else float(low[0]),
         "ci_high": np.nan if few else float(high[0]), "n": n, "note": note},
        {"comparison": comparison, "measure": "cohen_kappa", "value": kappa, "ci_low": np.nan if few else float(klow),
         "ci_high": np.nan if few else float(khigh), "n": n, "note": note},
    ]  # fmt: skip


PAIR_KEY = ["question_id", "model_a", "model_b"]


def judge_agreement(human: pd.DataFrame, judge: pd.DataFrame, info: pd.DataFrame, *, n_boot: int, seed: int) -> list[dict[str, Any]]:
    """The judge against each human vote on a pair both voted on."""
    both = human.merge(judge[[*PAIR_KEY, "winner"]], on=PAIR_KEY, suffixes=("", "_judge"))
    return agreement_rows(both["winner"].map(CATEGORY).to_numpy(dtype=int), both["winner_judge"].map(CATEGORY).to_numpy(dtype=int),
                          both["question_id"].to_numpy(), info, comparison="judge vs human votes", n_boot=n_boot, seed=seed)  # fmt: skip


def grades_agreement(human: pd.DataFrame, answer_scores: pd.DataFrame, info: pd.DataFrame, *, n_boot: int, seed: int) -> list[dict[str, Any]]:
    """The A-D grades' pairwise outcome (higher score wins, equal a tie) against each human vote where both answers were graded."""
    s = answer_scores.rename(columns={"model_id": "model"})
    both = human.merge(s.rename(columns={"model": "model_a", "score": "score_a"}), on=["question_id", "model_a"])
    both = both.merge(s.rename(columns={"model": "model_b", "score": "score_b"}), on=["question_id", "model_b"])
    grade_cat = np.where(both["score_a"] > both["score_b"], 0, np.where(both["score_a"] < both["score_b"], 2, 1))
    return agreement_rows(both["winner"].map(CATEGORY).to_numpy(dtype=int), grade_cat.astype(int), both["question_id"].to_numpy(), info,
                          comparison="A-D grades vs human votes", n_boot=n_boot, seed=seed)  # fmt: skip


def _rows(x: np.ndarray, outcomes: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """One row of weight 1 per vote whose outcomes are all decisive; two rows of weight 1/2 (y = 1 then y = 0) per
    vote with a tie among them, the outcomes split in step: a decisive one stays 1/1 or 0/0, a tie becomes 1 then 0."""
    tie = np.zeros(len(x), dtype=bool)
    for o in outcomes:
        tie |= (o > 0.0) & (o < 1.0)
    first = [np.where(o >= 0.5, 1.0, 0.0) for o in outcomes]
    second = [np.where(o[tie] > 0.5, 1.0, 0.0) for o in outcomes]
    w = np.r_[np.where(tie, 0.5, 1.0), np.full(int(tie.sum()), 0.5)]
    return np.vstack([x, x[tie]]), [np.r_[f, t] for f, t in zip(first, second, strict=True)], w


def _design(votes: pd.DataFrame, models: Sequence[str], reference: str) -> np.ndarray:
    others = [m for m in models if m != reference]
    col = {m: i for i, m in enumerate(others)}
    x = np.zeros((len(votes), len(others)))
    rows = np.arange(len(votes))
    a = votes["model_a"].map(col).to_numpy(dtype=float)
    b = votes["model_b"].map(col).to_numpy(dtype=float)
    ok_a, ok_b = ~np.isnan(a), ~np.isnan(b)
    x[rows[ok_a], a[ok_a].astype(int)] = 1.0
    x[rows[ok_b], b[ok_b].astype(int)] = -1.0
    return x


def ppi_rows(human: pd.DataFrame, judge: pd.DataFrame, models: Sequence[str], reference: str) -> dict[str, np.ndarray]:
    """The labelled and unlabelled rows of the PPI Bradley-Terry regression (see PPI_RULE)."""
    labelled = human.merge(judge[[*PAIR_KEY, "outcome"]], on=PAIR_KEY, suffixes=("", "_judge"))
    unvoted = judge.merge(human[PAIR_KEY].drop_duplicates(), on=PAIR_KEY, how="left", indicator=True)
    unlabelled = unvoted[unvoted["_merge"] == "left_only"]
    x, (y, yhat), w = _rows(_design(labelled, models, reference), [labelled["outcome"].to_numpy(dtype=float),
                                                                    labelled["outcome_judge"].to_numpy(dtype=float)])  # fmt: skip
    xu, (yhat_u,), w_u = _rows(_design(unlabelled, models, reference), [unlabelled["outcome"].to_numpy(dtype=float)])
    return {
        "x": x, "y": y, "yhat": yhat, "w": w, "x_unlabeled": xu, "yhat_unlabeled": yhat_u, "w_unlabeled": w_u,
        "n_labelled_votes": np.array(len(labelled)), "n_unlabelled_votes": np.array(len(unlabelled)),
        "labelled_models": _votes_per_model(labelled, models), "unlabelled_models": _votes_per_model(unlabelled, models),
    }  # fmt: skip


def _unanchored_row(model: str, n_human: int, n_judge: int, note: str) -> dict[str, Any]:
    return {"model": model, "source": "ppi", "strength": np.nan, "ci_low": np.nan, "ci_high": np.nan, "rank": pd.NA, "rank_low": pd.NA,
            "rank_high": pd.NA, "n_human_votes": n_human, "n_judge_votes": n_judge, "ref_coef": np.nan, "ref_ci_low": np.nan,
            "ref_ci_high": np.nan, "note": note}  # fmt: skip


def anchored_models(human: pd.DataFrame, judge: pd.DataFrame, models: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """The models with at least :data:`MIN_PPI_HUMAN_VOTES` human votes on pairs the judge voted on, and every model's count."""
    labelled = human.merge(judge[PAIR_KEY].drop_duplicates(), on=PAIR_KEY)
    counts = _votes_per_model(labelled, models)
    return [m for m, k in zip(models, counts, strict=True) if k >= MIN_PPI_HUMAN_VOTES], counts


def ppi_ranking(human: pd.DataFrame, judge: pd.DataFrame, models: Sequence[str], reference: str, *, n_draws: int = 2000,
                seed: int = 0) -> tuple[pd.DataFrame | None, dict[str, Any]]:  # fmt: skip
    """The human-anchored Bradley-Terry ranking, or None (with the reason) when the rows cannot support it.

    Only models people anchored take part: a model with fewer than MIN_PPI_HUMAN_VOTES human votes (on pairs the judge
    voted on) is left out of the fit with every vote that involves it, and its row has no numbers, only a note.
    """
    anchored, human_counts = anchored_models(human, judge, models)
    judge_counts = _votes_per_model(judge, models)
    info: dict[str, Any] = {"alpha": PPI_ALPHA, "rule": PPI_RULE, "min_human_votes": MIN_PPI_HUMAN_VOTES,
                            "unanchored": [m for m in models if m not in anchored]}  # fmt: skip
    left_out = {m: _unanchored_row(m, int(h), 0, f"fewer than {MIN_PPI_HUMAN_VOTES} human votes on pairs the judge voted on ({int(h)}): "
                                   "left out of the PPI fit, not ranked (the judge alone cannot anchor it)")
                for m, h in zip(models, human_counts, strict=True) if m not in anchored}  # fmt: skip
    inside = set(anchored)
    human = human[human["model_a"].isin(inside) & human["model_b"].isin(inside)]
    judge = judge[judge["model_a"].isin(inside) & judge["model_b"].isin(inside)]
    reference = reference if reference in inside else (anchored[0] if anchored else reference)
    info["reference"] = reference
    rows = ppi_rows(human, judge, anchored, reference)
    info.update(n_labelled_votes=int(rows["n_labelled_votes"]), n_unlabelled_votes=int(rows["n_unlabelled_votes"]))
    info["n_human_votes_unjudged"] = int(len(human) - rows["n_labelled_votes"])
    need = max(MIN_PPI_LABELLED, 2 * (len(anchored) - 1))
    if len(anchored) < 2 or rows["n_labelled_votes"] < need or rows["n_unlabelled_votes"] < 2:
        info["skipped"] = (f"needs at least two models with {MIN_PPI_HUMAN_VOTES} or more human votes each, at least {need} human votes "
                           f"on pairs the judge voted on (two per strength estimated, at least {MIN_PPI_LABELLED}) and two judge votes "
                           f"on pairs no person voted on; there are {len(anchored)} such model(s), {info['n_labelled_votes']} and "
                           f"{info['n_unlabelled_votes']} such votes among them")  # fmt: skip
        return None, info
    m = len(anchored)
    fit_judge_counts = _votes_per_model(judge, anchored)
    try:
        est = ppi_logistic(rows["x"], rows["y"], rows["yhat"], rows["x_unlabeled"], rows["yhat_unlabeled"],
                           w=rows["w"], w_unlabeled=rows["w_unlabeled"], alpha=PPI_ALPHA)  # fmt: skip
    except np.linalg.LinAlgError:
        est = None
    if est is None or not est.converged:
        why = ("no finite estimate: the rows leave some strength undetermined (a model that never won or never lost, or not "
               "connected to the others by votes); with no prior PPI cannot rank such votes: every number of the row is left blank")  # fmt: skip
        info["skipped"] = why
        info["converged"] = False
        table = pd.DataFrame([left_out.get(mod) or _unanchored_row(mod, int(h), int(j), why)
                              for mod, h, j in zip(models, human_counts, judge_counts, strict=True)], columns=list(ARENA_COLUMNS))  # fmt: skip
        return _typed(table), info
    info["lambda"] = est.lam
    info["converged"] = True
    ref = anchored.index(reference)
    keep = [i for i in range(m) if i != ref]
    full = np.zeros(m)
    full[keep] = est.coef
    cov = np.zeros((m, m))
    cov[np.ix_(keep, keep)] = est.cov
    centre = np.eye(m) - 1.0 / m
    strength = centre @ full
    centred_cov = centre @ cov @ centre.T
    half = NormalDist().inv_cdf(1.0 - PPI_ALPHA / 2.0) * np.sqrt(np.clip(np.diag(centred_cov), 0.0, None))
    ref_low, ref_high = np.zeros(m), np.zeros(m)
    ref_low[keep], ref_high[keep] = est.ci_low, est.ci_high
    low, high = strength - half, strength + half
    enough = rows["labelled_models"] + rows["unlabelled_models"] >= MIN_COMPARISONS
    draws = np.random.default_rng([seed, 330]).multivariate_normal(strength, centred_cov, size=n_draws, method="eigh") if n_draws else np.empty((0, m))
    rank_low, rank_high = rank_intervals(draws, enough)
    fitted = {mod: {"model": mod, "source": "ppi", "strength": strength[i], "ci_low": low[i], "ci_high": high[i], "rank_low": rank_low[i],
                    "rank_high": rank_high[i], "n_human_votes": int(rows["labelled_models"][i]), "n_judge_votes": int(fit_judge_counts[i]),
                    "ref_coef": full[i], "ref_ci_low": ref_low[i], "ref_ci_high": ref_high[i], "_enough": bool(enough[i]),
                    "note": "" if enough[i] else f"fewer than {MIN_COMPARISONS} votes: not ranked"}
              for i, mod in enumerate(anchored)}  # fmt: skip
    ranks = _ranks(low, high, enough)
    for i, mod in enumerate(anchored):
        fitted[mod]["rank"] = ranks[i]
    table = pd.DataFrame([fitted.get(mod) or left_out[mod] for mod in models]).reindex(columns=list(ARENA_COLUMNS))
    return _typed(table), info


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    """Integer columns of an arena ranking as pandas integers (ranks may be missing, counts never are)."""
    for column in ("rank", "rank_low", "rank_high"):
        table[column] = as_int_column(pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float))
    for column in ("n_human_votes", "n_judge_votes"):
        table[column] = table[column].astype("int64")
    return table


def build_arena(
    human: pd.DataFrame | None, judge: pd.DataFrame | None, info: pd.DataFrame, *, n_boot: int, seed: int,
    against: str | None = None, answer_scores: pd.DataFrame | None = None,
) -> ArenaResult:  # fmt: skip
    """Every vote table: arena (rankings per source), arena_pairs, arena_adjacent, arena_agreement."""
    models = vote_models(human, judge)
    rankings, pairs, adjacent, agreement = [], [], [], []
    meta: dict[str, Any] = {"models": models, "min_pair_votes": MIN_PAIR_VOTES, "min_agreement_n": MIN_AGREEMENT_N, "min_comparisons": MIN_COMPARISONS, "tie_rule": TIE_RULE,
                            "bt_prior": BT_PRIOR, "ci_level": CI_LEVEL, "sources": []}  # fmt: skip
    for source, votes in (("human", human), ("judge", judge)):
        if votes is None:
            continue
        voted = vote_models(votes)  # a model this source never voted on gets no row, rather than the prior's 0
        ranking, boot = bt_ranking(votes, voted, info, source=source, n_boot=n_boot, seed=seed)
        pair = pair_table(votes, voted, info, source=source, n_boot=n_boot, seed=seed)
        rankings.append(ranking)
        pairs.append(pair)
        adjacent.append(adjacent_table(ranking, boot, pair, source=source))
        meta["sources"].append(source)
        meta[f"n_{source}_votes"] = int(len(votes))
        meta[f"n_{source}_both_bad"] = int((votes["winner"] == "both_bad").sum())
        meta[f"n_{source}_pairs_too_few"] = int(pair["too_few"].sum())
    if human is not None and judge is not None:
        agreement += judge_agreement(human, judge, info, n_boot=n_boot, seed=seed)
        reference = against if against in models else models[0]
        meta["ppi_reference_rule"] = "the --against baseline" if against in models else "the first model in sorted order"
        table, ppi_info = ppi_ranking(human, judge, models, reference, n_draws=n_boot, seed=seed)
        meta["ppi"] = ppi_info
        if table is not None:
            rankings.append(table)
            meta["sources"].append("ppi")
    if human is not None and answer_scores is not None:
        agreement += grades_agreement(human, answer_scores, info, n_boot=n_boot, seed=seed)
    arena = pd.concat(rankings, ignore_index=True).reindex(columns=list(ARENA_COLUMNS))
    arena = arena.sort_values(["source", "strength", "model"], ascending=[True, False, True], key=_source_key, kind="stable").reset_index(drop=True)
    tables = {
        "arena": arena,
        "arena_pairs": pd.concat(pairs, ignore_index=True) if pairs else pd.DataFrame(columns=list(PAIR_COLUMNS)),
        "arena_adjacent": pd.concat(adjacent, ignore_index=True) if adjacent else pd.DataFrame(columns=list(ADJACENT_COLUMNS)),
    }
    if agreement:
        tables["arena_agreement"] = pd.DataFrame(agreement, columns=list(AGREEMENT_COLUMNS))
    return ArenaResult(tables, meta)


def _source_key(col: pd.Series) -> pd.Series:
    return col.map({s: i for i, s in enumerate(SOURCES)}) if col.name == "source" else col
