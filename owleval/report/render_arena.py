"""What the "Pairwise votes" sections of report.md / report.html show, from the arena tables (arena.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from owleval.report.render_format import is_missing, ci, num, pct, pval, rank_range

if TYPE_CHECKING:
    from owleval.report.build import Report

#: the win-rate matrix is drawn up to this many models; beyond it the report lists adjacent ranks and flagged pairs
MATRIX_MAX_MODELS = 12
SOURCE_LABELS = {"human": "people’s votes", "judge": "the judge’s votes", "ppi": "human-anchored (PPI)"}
MEASURE_LABELS = {"exact_agreement": "exact agreement", "cohen_kappa": "Cohen κ (win/tie/loss)"}


def ranking_rows(arena: pd.DataFrame, source: str) -> list[dict[str, Any]]:
    rows = []
    for r in arena[arena["source"] == source].to_dict("records"):
        extra = ""
        if source == "ppi":
            extra = "0 (reference)" if r["ref_coef"] == 0 and r["ref_ci_low"] == 0 else f"{num(r['ref_coef'])} {ci(r['ref_ci_low'], r['ref_ci_high'], num)}"
        votes = {"human": str(r["n_human_votes"]), "judge": str(r["n_judge_votes"])}.get(source, f"{r['n_human_votes']} human, {r['n_judge_votes']} judge")
        note = r["note"] if isinstance(r["note"], str) else ""
        rows.append({"model": r["model"], "rank_text": "–" if is_missing(r["rank"]) else str(int(r["rank"])), "range_text": rank_range(r["rank_low"], r["rank_high"]),
                     "text": "–" if pd.isna(r["strength"]) else f"{num(r['strength'])} {ci(r['ci_low'], r['ci_high'], num)}",
                     "n_votes": votes, "ref_text": extra if not pd.isna(r["ref_coef"]) else "–", "note": note})  # fmt: skip
    return rows


def matrix(pairs: pd.DataFrame, order: list[str]) -> list[dict[str, Any]]:
    """Row model's win rate against each column model (ties half), with the number of votes; '*' marks too few."""
    cells: dict[tuple[str, str], str] = {}
    for r in pairs.to_dict("records"):
        mark = "*" if r["too_few"] else ""
        cells[(r["model_a"], r["model_b"])] = f"{pct(r['a_win_rate'], 0)} ({r['n_votes']}{mark})"
        cells[(r["model_b"], r["model_a"])] = f"{pct(1.0 - r['a_win_rate'], 0)} ({r['n_votes']}{mark})"
    return [{"model": a, "cells": ["" if a == b else cells.get((a, b), "–") for b in order]} for a in order]


def _source_context(t: dict[str, pd.DataFrame], source: str) -> dict[str, Any]:
    arena = t["arena"]
    pairs = t["arena_pairs"][t["arena_pairs"]["source"] == source]
    order = arena[arena["source"] == source]["model"].tolist()
    adjacent = t["arena_adjacent"][t["arena_adjacent"]["source"] == source]
    return {
        "source": source,
        "label": SOURCE_LABELS[source],
        "ranking": ranking_rows(arena, source),
        "order": order,
        "matrix": matrix(pairs, order) if len(order) <= MATRIX_MAX_MODELS else None,
        "too_few": [f"{r['model_a']} vs {r['model_b']} ({r['n_votes']})" for r in pairs.to_dict("records") if r["too_few"]],
        "adjacent": [
            {**r, "diff_text": f"{num(r['strength_diff'])} {ci(r['diff_ci_low'], r['diff_ci_high'], num)}", "p_text": pval(r["p_bootstrap"]),
             "holm_text": pval(r["p_holm"]), "sign_text": pval(r["sign_test_p"])}  # fmt: skip
            for r in adjacent.to_dict("records")
        ],
    }


def arena_context(report: Report) -> dict[str, Any] | None:
    """Everything the pairwise-vote sections show; None without votes."""
    meta = report.meta.get("arena")
    if meta is None:
        return None
    t = report.tables
    sources = [_source_context(t, s) for s in meta["sources"] if s in ("human", "judge")]
    agreement = []
    if "arena_agreement" in t:
        for r in t["arena_agreement"].to_dict("records"):
            fmt = pct if r["measure"] == "exact_agreement" else (lambda v: num(v, 3))
            text = f"{fmt(r['value'])} {ci(r['ci_low'], r['ci_high'], fmt)}" if not r["note"] else f"{fmt(r['value'])} ({r['note']})"
            agreement.append({**r, "label": MEASURE_LABELS[r["measure"]], "text": text})
    judge = meta.get("judge")
    consistency = None
    if judge is not None and judge.get("position_consistency") is not None:
        consistency = pct(judge["position_consistency"])
        if judge.get("position_consistency_ci"):
            consistency += " " + ci(*judge["position_consistency_ci"], pct)
        if judge.get("position_consistency_pairs") is not None:
            consistency += f" (n = {judge['position_consistency_pairs']})"
    return {
        "meta": meta,
        "sources": sources,
        "ppi": ranking_rows(t["arena"], "ppi") if "ppi" in meta["sources"] else None,
        "ppi_info": meta.get("ppi"),
        "agreement": agreement,
        "judge": judge,
        "consistency": consistency,
        "matrix_max": MATRIX_MAX_MODELS,
        "voters": voter_rows(t["voters"]) if "voters" in t else None,
        "vote_qc": report.meta.get("vote_qc"),
    }


def voter_rows(voters: Any) -> list[dict[str, Any]]:
    """voters.csv as display text."""
    rows = []
    for r in voters.to_dict("records"):
        rows.append({
            "annotator": str(r["annotator"]), "n_votes": r["n_votes"],
            "left": f"{pct(r['left_share'], 0)} {ci(r['left_ci_low'], r['left_ci_high'], lambda v: pct(v, 0))}",
            "ties": f"{pct(r['tie_share'], 0)} {ci(r['tie_ci_low'], r['tie_ci_high'], lambda v: pct(v, 0))}",
            "anomaly": f"{num(r['anomaly_z'])} (p {num(r['anomaly_p'], 4)})",
            "gold": "–" if not r["gold_n"] else f"{pct(r['gold_correct'], 0)} (n={int(r['gold_n'])})",
            "flags": str(r["qc_flags"] or ""),
        })  # fmt: skip
    return rows


def votes_only_context(report: Report) -> dict[str, Any]:
    """The context of a report built from votes alone (no A-D grades)."""
    return {"meta": report.meta, "arena": arena_context(report), "ci": ci, "num": num, "pct": pct}
