"""Behaviour signals from grade events: time per grade, reading speed, straight-lining, grade distribution, retest.

Seconds per grade is the gap to the same annotator's previous grade event (any item kind) by ``graded_at``, capped
at :data:`MAX_GAP_SECONDS` (a break is not reading time); the first event of an annotator has no gap. Without
``graded_at`` the speed and run figures are blank (NaN), never 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from owleval.items import GRADES, REGULAR

#: a longer gap is a break, not reading: capped here
MAX_GAP_SECONDS = 600.0
#: a grade is "fast" when given in under max(MIN_SECONDS, words / MAX_WORDS_PER_SECOND) seconds
MIN_SECONDS = 3.0
MAX_WORDS_PER_SECOND = 12.0

Answers = Mapping[str, Mapping[int, str]]


def event_times(grades: pd.DataFrame) -> pd.Series:
    """``graded_at`` as UTC timestamps (NaT where missing or unreadable)."""
    if "graded_at" not in grades.columns:
        return pd.Series(pd.NaT, index=grades.index, dtype="datetime64[ns, UTC]")
    text = grades["graded_at"].fillna("").astype(str).str.strip()
    return pd.to_datetime(text.where(text != ""), utc=True, errors="coerce", format="ISO8601")


def timed_events(grades: pd.DataFrame, answers: Answers | None = None, *, min_seconds: float = MIN_SECONDS,
                 max_wps: float = MAX_WORDS_PER_SECOND) -> pd.DataFrame:  # fmt: skip
    """Every grade event with a time, in time order per annotator, with ``seconds`` (gap, capped), ``words`` (answer
    length when known), ``words_per_second`` and ``fast`` (faster than the reading floor)."""
    when = event_times(grades)
    events = grades.assign(when=when)[when.notna()].sort_values(["annotator", "when"], kind="stable")
    gap = events.groupby("annotator", sort=False)["when"].diff().dt.total_seconds()
    events = events.assign(seconds=gap.clip(upper=MAX_GAP_SECONDS))
    words = np.full(len(events), np.nan)
    if answers is not None:
        words = np.array([_word_count(answers, m, q) for m, q in zip(events["model_id"], events["question_id"], strict=True)], dtype=float)
    events["words"] = words
    with np.errstate(invalid="ignore", divide="ignore"):
        events["words_per_second"] = words / events["seconds"].to_numpy()
    floor = np.maximum(min_seconds, np.nan_to_num(words, nan=0.0) / max_wps)
    events["fast"] = np.where(events["seconds"].notna(), events["seconds"].to_numpy() < floor, np.nan)
    return events


def _word_count(answers: Answers, model: str, qid: int) -> float:
    text = answers.get(model, {}).get(int(qid))
    return float(len(text.split())) if text is not None else np.nan


def speed_figures(events: pd.DataFrame, annotators: list[str]) -> pd.DataFrame:
    """Per annotator: median_seconds, median_words_per_second, fast_share (NaN where no timed gap)."""
    timed = events[events["seconds"].notna()]
    out = timed.groupby("annotator").agg(
        median_seconds=("seconds", "median"), median_words_per_second=("words_per_second", "median"), fast_share=("fast", "mean")
    )
    return out.reindex(annotators)


def longest_runs(events: pd.DataFrame, annotators: list[str]) -> pd.Series:
    """Per annotator: the longest run of one grade among regular grades in graded_at order (NaN without times)."""
    runs: dict[str, float] = {}
    regular = events[events["item_kind"] == REGULAR] if "item_kind" in events.columns else events
    for name, part in regular.groupby("annotator", sort=False):
        grades = part["grade"].to_numpy()
        if grades.size == 0:
            continue
        change = np.flatnonzero(grades[1:] != grades[:-1])
        bounds = np.concatenate([[-1], change, [grades.size - 1]])
        runs[str(name)] = float(np.diff(bounds).max())
    return pd.Series(runs, dtype=float).reindex(annotators)


def grade_distribution(regular: pd.DataFrame, annotators: list[str]) -> pd.DataFrame:
    """Per annotator: share of each grade A-D, n, and the total-variation distance to everyone else's grades pooled
    (0 = the same distribution, 1 = no grade in common), with a chi-square test p-value of the difference."""
    from scipy.stats import chi2_contingency

    counts = pd.crosstab(regular["annotator"], regular["grade"]).reindex(index=annotators, columns=list(GRADES), fill_value=0)
    total = counts.sum(axis=0)
    rows: list[dict] = []
    for name in annotators:
        own = counts.loc[name].to_numpy(dtype=float)
        rest = total.to_numpy(dtype=float) - own
        n = own.sum()
        row = {"annotator": name, "n": int(n), **{f"share_{g}": (own[j] / n if n else np.nan) for j, g in enumerate(GRADES)}}
        row["tv_distance"] = 0.5 * float(np.abs(own / n - rest / rest.sum()).sum()) if n and rest.sum() else np.nan
        used = (own + rest) > 0
        row["chi2_p"] = float(chi2_contingency(np.vstack([own[used], rest[used]]))[1]) if n and rest.sum() and used.sum() > 1 else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=["annotator", "n", *(f"share_{g}" for g in GRADES), "tv_distance", "chi2_p"])


def retest_figures(grades: pd.DataFrame, annotators: list[str]) -> pd.DataFrame:
    """Per annotator: retest_n (retest grades with a regular grade of the same answer) and retest_same (their share
    equal to it); NaN share where there is none."""
    keys = ["annotator", "model_id", "question_id"]
    retest = grades[grades["item_kind"] == "retest"][keys + ["grade"]]
    regular = grades[grades["item_kind"] == REGULAR][keys + ["grade"]].drop_duplicates(keys)
    pairs = retest.merge(regular, on=keys, suffixes=("_retest", "_regular"))
    same = (pairs["grade_retest"] == pairs["grade_regular"]).groupby(pairs["annotator"]).agg(["size", "mean"])
    out = pd.DataFrame({"retest_n": same["size"], "retest_same": same["mean"]}).reindex(annotators)
    out["retest_n"] = out["retest_n"].fillna(0).astype(int)
    return out
