"""The Streamlit side of sign-in safety for the grading app: token checks through the server's
:class:`~owleval.screens.throttle.CheckGate`, and the refusals of :mod:`owleval.screens.serving`."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from owleval.screens import log_limits, serving
from owleval.screens.throttle import Busy, CheckGate, address_key

T = TypeVar("T")


@st.cache_resource(show_spinner=False)
def gate() -> CheckGate:
    """One per server: every session's token checks share its budget and its failure counts."""
    return CheckGate()


def attempt_keys() -> tuple[str, list[str]]:
    """This attempt's throttle keys: the browser session, and the client's address key (loopback peers share one
    of their own; IPv6 per /64). Behind a proxy named by ``--trusted-proxy`` the address is the proxy's client."""
    session = "session:" + st.session_state.setdefault("throttle_id", uuid.uuid4().hex)
    return session, [session, address_key(st.context.ip_address)]


def check_token(check: Callable[[str], T], token: str) -> tuple[T | None, str | None]:
    """``(check(token), None)`` once the gate gives this check its turn; ``(None, refusal)`` when the queue is full.
    Never refused for earlier failures. (A request whose address cannot be believed never gets here: see
    :func:`stop_if_unsafe`, run first.)"""
    session, keys = attempt_keys()
    try:
        with st.spinner("Checking the token..."):
            return gate().run(keys, lambda: check(token), forget=[session]), None
    except Busy as busy:
        return None, f"The server is busy checking other sign-ins. Try again in {busy.retry_after:.0f} seconds."


def stop_if_unsafe(by_name: bool) -> None:
    """Refuse to serve (message, then stop) when the server limits were weakened, or when this request may not use
    name sign-in. Called at the top of every run (which also bounds the server's log lines, see log_limits)."""
    log_limits.install()
    request = serving.Request.current()
    refusal = serving.settings_refusal(st.get_option) if request.over_network else None
    if refusal is None and by_name:
        refusal = serving.name_sign_in_refusal(request, serving.allow_name_sign_in())
    if refusal is None:
        refusal = serving.proxy_refusal(request)
    if refusal:
        st.error(refusal)
        st.stop()
