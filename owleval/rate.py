"""The grading app: ``streamlit run owleval/rate.py -- [--db grades.sqlite] [--data DATA_DIR]``.

Screens only; every read and write goes through :mod:`owleval.grading`. Blind by construction: the model
name of an answer stays on the server (widget keys use the annotator's own shuffled position), answers are
shown with ``st.text`` so HTML, Markdown and scripts in them stay inert, and a grade is confirmed only after
its commit. Grades, Back and Next come from one grade bar (:mod:`owleval.grading.gradebar`), whose actions name
the answer on screen and are applied in the order made, before the page is drawn. Without ``--db`` the local
default study of the six published answer sets is opened.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sqlite3
import sys
from pathlib import Path

import streamlit as st

from owleval import rate_pairwise, rate_qc
from owleval.csvio import frame_to_csv
from owleval.errors import OwlEvalError
from owleval.grading import access, action_limits, admin_download, export, gradebar, serving, signin_guard
from owleval.grading import queue as gq
from owleval.grading.default_study import (
    admin_token_path,
    default_db_path,
    ensure_default_study,
)
from owleval.grading.images import screen_image
from owleval.imagefiles import ImageRefused
from owleval.grading.store import Store
from owleval.grading.study import AUTH_NAME, FLAGS, MAX_NAME_LEN
from owleval.pairwise.study import is_pairwise
from owleval.textsafety import mark_format_chars as shown
from owleval.textsafety import mark_frame as shown_frame

DB_ENV, DATA_ENV = "OWLEVAL_RATE_DB", "OWLEVAL_RATE_DATA"
DONE = -1

# The answer's own box scrolls, and the image is capped (lower on the pairwise screen, known by its answer boxes), so
# the grade bar above them is never below the fold. Emitted first in every run (see main).
_LAYOUT_CSS = """<style>
[data-testid="stMainBlockContainer"] { padding-top: 3rem; }
[data-testid="stImage"] img { max-height: 48vh; object-fit: contain; }
[data-testid="stMain"]:has(.st-key-left_answer) [data-testid="stImage"] img { max-height: 34vh; }
</style>"""
ANSWER_BOX_HEIGHT = 440  # px: below the heading and the grade bar, fits a 1280x800 window


def _settings() -> tuple[str | None, str | None]:
    """--db/--data after ``--`` on the streamlit command line; else the environment (AppTest, owleval rate)."""
    db, data = os.environ.get(DB_ENV), os.environ.get(DATA_ENV)
    if sys.argv and Path(sys.argv[0]).name == "rate.py":
        parser = argparse.ArgumentParser(add_help=False)
        parser.add_argument("--db")
        parser.add_argument("--data")
        args, _ = parser.parse_known_args(sys.argv[1:])
        db, data = args.db or db, args.data or data
    return db, data


@st.cache_resource(show_spinner="Preparing the default study (first run only)...")
def _default_db(path: str) -> str:
    return str(ensure_default_study(Path(path)))


@st.cache_resource(show_spinner=False)
def _open_store(db: str) -> Store:
    return Store(Path(db))


@st.cache_resource(show_spinner=False, max_entries=128)
def _prepared_image(path: str) -> bytes | ImageRefused:
    """Prepared once per image file, not on every rerun (see :mod:`owleval.grading.images`); a refusal (outside the
    data folder's cases/, over the pixel budget, not a JPEG or PNG, any decode error) is kept too, so a bad file is
    not read again on every rerun."""
    try:
        return screen_image(Path(path), _open()[2])
    except ImageRefused as exc:
        return exc


def _screen_image(path: str) -> bytes:
    """The prepared image; an OSError (:class:`ImageRefused` included) when it is missing or refused."""
    prepared = _prepared_image(path)
    if isinstance(prepared, ImageRefused):
        raise prepared
    return prepared


def _open() -> tuple[Store, dict[str, str], Path, bool]:
    """The study (created on first use when it is the default one), its settings and the image folder."""
    db, data = _settings()
    default = db is None
    store = _open_store(_default_db(str(default_db_path())) if default else db)
    meta = store.meta()
    return store, meta, Path(data or meta["data_dir"]), default


def _sign_in(store: Store, meta: dict[str, str], default: bool) -> None:
    st.title("OwlEval grading")
    by_name = meta["auth"] == AUTH_NAME
    with st.form("sign_in"):
        if by_name:
            secret = st.text_input("Your name", key="sign_in_name", max_chars=MAX_NAME_LEN)
        else:
            secret = st.text_input("Your sign-in token", key="sign_in_token", type="password")
        submitted = st.form_submit_button("Sign in", type="primary", key="sign_in_submit")
    if default:
        st.caption(f"Local study of the six published answer sets. Grades are saved in `{store.path}`")
    if not submitted:
        return
    try:
        if by_name:
            who, refusal = access.sign_in_with_name(store, secret), None
        else:
            who, refusal = signin_guard.check_token(lambda token: access.sign_in_with_token(store, token), secret)
    except OwlEvalError as exc:
        st.error(str(exc))
        return
    if who is None:
        st.error(refusal or "That token is not valid for this study.")
        return
    if rate_qc.refuse_paused(store, who):
        return
    st.session_state.annotator = who
    st.session_state.pos = None
    st.rerun()


def _apply_bar_actions(store: Store, who: access.Annotator, items: list[gq.QueueItem]) -> list[gq.QueueItem]:
    """Apply the grade bar's new actions once each, in the order its window made them, before anything is drawn.

    A grade goes to the answer the window showed when it was made (checked against the queue), with that answer's
    comment and flags; Back/Next move from that answer. ``ss.bar_applied`` (window -> last sequence applied) goes
    back to the bar as the confirmation. Returns the queue as it is after the grades.
    """
    ss = st.session_state

    def record(items: list[gq.QueueItem], action: gradebar.Action, window: str) -> list[gq.QueueItem]:
        item = items[action.index]
        flags = [f for f in FLAGS if ss.get(f"flag_{f}_{action.index}")]
        try:
            event = gq.record_grade(store, who.annotator_id, item.answer_id, action.grade or "",
                                    ss.get(f"comment_{action.index}", ""), flags, window=window, seq=action.seq, seen=action.seen,
                                    item_id=item.item_id)
        except (OwlEvalError, sqlite3.Error) as exc:
            ss.flash.append(("error", f"Answer {action.index + 1}: {exc}" if isinstance(exc, gq.StaleViewError) else f"Not saved: {exc}"))
            ss.pos = action.index
            return items
        items = [*items[:action.index], dataclasses.replace(item, grade=event.grade), *items[action.index + 1:]]
        ss.flash.append(("ok", f"Saved grade {event.grade} for answer {action.index + 1}."))
        if (feedback := rate_qc.onboarding_feedback(store, item, event.grade)) is not None:
            ss.flash.append((rate_qc.ONBOARDING_FLASH, feedback))
        nxt = gq.next_ungraded(items, action.index)
        ss.pos = DONE if nxt is None else nxt
        return items

    return action_limits.apply_limited(ss, action_limits.SHARED, (str(store.path), who.annotator_id), items,
                                       lambda item: item.view_id, record)


def _go(pos: int) -> None:
    st.session_state.pos = pos


def _grading(store: Store, data_dir: Path) -> None:
    ss = st.session_state
    who: access.Annotator = ss.annotator
    if rate_qc.refuse_paused(store, who):
        return
    items = gq.load_queue(store, who.annotator_id)
    if not items:
        st.info("Nothing is assigned to you in this study yet.")
        return
    items = _apply_bar_actions(store, who, items)
    total, graded = len(items), sum(i.grade is not None for i in items)
    if ss.get("pos") is None:  # just signed in: resume at the first ungraded answer
        first = gq.next_ungraded(items)
        ss.pos = DONE if first is None else first
    errors = gradebar.show_flash(ss)
    st.progress(graded / total, text=f"{graded} of {total} graded")
    owner = gradebar.owner_key(store.path, who.annotator_id)
    if ss.pos == DONE or ss.pos >= total:  # finished, or "Next" on the last answer
        gradebar.mount_hidden(applied=ss.get("bar_applied", {}), owner=owner)  # confirms the last actions
        for message in errors:  # no bar on this screen to hold them
            st.error(message)
        first = gq.next_ungraded(items)
        if first is None:
            st.success(f"All {total} answers are graded. Thank you! You can go back to review or change a grade.")
        else:
            st.info(f"That was the last answer in your queue; {total - graded} are still ungraded.")
            st.button("Go to the first ungraded answer", key="nav_first_ungraded", type="primary", on_click=_go, args=(first,))
        st.button("Back to the last answer", key="nav_back_done", on_click=_go, args=(total - 1,))
        return
    screen = gq.answer_screen(store, who.annotator_id, items[ss.pos], data_dir)
    _answer_view(screen, total, owner, gradebar.flash_message(ss, errors))


def _answer_view(screen: gq.AnswerScreen, total: int, owner: str, message: tuple[int, str] | None) -> None:
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
                for number, turn in enumerate(screen.earlier, 1):
                    with st.container(border=True):
                        st.caption(f"Question {number}")
                        st.text(shown(turn.question))
                        st.caption(f"Answer {number}")
                        st.text(shown(turn.answer) if turn.answer is not None else "(no answer)")
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
            picture = _screen_image(str(screen.image_path))
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
        changes = len(screen.history) - 1
        st.caption(f"Your grade: {current.grade}" + (f" (changed {changes} time{'s' if changes > 1 else ''})" if changes else ""))
    if len(screen.history) > 1:
        with st.expander("History of your grades for this answer"):
            for event in reversed(screen.history):
                flags = ", ".join(FLAGS[f] for f in event.flags)
                st.text(f"{event.created_at[:19].replace('T', ' ')} UTC  {event.grade}  {shown(event.comment)}  {flags}".rstrip())


def _admin(store: Store, meta: dict[str, str]) -> None:
    ss = st.session_state
    st.title("Study progress")
    if not ss.get("is_admin"):
        with st.form("admin_sign_in"):
            token = st.text_input("Admin token", type="password", key="admin_token")
            submitted = st.form_submit_button("Open", key="admin_open")
        if meta["auth"] == AUTH_NAME:
            st.caption(f"The admin token of this local study is in `{admin_token_path(store.path)}`")
        if submitted:
            ok, refusal = signin_guard.check_token(lambda t: access.is_admin(store, t), token)
            if ok:
                ss.is_admin = True
                st.rerun()
            st.error(refusal or "That is not this study's admin token.")
        return
    exposed = os.environ.get(access.EXPOSED_ENV)  # set by owleval rate; under streamlit run the flag comes after --
    if not exposed and serving.allow_name_sign_in():
        exposed = st.get_option("server.address") or "every interface"
    if exposed and meta["auth"] == AUTH_NAME:
        st.warning(
            f"This study signs annotators in by name alone and is served on {exposed} (--allow-name-sign-in): anyone "
            "who can reach this page can sign in under another annotator's name, see their comments and change their "
            "grades. For grading on a network, create a token study (`owleval study create --annotators ...`)."
        )
    if is_pairwise(meta):
        rate_pairwise.admin(store)
        rate_qc.admin_quality(store, pairwise=True)
        rate_qc.admin_pausing(store, meta)
        return
    per_cell = export.progress_frame(store)
    st.subheader("Per annotator")
    st.dataframe(shown_frame(export.progress_by(per_cell, "annotator")), hide_index=True)
    st.subheader("Per model")
    st.dataframe(shown_frame(export.progress_by(per_cell, "model_id")), hide_index=True)
    st.subheader("Per annotator and model (graded / assigned)")
    if not per_cell.empty:
        cells = per_cell.assign(cell=per_cell["graded"].astype(str) + " / " + per_cell["assigned"].astype(str))
        st.dataframe(shown_frame(cells.pivot(index="annotator", columns="model_id", values="cell")))
    rate_qc.admin_quality(store, pairwise=False)
    rate_qc.admin_pausing(store, meta)
    flagged = export.flagged_frame(export.current_grades_frame(store))
    st.subheader(f"Flagged answers ({len(flagged)})")
    if not flagged.empty:
        st.dataframe(shown_frame(flagged), hide_index=True)
    # built when clicked, from the grades of that moment, instead of on every rerun of this page
    admin_download.offer("Make a grades CSV link", lambda: frame_to_csv(export.grades_export_frame(store)), "grades.csv", "grades_csv")


def _annotator_toolbar() -> None:
    """Annotators get the minimal toolbar: no "Deploy", no rerun or developer menu. Set by the app itself, so plain
    `streamlit run owleval/rate.py` gets it too; the browser learns the mode when a run starts, so the run that
    first sets it starts again."""
    if st.get_option("client.toolbarMode") != "minimal":
        st.set_option("client.toolbarMode", "minimal")
        st.rerun()


def main() -> None:
    st.set_page_config(page_title="OwlEval grading", layout="wide")
    # First, before any toast: style-only HTML and toasts share Streamlit's event container, where a new run's
    # elements replace the last run's by position; a toast drawn before it would hide this style for the rest of the
    # run and the page would jump 48 px under the pointer.
    st.html(_LAYOUT_CSS)
    _annotator_toolbar()
    try:
        store, meta, data_dir, default = _open()
    except OwlEvalError as exc:
        st.error(f"The grading app cannot open its study.\n\n{exc}")
        st.stop()
    signin_guard.stop_if_unsafe(by_name=meta["auth"] == AUTH_NAME)
    ss = st.session_state
    page = st.sidebar.radio("Page", ["Grade", "Admin"], key="page")
    if "annotator" in ss:
        st.sidebar.text(f"Signed in as {shown(ss.annotator.name)}")
    if ("annotator" in ss or ss.get("is_admin")) and st.sidebar.button("Sign out", key="sign_out"):
        for key in ("annotator", "pos", "is_admin"):  # the admin view too: it names models
            ss.pop(key, None)
        st.rerun()
    if page == "Admin":
        _admin(store, meta)
    elif "annotator" not in ss:
        _sign_in(store, meta, default)
        gradebar.mount_hidden(rate_pairwise.VOTE_BAR if is_pairwise(meta) else gradebar.GRADE_BAR)
    elif is_pairwise(meta):
        if not rate_qc.refuse_paused(store, ss.annotator):
            rate_pairwise.voting(store, data_dir, _screen_image)
    else:
        _grading(store, data_dir)


main()
