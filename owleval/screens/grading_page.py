"""The A-D grading screen: one answer at a time with its question, image and earlier turns, graded from the bar.

Blind by construction: the model name of an answer stays on the server (widget keys use the annotator's own
shuffled position), answers are shown with ``st.text`` so HTML, Markdown and scripts in them stay inert, and a grade
is confirmed only after its commit. Grades, Back and Next come from one grade bar (:mod:`owleval.screens.gradebar`),
whose actions name the answer on screen and are applied in the order made, before the page is drawn.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from owleval.csvio import frame_to_csv
from owleval.records.grades import FLAGS
from owleval.screens import access, action_limits, admin_download, gradebar, quality_pages, queue_flow
from owleval.study import export
from owleval.study import queue as gq
from owleval.study.store import Store
from owleval.textsafety import mark_format_chars as shown
from owleval.textsafety import mark_frame as shown_frame

WORDS = queue_flow.QueueWords(
    item="answer", done="graded", all_done="All {total} answers are graded. Thank you! You can go back to review or change a grade.",
    left_over="That was the last answer in your queue; {left} are still ungraded.", first_open="Go to the first ungraded answer",
    first_open_key="nav_first_ungraded")
ANSWER_BOX_HEIGHT = 440  # px: below the heading and the grade bar, fits a 1280x800 window


def _ungraded(item: gq.QueueItem) -> bool:
    return item.grade is None


def _apply_bar_actions(store: Store, who: access.Annotator, items: list[gq.QueueItem]) -> list[gq.QueueItem]:
    """Apply the grade bar's new actions once each, in the order its window made them, before anything is drawn.

    A grade goes to the answer the window showed when it was made (checked against the queue), with that answer's
    comment and flags; Back/Next move from that answer. ``ss.bar_applied`` (window -> last sequence applied) goes
    back to the bar as the confirmation. Returns the queue as it is after the grades.
    """
    ss = st.session_state

    def record(items: list[gq.QueueItem], action: gradebar.Action, window: str) -> list[gq.QueueItem]:
        def save(item: gq.QueueItem) -> tuple[gq.QueueItem, list[queue_flow.Flash]]:
            flags = [f for f in FLAGS if ss.get(f"flag_{f}_{action.index}")]
            event = gq.record_grade(store, who.annotator_id, item.answer_id, action.grade or "", ss.get(f"comment_{action.index}", ""),
                                    flags, window=window, seq=action.seq, seen=action.seen, item_id=item.item_id)
            said = [("ok", f"Saved grade {event.grade} for answer {action.index + 1}.")]
            if (feedback := quality_pages.onboarding_feedback(store, item, event.grade)) is not None:
                said.append((quality_pages.ONBOARDING_FLASH, feedback))
            return dataclasses.replace(item, grade=event.grade), said

        return queue_flow.record(items, action.index, save, gq.StaleViewError, WORDS, _ungraded)

    return action_limits.apply_limited(ss, action_limits.SHARED, (str(store.path), who.annotator_id), items,
                                       lambda item: item.view_id, record)


def grading(store: Store, data_dir: Path, image: Callable[[str], bytes]) -> None:
    """The signed-in annotator's A-D work; ``image(path)`` gives the prepared picture (OSError if unreadable)."""
    who: access.Annotator = st.session_state.annotator
    items = gq.load_queue(store, who.annotator_id)
    if not items:
        st.info("Nothing is assigned to you in this study yet.")
        return
    items = _apply_bar_actions(store, who, items)
    owner = gradebar.owner_key(store.path, who.annotator_id)
    place = queue_flow.walk(items, _ungraded, WORDS, gradebar.GRADE_BAR, owner)
    if place is not None:
        pos, message = place
        _answer_view(gq.answer_screen(store, who.annotator_id, items[pos], data_dir), len(items), image, owner, message)


def _answer_view(screen: gq.AnswerScreen, total: int, image: Callable[[str], bytes], owner: str,
                 message: tuple[int, str] | None) -> None:
    """Heading (drawn above), grade bar, the text in its own scrolling box (right), the image above the comment (left).

    Drawn in this order: bar, text, comment and flags, heading, image. When the heading names an answer, the text and
    the comment box on the page are that answer's; a slow or bad image holds up neither the grading nor the heading.

    The box's key names the answer on screen (place, answer id, latest grade event seen): the grade bar reads it to
    tag each action with what the person was looking at.
    """
    index, current = screen.item.index, screen.current
    heading = st.container()  # filled once the text is drawn: when it names this answer, the text is this answer's
    gradebar.mount(index, current.grade if current else None, st.session_state.get("bar_applied", {}), owner=owner,
                   message=message)
    left, right = st.columns([2, 3], gap="large")
    seen = current.event_id if current else 0
    with right:  # written first so the text reaches the browser before the image
        with st.container(height=ANSWER_BOX_HEIGHT, key=f"{gradebar.SHOWN_KEY_PREFIX}{index}_{screen.item.view_id}_{seen}"):
            if screen.earlier:
                st.markdown("**The dialogue so far** (earlier questions and this assistant's answers)")
                queue_flow.earlier_turns(screen.earlier, bordered=True)
            st.markdown("**Question**")
            st.text(shown(screen.question))
            st.markdown("**Answer to grade**")
            with st.container(border=True, key="answer_box"):
                st.text(shown(screen.answer), width="stretch")
    with left:
        picture_slot = st.container()  # above the comment, filled last
        # Before the heading names this answer: Streamlit keeps the last run's element beside a new one until the run
        # ends (visible while it has the focus), so a comment box drawn after the heading could still be the previous
        # answer's when the person starts typing, and the comment would go to that answer or be lost.
        _comment_and_history(screen)
    heading.subheader(f"Answer {index + 1} of {total}")
    with picture_slot:
        try:
            picture = image(str(screen.image_path))
        except OSError:  # missing, unreadable or not an image
            st.warning(f"Image file not found or unreadable: `{screen.image_path.name}`. Flag it as 'image missing'.")
        else:
            st.image(picture, width="stretch")
            st.caption("Hover the image and use the expand button at its top right to see it full size.")


def _comment_and_history(screen: gq.AnswerScreen) -> None:
    """The comment and flags sent with the next grade of this answer, and its earlier grades."""
    index, current = screen.item.index, screen.current
    st.text_input("Comment (optional)", value=current.comment if current else "", key=f"comment_{index}")
    cols = st.columns(len(FLAGS))
    for col, (flag, label) in zip(cols, FLAGS.items(), strict=True):
        col.checkbox(label.capitalize(), value=bool(current and flag in current.flags), key=f"flag_{flag}_{index}")
    if current:
        queue_flow.your_choice("grade", current.grade, len(screen.history) - 1)
    if len(screen.history) > 1:
        with st.expander("History of your grades for this answer"):
            for event in reversed(screen.history):
                flags = ", ".join(FLAGS[f] for f in event.flags)
                st.text(f"{event.created_at[:19].replace('T', ' ')} UTC  {event.grade}  {shown(event.comment)}  {flags}".rstrip())


def admin(store: Store) -> None:
    """The Admin page's progress tables of an A-D study (the admin is signed in)."""
    per_cell = export.progress_frame(store)
    st.subheader("Per annotator")
    st.dataframe(shown_frame(export.progress_by(per_cell, "annotator")), hide_index=True)
    st.subheader("Per model")
    st.dataframe(shown_frame(export.progress_by(per_cell, "model_id")), hide_index=True)
    st.subheader("Per annotator and model (graded / assigned)")
    if not per_cell.empty:
        cells = per_cell.assign(cell=per_cell["graded"].astype(str) + " / " + per_cell["assigned"].astype(str))
        st.dataframe(shown_frame(cells.pivot(index="annotator", columns="model_id", values="cell")))


def admin_flagged_and_download(store: Store) -> None:
    """The answers annotators flagged, and the grades CSV (made when asked, from the grades of that moment)."""
    flagged = export.flagged_frame(export.current_grades_frame(store))
    st.subheader(f"Flagged answers ({len(flagged)})")
    if not flagged.empty:
        st.dataframe(shown_frame(flagged), hide_index=True)
    admin_download.offer("Make a grades CSV link", lambda: frame_to_csv(export.grades_export_frame(store)), "grades.csv", "grades_csv")
