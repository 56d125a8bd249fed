"""The admin's CSV download, served only to the signed-in admin's own page.

``st.download_button`` keeps its file in Streamlit's media store and serves it at ``/media/<id>`` to anyone who
has the URL, with no session check, for as long as the session lives. Here the CSV is made when the admin clicks,
travels over the admin's own websocket, and the page offers it as a link to a ``blob:`` URL (readable only inside
that page). The link is good for one download or :data:`LIFETIME_S` seconds, whichever comes first: the page
revokes it after the download or the deadline, and the server stops sending it (:class:`Ticket`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

LIFETIME_S = 60.0

_JS = r"""
export default function (component) {
  const { data, setStateValue, parentElement } = component;
  const root = parentElement;
  const G = (globalThis.__owleval_csv ??= { done: new Set() });
  root.replaceChildren();
  if (!data || !data.nonce) return;
  const note = document.createElement("span");
  if (G.done.has(data.nonce)) {
    note.textContent = "Downloaded. Make a new link for a fresh copy.";
    root.append(note);
    return;
  }
  const url = URL.createObjectURL(new Blob([data.csv], { type: "text/csv;charset=utf-8" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = data.filename;
  link.textContent = `Save ${data.filename}`;
  link.setAttribute("data-testid", "owleval-csv-link");
  note.textContent = ` (one download, valid ${Math.round(data.expires_in)} s)`;
  const end = (message) => {
    if (G.done.has(data.nonce)) return;
    G.done.add(data.nonce);
    setTimeout(() => URL.revokeObjectURL(url), 1000);  // after the browser has started saving it
    link.replaceWith(Object.assign(document.createElement("span"), { textContent: message }));
    note.remove();
    setStateValue("fetched", data.nonce);
  };
  link.addEventListener("click", () => setTimeout(() => end("Downloaded. Make a new link for a fresh copy."), 0));
  setTimeout(() => end("The link expired. Make a new one."), Math.max(0, data.expires_in * 1000));
  root.append(link, note);
}
"""


@dataclass
class Ticket:
    """One made CSV: good until fetched once or :data:`LIFETIME_S` seconds after it was made."""

    csv: str
    made_at: float
    nonce: str = field(default_factory=lambda: uuid.uuid4().hex)
    fetched: bool = False

    def remaining(self, now: float) -> float:
        return 0.0 if self.fetched else max(0.0, LIFETIME_S - (now - self.made_at))

    def valid(self, now: float) -> bool:
        return self.remaining(now) > 0


_component: list[Any] = []


def offer(label: str, make_csv: Callable[[], str], filename: str, key: str,
          clock: Callable[[], float] = time.monotonic) -> None:
    """A button that makes the CSV (``make_csv()``, on click only) and a one-time link to it."""
    import streamlit as st

    ss = st.session_state
    if st.button(label, key=f"{key}_make"):
        ss[f"{key}_ticket"] = Ticket(make_csv(), clock())
    ticket: Ticket | None = ss.get(f"{key}_ticket")
    state = ss.get(f"{key}_link")
    if ticket is not None and isinstance(state, dict) and state.get("fetched") == ticket.nonce:
        ticket.fetched = True
    if ticket is None or not ticket.valid(clock()):
        ss.pop(f"{key}_ticket", None)  # the CSV leaves the session once its link is spent
        return
    if not _component:
        _component.append(st.components.v2.component("owleval_csv_link", js=_JS))
    _component[0](key=f"{key}_link", data={"nonce": ticket.nonce, "csv": ticket.csv, "filename": filename,
                                           "expires_in": ticket.remaining(clock())},
                  on_fetched_change=lambda: None)
