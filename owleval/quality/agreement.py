"""Ordinal agreement of each rater with the others: quadratic-weighted Cohen's kappa of the rater's grade against
the lower median of the *other* annotators' grades of the same answer (as ``--combine median`` combines them), with
an image-clustered bootstrap interval (questions about one image are not independent)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from owleval.report.stats import bootstrap_counts, kappa_from_confusion, kappa_weights, percentile_ci

N_BOOT = 1000
_K = 4
_WEIGHTS = kappa_weights(_K, "quadratic")


def question_images(clusters: Mapping[int, str] | None = None) -> Mapping[int, str] | None:
    """question id -> image (the bootstrap cluster): ``clusters`` when given, else the installed data set's, else None
    (then each question is its own cluster)."""
    if clusters is not None:
        return clusters
    try:
        from owleval.questions import load_questions

        return {q.question_id: q.image for q in load_questions()}
    except Exception:  # noqa: BLE001 - no data set installed: fall back to question clusters
        return None


def _lower_median(others: pd.DataFrame) -> pd.DataFrame:
    from owleval.report.combine import lower_median_scores

    return lower_median_scores(others)[["model_id", "question_id", "score"]].rename(columns={"score": "reference"})


def kappa_rows(rater: pd.DataFrame, others: pd.DataFrame, images: Mapping[int, str] | None, *, n_boot: int, rng: np.random.Generator) -> dict[str, float]:
    """kappa_w, kappa_ci_low, kappa_ci_high and kappa_n (shared answers) of one rater's grades against the others'."""
    keys = ["model_id", "question_id"]
    mine = rater[keys + ["score"]]
    shared = others.merge(mine[keys], on=keys)
    pairs = mine.merge(_lower_median(shared), on=keys) if len(shared) else mine.iloc[:0].assign(reference=[])
    out = {"kappa_w": np.nan, "kappa_ci_low": np.nan, "kappa_ci_high": np.nan, "kappa_n": float(len(pairs))}
    if len(pairs) < 2:
        return out
    cluster = pairs["question_id"].map(images) if images is not None else pairs["question_id"]
    codes, names = pd.factorize(cluster)
    conf = np.zeros((len(names), _K, _K))
    np.add.at(conf, (codes, pairs["score"].to_numpy(dtype=np.int64), pairs["reference"].to_numpy(dtype=np.int64)), 1.0)
    out["kappa_w"] = float(kappa_from_confusion(conf.sum(axis=0), _WEIGHTS))
    if n_boot > 0 and len(names) >= 2:
        counts = bootstrap_counts(len(names), n_boot, rng)
        boot = kappa_from_confusion((counts @ conf.reshape(len(names), -1)).reshape(n_boot, _K, _K), _WEIGHTS)
        low, high = percentile_ci(boot)
        out["kappa_ci_low"], out["kappa_ci_high"] = float(low), float(high)
    return out


def agreement_figures(people: pd.DataFrame, judges: pd.DataFrame | None, images: Mapping[int, str] | None, *,
                      n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """Per rater (each person, then each judge as ``judge:<name>``): kappa against the lower median of the people
    other than that rater. ``people`` and ``judges``: regular grades with a ``score`` column (A=3 ... D=0)."""
    rows = {}
    for k, (name, part) in enumerate(people.groupby("annotator", sort=True)):
        rng = np.random.default_rng([seed, k])
        rows[name] = kappa_rows(part, people[people["annotator"] != name], images, n_boot=n_boot, rng=rng)
    if judges is not None:
        for k, (name, part) in enumerate(judges.groupby("annotator", sort=True), start=len(rows)):
            rows[name] = kappa_rows(part, people, images, n_boot=n_boot, rng=np.random.default_rng([seed, k]))
    return pd.DataFrame.from_dict(rows, orient="index")
