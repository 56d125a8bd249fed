"""Dawid-Skene rater model for A-D grades: per annotator a confusion matrix P(grade given | true grade), per answer
the posterior over the true grade, fitted by EM (Dawid & Skene 1979).

With ``ordinal=False`` it is the classic model, computed step for step as crowd-kit 1.4.2's ``DawidSkene`` does
(majority-vote start, M-step with a 1e-10 floor on used cells, E-step, stop when the evidence lower bound per label
gains less than ``tol``), so the posteriors agree to floating-point error (the tests check it against crowd-kit).
With ``ordinal=True`` each annotator's confusion matrix is constrained to a discretised normal around the true grade
shifted by the annotator's bias: P(j | k) ~ exp(-(j - k - b)^2 / 2 s^2), with b and s the posterior mean and sd of
(given - true). Two numbers per annotator instead of twelve: a lenient or harsh rater is a shift, a careless one a
wide spread; an annotator who inverts the scale cannot be fitted and is read as noise (down-weighted).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from owleval.items import GRADES, SCORES

#: crowd-kit's floor on the cells of a confusion matrix and on the priors
EPS = 1e-10
#: scores in column order of the posterior (A=3 ... D=0 sorted ascending: D, C, B, A)
LEVELS = np.array([0, 1, 2, 3])


@dataclass
class DSResult:
    """posterior: per answer (model_id, question_id) P(true score = 0..3); confusion: per annotator (K obs, K true);
    priors: P(true score); iterations run."""

    posterior: pd.DataFrame
    confusion: dict[str, np.ndarray]
    priors: np.ndarray
    iterations: int


def _m_step(task: np.ndarray, worker: np.ndarray, label: np.ndarray, probas: np.ndarray, n_workers: int, ordinal: bool) -> np.ndarray:
    k = probas.shape[1]
    counts = np.zeros((n_workers, k, k))
    np.add.at(counts, (worker, label), probas[task])
    used = np.zeros((n_workers, k), dtype=bool)
    used[worker, label] = True
    if ordinal:
        return _ordinal_confusion(counts)
    errors = np.where(used[:, :, None], np.maximum(counts, EPS), 0.0)
    return errors / errors.sum(axis=1, keepdims=True)


def _ordinal_confusion(counts: np.ndarray) -> np.ndarray:
    """Discretised-normal confusion per worker from the expected (given, true) counts."""
    k = counts.shape[1]
    given, true = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    diff = (given - true)[None]
    total = counts.sum(axis=(1, 2))
    bias = (counts * diff).sum(axis=(1, 2)) / total
    var = (counts * (diff - bias[:, None, None]) ** 2).sum(axis=(1, 2)) / total
    spread = np.sqrt(np.maximum(var, 0.05))  # at least a little spread: no cell of probability 0
    logits = -((diff - bias[:, None, None]) ** 2) / (2.0 * spread[:, None, None] ** 2)
    errors = np.exp(logits - logits.max(axis=1, keepdims=True))
    errors = np.maximum(errors / errors.sum(axis=1, keepdims=True), EPS)
    return errors / errors.sum(axis=1, keepdims=True)


def _e_step(task: np.ndarray, worker: np.ndarray, label: np.ndarray, priors: np.ndarray, errors: np.ndarray, n_tasks: int) -> np.ndarray:
    log_lik = np.zeros((n_tasks, priors.size))
    with np.errstate(divide="ignore"):
        np.add.at(log_lik, task, np.log(errors[worker, label]))
    log_lik += np.log(np.maximum(priors, EPS))
    scaled = np.exp(log_lik - log_lik.max(axis=1, keepdims=True))
    return scaled / scaled.sum(axis=1, keepdims=True)


def _elbo(task: np.ndarray, worker: np.ndarray, label: np.ndarray, probas: np.ndarray, priors: np.ndarray, errors: np.ndarray) -> float:
    """crowd-kit's evidence lower bound (the prior counted once per label, as it does)."""
    with np.errstate(divide="ignore"):
        joint = (probas[task] * (np.log(errors[worker, label]) + np.log(np.maximum(priors, EPS)))).sum()
    clipped = np.maximum(probas, EPS)
    return float(joint - (np.log(clipped) * clipped).sum())


def fit_dawid_skene(grades: pd.DataFrame, *, ordinal: bool = False, n_iter: int = 100, tol: float = 1e-5) -> DSResult:
    """Fit on regular grades (annotator, model_id, question_id, grade). Every grade A-D is a class, used or not."""
    keys = grades["model_id"].astype(str) + "\x00" + grades["question_id"].astype(str)
    task, task_names = pd.factorize(keys)
    worker, worker_names = pd.factorize(grades["annotator"])
    label = grades["grade"].map(SCORES).to_numpy(dtype=np.int64)
    n_tasks, k = len(task_names), LEVELS.size
    votes = np.zeros((n_tasks, k))
    np.add.at(votes, (task, label), 1.0)
    probas = votes / votes.sum(axis=1, keepdims=True)  # the majority-vote start
    priors = probas.mean(axis=0)
    errors = _m_step(task, worker, label, probas, len(worker_names), ordinal)
    loss, done = -np.inf, 0
    for done in range(1, n_iter + 1):
        probas = _e_step(task, worker, label, priors, errors, n_tasks)
        priors = probas.mean(axis=0)
        errors = _m_step(task, worker, label, probas, len(worker_names), ordinal)
        new_loss = _elbo(task, worker, label, probas, priors, errors) / len(label)
        if new_loss - loss < tol:
            break
        loss = new_loss
    first = grades.drop_duplicates(["model_id", "question_id"]).assign(_key=lambda f: f["model_id"].astype(str) + "\x00" + f["question_id"].astype(str))
    order = pd.Index(task_names).get_indexer(first["_key"])
    posterior = first[["model_id", "question_id"]].reset_index(drop=True)
    for s in LEVELS:
        posterior[f"p_{_letter(s)}"] = probas[order, s]
    return DSResult(posterior, {str(w): errors[i] for i, w in enumerate(worker_names)}, priors, done)


def _letter(score: int) -> str:
    return {v: g for g, v in SCORES.items()}[int(score)]


def posterior_scores(result: DSResult) -> pd.DataFrame:
    """Per answer: model_id, question_id, p_A..p_D, mean_score (posterior mean, A=3 ... D=0), acceptable (P(A or B))."""
    post = result.posterior.copy()
    post["mean_score"] = sum(post[f"p_{g}"] * SCORES[g] for g in GRADES)
    post["acceptable"] = post["p_A"] + post["p_B"]
    return post
