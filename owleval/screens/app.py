"""The grading service's frame: settings, the study, sign-in, the Admin page and the page router.

Started by ``owleval/rate.py`` (``streamlit run owleval/rate.py -- [--db grades.sqlite] [--data DATA_DIR]``); the
screens themselves are :mod:`owleval.screens.grading_page` (A-D) and :mod:`owleval.screens.pairwise_page`. Every
read and write goes through :mod:`owleval.study`. Without ``--db`` the local default study of the six published
answer sets is opened.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import streamlit as st

from owleval.errors import OwlEvalError
from owleval.imagefiles import ImageRefused
from owleval.screens import access, gradebar, grading_page, pairwise_page, quality_pages, serving, signin_guard
from owleval.screens.images import screen_image
from owleval.study.default_study import admin_token_path, default_db_path, ensure_default_study
from owleval.study.manage import AUTH_NAME, MAX_NAME_LEN
from owleval.study.pair_study import is_pairwise
from owleval.study.store import Store
from owleval.textsafety import mark_format_chars as shown

DB_ENV, DATA_ENV = "OWLEVAL_RATE_DB", "OWLEVAL_RATE_DATA"

# The answer's own box scrolls, and the image is capped (lower on the pairwise screen, known by its answer boxes), so
# the grade bar above them is never below the fold. Emitted first in every run (see main).
_LAYOUT_CSS = """<style>
[data-testid="stMainBlockContainer"] { padding-top: 3rem; }
[data-testid="stImage"] img { max-height: 48vh; object-fit: contain; }
[data-testid="stMain"]:has(.st-key-left_answer) [data-testid="stImage"] img { max-height: 34vh; }
</style>"""


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
    """Prepared once per image file, not on every rerun (see :mod:`owleval.screens.images`); a refusal (outside the
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
    if quality_pages.refuse_paused(store, who):
        return
    st.session_state.annotator = who
    st.session_state.pos = None
    st.rerun()


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
        pairwise_page.admin(store)
    else:
        grading_page.admin(store)
    quality_pages.admin_quality(store, pairwise=is_pairwise(meta))
    quality_pages.admin_pausing(store, meta)
    if not is_pairwise(meta):
        grading_page.admin_flagged_and_download(store)


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
        gradebar.mount_hidden(pairwise_page.VOTE_BAR if is_pairwise(meta) else gradebar.GRADE_BAR)
    elif quality_pages.refuse_paused(store, ss.annotator):  # paused while signed in: the next run stops the work
        return
    elif is_pairwise(meta):
        pairwise_page.voting(store, data_dir, _screen_image)
    else:
        grading_page.grading(store, data_dir, _screen_image)
