"""Inter-annotator agreement, in long form (measure, annotators, value, n).

An item is one model's answer to one question. Per annotator pair: Cohen's kappa (unweighted and quadratic,
scikit-learn) and percent agreement on the items both graded. Over all annotators: Fleiss' kappa (the form
that allows a varying number of ratings per item), Krippendorff's alpha (ordinal and nominal, the
``krippendorff`` package) and percent agreement, on the items graded at least twice.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd

from owleval.records.grades import GRADE_SCORES
from owleval.stats import cohen_kappa

AGREEMENT_COLUMNS = ("measure", "annotators", "value", "n")
PAIR_MEASURES = ("cohen_kappa", "cohen_kappa_quadratic", "percent_agreement")
ALL_MEASURES = ("fleiss_kappa", "krippendorff_alpha_ordinal", "krippendorff_alpha_nominal", "percent_agreement")
CATEGORIES = tuple(sorted(GRADE_SCORES.values()))  # scores 0..3


def reliability_matrix(grades: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """(annotators, matrix annotators x items of scores, NaN where an annotator did not grade the item)."""
    wide = grades.pivot(index="annotator", columns=["model_id", "question_id"], values="score")
    return [str(a) for a in wide.index], wide.to_numpy(dtype=np.float64)


def category_counts(matrix: np.ndarray, categories: tuple[int, ...] = CATEGORIES) -> np.ndarray:
    """items x categories: how many annotators gave each category to each item."""
    return np.stack([(matrix == c).sum(axis=0) for c in categories], axis=1).astype(np.float64)


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa from an items x categories count table; items with fewer than two ratings are skipped.

    With the same number of ratings on every item this is Fleiss (1971); otherwise each item's agreement uses
    its own number of ratings.
    """
    counts = np.asarray(counts, dtype=np.float64)
    n_i = counts.sum(axis=1)
    counts, n_i = counts[n_i >= 2], n_i[n_i >= 2]
    if counts.shape[0] == 0:
        return float("nan")
    p_bar = observed_agreement(counts)
    p_j = counts.sum(axis=0) / n_i.sum()
    p_e = float((p_j**2).sum())
    if p_e >= 1.0:
        return float("nan")
    return float((p_bar - p_e) / (1.0 - p_e))


def observed_agreement(counts: np.ndarray) -> float:
    """Share of agreeing rating pairs within an item, averaged over items with at least two ratings."""
    counts = np.asarray(counts, dtype=np.float64)
    n_i = counts.sum(axis=1)
    keep = n_i >= 2
    if not keep.any():
        return float("nan")
    c, n = counts[keep], n_i[keep]
    return float(np.mean(((c**2).sum(axis=1) - n) / (n * (n - 1))))


def _cohen(a: np.ndarray, b: np.ndarray, weights: str | None) -> float:
    """Cohen's kappa of two annotators' scores (0..3), plain or weighted."""
    return cohen_kappa(a, b, len(CATEGORIES), weights)


def _krippendorff(matrix: np.ndarray, level: str) -> float:
    import krippendorff

    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")
        try:
            return float(krippendorff.alpha(reliability_data=matrix, level_of_measurement=level, value_domain=list(CATEGORIES)))
        except (ValueError, ZeroDivisionError):
            return float("nan")


def agreement_table(grades: pd.DataFrame) -> pd.DataFrame:
    """Every pair's measures, then the all-annotator ones; empty when fewer than two annotators graded."""
    annotators, matrix = reliability_matrix(grades)
    rows: list[tuple[str, str, float, int]] = []
    if len(annotators) < 2:
        return pd.DataFrame(rows, columns=list(AGREEMENT_COLUMNS))
    for (i, name_a), (j, name_b) in itertools.combinations(enumerate(annotators), 2):
        both = ~np.isnan(matrix[i]) & ~np.isnan(matrix[j])
        a, b = matrix[i, both].astype(int), matrix[j, both].astype(int)
        n = int(both.sum())
        label = f"{name_a}|{name_b}"
        rows.append(("cohen_kappa", label, _cohen(a, b, None) if n >= 2 else float("nan"), n))
        rows.append(("cohen_kappa_quadratic", label, _cohen(a, b, "quadratic") if n >= 2 else float("nan"), n))
        rows.append(("percent_agreement", label, float(np.mean(a == b)) if n else float("nan"), n))
    pairable = (~np.isnan(matrix)).sum(axis=0) >= 2
    n_items = int(pairable.sum())
    counts = category_counts(matrix)
    rows.append(("fleiss_kappa", "all", fleiss_kappa(counts), n_items))
    sub = matrix[:, pairable]
    rows.append(("krippendorff_alpha_ordinal", "all", _krippendorff(sub, "ordinal") if n_items else float("nan"), n_items))
    rows.append(("krippendorff_alpha_nominal", "all", _krippendorff(sub, "nominal") if n_items else float("nan"), n_items))
    rows.append(("percent_agreement", "all", observed_agreement(counts), n_items))
    return pd.DataFrame(rows, columns=list(AGREEMENT_COLUMNS))
