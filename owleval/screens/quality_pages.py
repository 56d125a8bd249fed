"""The grading app's quality-control pieces, called by the screens of :mod:`owleval.screens`: the paused sign-in, the
onboarding feedback, and the Admin page's pause and resume.

An annotator never sees a quality-control figure: a failed attention check or gold item looks like any other saved
grade, and a paused annotator is told only that the study is paused for them.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from owleval.errors import OwlEvalError
from owleval.study import pause
from owleval.study import queue as gq
from owleval.screens.access import Annotator
from owleval.study.store import Store
from owleval.textsafety import mark_frame

#: the flash kind of onboarding feedback: shown in the grade bar's notice line (gradebar.show_flash), where it moves nothing
ONBOARDING_FLASH = "onboarding"


def refuse_paused(store: Store, who: Annotator) -> bool:
    """Show the paused message and return True when ``who`` is paused (sign-in, and every page of a signed-in one)."""
    if not pause.is_paused(store, who.annotator_id):
        return False
    st.warning(pause.PAUSED_MESSAGE)
    return True


def onboarding_feedback(store: Store, item: gq.QueueItem, given: str) -> str | None:
    """After an onboarding (training) item: the grade given, the expected one and the expert's note; None otherwise."""
    if item.item_kind != "onboarding" or item.item_id is None:
        return None
    row = store.conn.execute("SELECT expected_grade, note FROM special_items WHERE item_id = ?", (item.item_id,)).fetchone()
    if row is None:
        return None
    verdict = "matches" if given == row[0] else "differs from"
    text = f"Training answer {item.index + 1}: your grade {given} {verdict} the expected grade {row[0]}."
    return text + (f"\n\n{row[1]}" if row[1] else "")


def admin_pausing(store: Store, meta: dict[str, str]) -> None:
    """The Admin page's pause / resume form and the log of every pause."""
    names = [r[0] for r in store.conn.execute("SELECT name FROM annotators ORDER BY name")]
    st.subheader("Pause or resume an annotator")
    paused = pause.paused_names(store)
    st.caption("Paused now: " + (", ".join(paused) if paused else "nobody") + ". A paused annotator's sign-in says the "
               "study is paused for them; their grades so far are kept.")
    if not names:
        return
    with st.form("pause_form"):
        who = st.selectbox("Annotator", names, key="pause_annotator")
        reason = st.text_input("Reason (kept with the pause)", key="pause_reason", max_chars=pause.MAX_REASON_LEN)
        left, right = st.columns(2)
        do_pause = left.form_submit_button("Pause", key="pause_submit")
        do_resume = right.form_submit_button("Resume", key="resume_submit")
    if do_pause or do_resume:
        try:
            event = pause.set_paused(store, who, do_pause, reason, meta.get("admin_token_id", ""))
        except OwlEvalError as exc:
            st.error(str(exc))
        else:
            st.success(f"{event.annotator} is {'paused' if event.paused else 'not paused'}.")
    log = pause.pause_frame(store)
    if not log.empty:
        with st.expander(f"Pauses and resumes ({len(log)})"):
            st.dataframe(log, hide_index=True)


def admin_quality(store: Store, pairwise: bool) -> None:
    """The Admin page's live quality table: annotators.csv's columns for an A-D study (gold, checks, retests,
    agreement, speed, straight-lining and the rules that fired), voters.csv's for a pairwise one. Admin only."""
    from owleval.quality.table import annotator_table
    from owleval.quality.voters import voter_table

    if pairwise:
        from owleval.study.votes import votes_export_frame

        votes = votes_export_frame(store)
        st.subheader("Voters (quality control)")
        if votes.empty:
            st.caption("No votes yet.")
            return
        st.dataframe(mark_frame(voter_table(votes)[0]), hide_index=True)
        st.caption("The report's `voters.csv`: position (left-side) and tie shares with 95% intervals, agreement with the "
                   "others' Bradley-Terry fit, gold pairs, and the rules that fired (`qc_flags`). Voters never see these.")
        return
    from owleval.study.export import grades_export_frame

    grades = grades_export_frame(store)
    st.subheader("Annotators (quality control)")
    if grades.empty:
        st.caption("No grades yet.")
        return
    answers: dict[str, dict[int, str]] = {}
    for model, qid, text in store.conn.execute("SELECT model_id, question_id, answer FROM answers WHERE active = 1"):
        answers.setdefault(model, {})[int(qid)] = text
    gold = store.conn.execute("SELECT a.model_id, a.question_id, g.grade FROM gold_answers g JOIN answers a USING (answer_id)").fetchall()
    gold_frame = pd.DataFrame([tuple(r) for r in gold], columns=["model_id", "question_id", "grade"]) if gold else None
    st.dataframe(mark_frame(annotator_table(grades, gold=gold_frame, answers=answers)), hide_index=True)
    st.caption("The report's `annotators.csv`, live: gold answers, attention checks, retests, agreement with the others "
               "(quadratic-weighted kappa), speed, straight-lining and the rules that fired (`qc_flags`, with the report's "
               "default thresholds). Annotators never see these; pause one below if a flag holds up.")
