"""Ordinal agreement of each rater with the others: quadratic-weighted Cohen's kappa of the rater's grade against
the lower median of the *other* annotators' grades of the same answer (as ``--combine median`` combines them), with
an image-clustered bootstrap interval (questions about one image are not independent)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from owleval.stats import bootstrap_counts, kappa_from_confusion, kappa_weights, percentile_ci

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


def _sorted_scores(people: pd.DataFrame, answer: np.ndarray, n_answers: int) -> tuple[np.ndarray, np.ndarray]:
    """(answers, most grades) matrix of each answer's people scores sorted ascending (padded with 99), and counts."""
    count = np.bincount(answer, minlength=n_answers)
    order = np.lexsort((people["score"].to_numpy(), answer))
    width = max(int(count.max()) if count.size else 0, 1) + 1
    table = np.full((n_answers, width), 99, dtype=np.int64)
    rank = np.arange(order.size) - np.repeat(np.cumsum(count) - count, count)
    table[answer[order], rank] = people["score"].to_numpy()[order]
    return table, count


def references(scores: np.ndarray, answer: np.ndarray, table: np.ndarray, count: np.ndarray, *, own: bool) -> np.ndarray:
    """The lower median of the people's grades of each row's answer, leaving the row's own grade out when ``own``
    (a person's grade among them); -1 where no other grade is there."""
    n = count[answer] - (1 if own else 0)
    k = np.maximum((n - 1) // 2, 0)
    if not own:
        return np.where(n >= 1, table[answer, k], -1)
    less = (table[answer] < scores[:, None]).sum(axis=1)  # removing one copy of the own score shifts what lies above
    pick = np.where(k < less, table[answer, k], table[answer, np.minimum(k + 1, table.shape[1] - 1)])
    return np.where(n >= 1, pick, -1)


def kappa_figures(scores: np.ndarray, reference: np.ndarray, cluster: np.ndarray, *, n_boot: int, rng: np.random.Generator) -> dict[str, float]:
    """kappa_w, its image-bootstrap percentile interval and kappa_n for one rater's (score, reference) pairs."""
    ok = reference >= 0
    out = {"kappa_w": np.nan, "kappa_ci_low": np.nan, "kappa_ci_high": np.nan, "kappa_n": float(ok.sum())}
    if ok.sum() < 2:
        return out
    codes, names = pd.factorize(cluster[ok])
    conf = np.zeros((len(names), _K, _K))
    np.add.at(conf, (codes, scores[ok], reference[ok]), 1.0)
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
    other than that rater. ``people`` and ``judges``: regular grades with a ``score`` column (A=3 ... D=0), at most
    one per rater and answer."""
    keys = ["model_id", "question_id"]
    frames = [people] + ([judges] if judges is not None else [])
    codes, _ = pd.factorize(pd.MultiIndex.from_frame(pd.concat([f[keys] for f in frames], ignore_index=True)))
    answer_people = codes[: len(people)]
    table, count = _sorted_scores(people, answer_people, int(codes.max()) + 1 if codes.size else 0)
    rows: dict[str, dict[str, float]] = {}
    for frame, own, start in ((people, True, 0), (judges, False, len(people))):
        if frame is None:
            continue
        answer = codes[start : start + len(frame)]
        scores = frame["score"].to_numpy(dtype=np.int64)
        reference = references(scores, answer, table, count, own=own)
        qids = frame["question_id"].to_numpy()
        cluster = np.array([images.get(int(q), q) for q in qids], dtype=object) if images is not None else qids
        names = frame["annotator"].to_numpy()
        for name in sorted(set(names)):
            mine = names == name
            rng = np.random.default_rng([seed, len(rows)])
            rows[name] = kappa_figures(scores[mine], reference[mine], cluster[mine], n_boot=n_boot, rng=rng)
    return pd.DataFrame.from_dict(rows, orient="index")
