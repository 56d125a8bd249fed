"""Agreement values equal scikit-learn and the krippendorff package; Fleiss' kappa matches a worked example."""

from __future__ import annotations

import itertools

import krippendorff
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from owleval.report.agreement import AGREEMENT_COLUMNS, agreement_table, fleiss_kappa, observed_agreement, reliability_matrix

LETTERS = "DCBA"


def random_grades(seed: int, annotators: int = 4, items: int = 120, missing: float = 0.3) -> pd.DataFrame:
    """Annotators who agree with a latent grade more often than chance, each skipping some items."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, size=items)
    rows = []
    for a in range(annotators):
        for i, t in enumerate(truth):
            if rng.random() < missing:
                continue
            s = t if rng.random() < 0.6 else rng.integers(0, 4)
            rows.append({"annotator": f"ann{a}", "model_id": f"m{i % 3}", "question_id": i, "grade": LETTERS[s], "score": int(s)})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pairwise_cohen_and_alpha_equal_the_libraries(seed):
    grades = random_grades(seed)
    table = agreement_table(grades)
    assert tuple(table.columns) == AGREEMENT_COLUMNS
    by = {(r.measure, r.annotators): (r.value, r.n) for r in table.itertuples()}
    wide = grades.pivot(index=["model_id", "question_id"], columns="annotator", values="score")
    for a, b in itertools.combinations(sorted(wide.columns), 2):
        both = wide[[a, b]].dropna()
        value, n = by[("cohen_kappa", f"{a}|{b}")]
        assert n == len(both)
        assert value == pytest.approx(cohen_kappa_score(both[a], both[b]), abs=1e-12)
        value, _ = by[("cohen_kappa_quadratic", f"{a}|{b}")]
        assert value == pytest.approx(cohen_kappa_score(both[a], both[b], weights="quadratic"), abs=1e-12)
        value, _ = by[("percent_agreement", f"{a}|{b}")]
        assert value == pytest.approx((both[a] == both[b]).mean())
    data = wide.T.to_numpy(dtype=float)  # annotators x items
    pairable = (~np.isnan(data)).sum(axis=0) >= 2
    for level in ("ordinal", "nominal"):
        value, n = by[(f"krippendorff_alpha_{level}", "all")]
        assert n == pairable.sum()
        assert value == pytest.approx(krippendorff.alpha(reliability_data=data, level_of_measurement=level), abs=1e-9)


def test_fleiss_kappa_worked_example():
    """Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories; kappa = 0.210."""
    counts = np.array(
        [
            [0, 0, 0, 0, 14],
            [0, 2, 6, 4, 2],
            [0, 0, 3, 5, 6],
            [0, 3, 9, 2, 0],
            [2, 2, 8, 1, 1],
            [7, 7, 0, 0, 0],
            [3, 2, 6, 3, 0],
            [2, 5, 3, 2, 2],
            [6, 5, 2, 1, 0],
            [0, 2, 2, 3, 7],
        ]
    )
    # by hand: P-bar = 0.378, P_e = 0.213 (p_j = .143 .200 .279 .150 .229)
    assert observed_agreement(counts) == pytest.approx(0.378, abs=5e-4)
    assert fleiss_kappa(counts) == pytest.approx(0.210, abs=5e-4)


def test_fleiss_kappa_on_grades_equals_count_table_and_perfect_agreement():
    grades = random_grades(5, annotators=3, missing=0.0)
    table = agreement_table(grades)
    _, matrix = reliability_matrix(grades)
    counts = np.stack([(matrix == c).sum(axis=0) for c in range(4)], axis=1)
    assert table.query("measure == 'fleiss_kappa'").value.item() == pytest.approx(fleiss_kappa(counts))
    same = grades.copy()
    same["score"] = same.groupby(["model_id", "question_id"])["score"].transform("first")
    perfect = agreement_table(same)
    assert perfect.query("measure == 'fleiss_kappa'").value.item() == pytest.approx(1.0)
    assert perfect.query("measure == 'percent_agreement' and annotators == 'all'").value.item() == 1.0


def test_one_annotator_gives_no_agreement_rows():
    grades = random_grades(0, annotators=1, missing=0.0)
    assert agreement_table(grades).empty


def test_items_graded_once_are_not_counted():
    grades = pd.DataFrame(
        {
            "annotator": ["x", "y", "x", "z"],
            "model_id": ["m"] * 4,
            "question_id": [1, 1, 2, 3],
            "score": [3, 2, 1, 0],
        }
    )
    table = agreement_table(grades)
    assert table.query("annotators == 'all'").n.unique().tolist() == [1]
    assert table.query("annotators == 'x|y'").n.unique().tolist() == [1]
    assert table.query("annotators == 'y|z'").n.unique().tolist() == [0]


def test_cohen_kappa_equals_sklearn_on_random_ratings() -> None:
    from owleval.stats import cohen_kappa

    rng = np.random.default_rng(5)
    for k in (2, 3, 4):
        for n in (2, 5, 40):
            a = rng.integers(0, k, n)
            b = np.where(rng.random(n) < 0.6, a, rng.integers(0, k, n))
            for kind in (None, "linear", "quadratic"):
                want = cohen_kappa_score(a, b, labels=list(range(k)), weights=kind)
                got = cohen_kappa(a, b, k, kind)
                assert (np.isnan(want) and np.isnan(got)) or abs(got - want) < 1e-12, (k, n, kind, got, want)
