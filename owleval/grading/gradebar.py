"""The grade bar: one Streamlit component that owns the four grade buttons, Back/Next and their keys.

Why a component and not ``st.button``: Streamlit leaves the previous run's buttons (and their callbacks, bound to
the previous answer) live in the page until the new run replaces them, and merges queued widget triggers, so a quick
key or click could grade the answer that was just left, or be lost. The bar instead stays mounted across answers
(one key), and for each action it

- reads which answer the page shows at that moment (the heading and the answer box must agree; while the page is
  between two answers the action is dropped with a message in the bar, never sent for another answer),
- numbers it in its window (a random id per page load, and a sequence number per action), and
- keeps every action the server has not confirmed, sending the whole list again until the server reports it applied.

The server (:func:`pending_actions`, then :func:`owleval.grading.queue.record_grade`) applies each window's actions
once, in sequence order. Answers are never passed to the bar, only their place in the queue: nothing it draws comes
from the study. Held keys (``repeat``) and the second click of a double click are ignored.
The same bar with other choices, keys and heading (a :class:`BarKind`) carries the pairwise votes
(:mod:`owleval.rate_pairwise`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

from owleval.questions import GRADES

BAR_KEY = "gradebar"
#: key of the container around the answer on screen: ``shown_<index>_<answer_id>_<seen event id>``
SHOWN_KEY_PREFIX = "shown_"
STALE_SCREEN_MESSAGE = "Not saved: the screen had already moved on — grade again."
KINDS = ("grade", "back", "next")
MAX_PENDING = 200


@dataclass(frozen=True)
class BarKind:
    """What a bar offers: its choices (value -> button label), their keys, and the heading it matches
    (``"<heading> N of M"``). The A-D grades are :data:`GRADE_BAR`; the pairwise votes use another kind."""

    name: str  # the component's name (one per kind)
    choices: Mapping[str, str]
    keys: Mapping[str, str]  # lower-case key -> choice
    heading: str
    help: str
    aria_label: str
    stale_message: str = STALE_SCREEN_MESSAGE


GRADE_BAR = BarKind(
    name="owleval_gradebar",
    choices={grade: f"{grade} — {meaning}" for grade, meaning in GRADES.items()},
    keys={"1": "A", "2": "B", "3": "C", "4": "D", "a": "A", "b": "B", "c": "C", "d": "D"},
    heading="Answer",
    help="Keys: 1-4 or a-d grade, ← back, → next.",
    aria_label="Grade this answer",
)

_JS = r"""
const G = (globalThis[GLOBAL] ??= {
  window: Date.now().toString(36) + Math.random().toString(36).slice(2, 10),
  seq: 0, pending: [], attempt: 0, view: null, timer: null, installed: false,
});

function headingIndex() {
  const found = [];
  for (const h of document.querySelectorAll("h1, h2, h3")) {
    const text = (h.textContent || "").trim();
    const m = text.startsWith(HEADING + " ") ? /^(\d+) of \d+/.exec(text.slice(HEADING.length + 1)) : null;
    if (m) found.push(Number(m[1]) - 1);
  }
  return found.length === 1 ? found[0] : null;
}

// What the person sees: the answer box's key and the heading must name the same answer.
function displayed() {
  const boxes = document.querySelectorAll('[class*="st-key-shown_"]');
  if (boxes.length !== 1) return null;
  const m = /st-key-shown_(\d+)_(\d+)_(\d+)/.exec(boxes[0].className);
  if (!m || headingIndex() !== Number(m[1])) return null;
  return { index: Number(m[1]), answer: Number(m[2]), seen: Number(m[3]) };
}

function notice(text, kind) {
  const line = G.view && G.view.root.querySelector(".notice");
  if (!line) return;
  line.textContent = text;
  line.dataset.kind = kind || "";
}

function send() {
  clearTimeout(G.timer);
  if (!G.view || G.pending.length === 0) return;
  G.attempt += 1;
  G.view.setStateValue("actions", { window: G.window, attempt: G.attempt, pending: G.pending.slice() });
  // Not confirmed yet (a lost message, a reconnect): send the whole list again, less often each time. Not sooner:
  // with fast reruns a new value stops the run that is applying the list.
  G.timer = setTimeout(send, Math.min(10000, 2500 * G.attempt));
}

function act(kind, grade) {
  const shown = displayed();
  if (!shown) { notice(STALE, "error"); return; }
  G.seq += 1;
  G.pending.push({ seq: G.seq, kind, grade: grade || null, index: shown.index, answer: shown.answer, seen: shown.seen });
  notice("", "");
  G.attempt = 0;
  send();
}

function onKey(e) {
  if (!G.view || !document.contains(G.view.host)) return;  // no bar on screen (signed out, finished)
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.composedPath ? e.composedPath()[0] : e.target;
  const typing = t && (t.isContentEditable || ["TEXTAREA", "SELECT"].includes(t.tagName) ||
    (t.tagName === "INPUT" && !["checkbox", "radio", "button", "submit"].includes(t.type)));
  if (typing) return;
  const grade = e.shiftKey ? undefined : KEYS[(e.key || "").toLowerCase()];
  const nav = e.key === "ArrowLeft" ? "back" : e.key === "ArrowRight" ? "next" : null;
  if (!grade && !nav) return;
  e.preventDefault();
  e.stopImmediatePropagation();
  if (e.repeat) return;  // a held key acts once
  if (nav === "back" && G.view.data.index === 0) return;
  act(grade ? "grade" : nav, grade);
}

function build(root) {
  const bar = document.createElement("div");
  bar.className = "bar";
  bar.setAttribute("role", "group");
  bar.setAttribute("aria-label", ARIA);
  const grades = document.createElement("div");
  grades.className = "grades";
  for (const [grade, label] of Object.entries(CHOICES)) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "grade";
    b.dataset.grade = grade;
    b.textContent = label;
    b.addEventListener("click", (e) => { if (e.detail > 1) return; act("grade", grade); });
    grades.appendChild(b);
  }
  const nav = document.createElement("div");
  nav.className = "nav";
  for (const [kind, label] of [["back", "← Back"], ["next", "Next →"]]) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "navbutton " + kind;
    b.textContent = label;
    b.addEventListener("click", (e) => { if (e.detail > 1) return; act(kind); });
    nav.appendChild(b);
  }
  const help = document.createElement("span");
  help.className = "help";
  help.textContent = HELP;
  nav.appendChild(help);
  const line = document.createElement("div");
  line.className = "notice";
  line.setAttribute("role", "status");
  bar.append(grades, nav, line);
  root.appendChild(bar);
  return bar;
}

export default function (component) {
  const { data, setStateValue, parentElement } = component;
  const root = parentElement;
  const bar = root.querySelector(".bar") || build(root);
  G.view = { data, setStateValue, root, host: root.host || root };
  const done = (data.applied || {})[G.window] || 0;
  const before = G.pending.length;
  G.pending = G.pending.filter((a) => a.seq > done);
  if (G.pending.length < before) G.attempt = 0;
  for (const b of bar.querySelectorAll("button.grade")) {
    b.classList.toggle("current", b.dataset.grade === data.grade);
    b.setAttribute("aria-pressed", String(b.dataset.grade === data.grade));
  }
  bar.querySelector("button.back").disabled = data.index === 0;
  bar.dataset.index = String(data.index);
  if (!G.installed) {
    G.installed = true;
    window.addEventListener("keydown", onKey, true);  // capture on window: before any handler of the page
  }
}
"""

_CSS = """
.bar { font-family: var(--st-font, sans-serif); color: var(--st-text-color, #31333f); }
.grades { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 0.5rem; }
button { font: inherit; font-size: 0.95rem; cursor: pointer; border-radius: var(--st-base-radius, 0.5rem);
  border: 1px solid var(--st-border-color, rgba(49, 51, 63, 0.2)); background: var(--st-background-color, #fff);
  color: inherit; padding: 0.45rem 0.75rem; }
button:hover { border-color: var(--st-primary-color, #ff4b4b); color: var(--st-primary-color, #ff4b4b); }
button:disabled { opacity: 0.4; cursor: default; }
button.grade { text-align: left; white-space: normal; line-height: 1.3; min-height: 3.2rem; }
button.grade.current { background: var(--st-primary-color, #ff4b4b); border-color: var(--st-primary-color, #ff4b4b);
  color: #fff; }
.nav { display: flex; gap: 0.5rem; align-items: center; margin-top: 0.5rem; }
.help { opacity: 0.7; font-size: 0.85rem; margin-left: 0.5rem; }
.notice { min-height: 1.3rem; margin-top: 0.35rem; font-size: 0.9rem; }
.notice[data-kind="error"] { color: var(--st-red-color, #d33); font-weight: 600; }
"""


def _js(kind: BarKind = GRADE_BAR) -> str:
    constants = {"GLOBAL": "__" + kind.name, "CHOICES": dict(kind.choices), "KEYS": dict(kind.keys), "HEADING": kind.heading,
                 "HELP": kind.help, "ARIA": kind.aria_label, "STALE": kind.stale_message}
    return "".join(f"const {name} = {json.dumps(value)};\n" for name, value in constants.items()) + _JS


_components: dict[str, Any] = {}


def mount(index: int, grade: str | None, applied: Mapping[str, int], kind: BarKind = GRADE_BAR) -> None:
    """Draw the bar for the item at ``index`` (its current choice ``grade``); ``applied`` maps window ids to the last
    sequence number applied, which tells each window which of its actions are confirmed."""
    import streamlit as st

    if kind.name not in _components:
        _components[kind.name] = st.components.v2.component(kind.name, js=_js(kind), css=_CSS)
    _components[kind.name](key=BAR_KEY, data={"index": index, "grade": grade, "applied": dict(applied)},
                           on_actions_change=lambda: None, width="stretch")


@dataclass(frozen=True)
class Action:
    seq: int
    kind: str  # grade (any choice of the bar, a vote too), back or next
    grade: str | None
    index: int  # the answer's place in the annotator's queue, as displayed when the action was made
    answer: int  # its answer id
    seen: int  # the id of the latest grade event of that answer when the window drew it (0: none)


def pending_actions(state: Any, choices: Mapping[str, str] = GRADES) -> tuple[str | None, list[Action]]:
    """The window id and its actions, in sequence order, from the bar's state (anything malformed, or a choice
    not in ``choices``, is ignored: the state comes from the browser)."""
    if not isinstance(state, Mapping):
        return None, []
    sent = state.get("actions")
    if not isinstance(sent, Mapping) or not isinstance(sent.get("window"), str):
        return None, []
    window = sent["window"][:64]
    actions: dict[int, Action] = {}
    for raw in list(sent.get("pending") or [])[:MAX_PENDING]:
        try:
            action = Action(int(raw["seq"]), str(raw["kind"]), raw.get("grade"), int(raw["index"]), int(raw["answer"]),
                            int(raw["seen"]))
        except (KeyError, TypeError, ValueError):
            continue
        if action.kind in KINDS and (action.kind != "grade" or action.grade in choices):
            actions[action.seq] = action
    return window, [actions[s] for s in sorted(actions)]


STUDY_CHANGED_MESSAGE = "Not saved: the study changed since this page was drawn; reload the page."


def apply_actions(ss: MutableMapping[str, Any], items: list[T], item_id: Callable[[T], int],
                  record: Callable[[list[T], Action, str], list[T]], choices: Mapping[str, str] = GRADES) -> list[T]:
    """Apply the bar's new actions once each, in the order its window made them, before anything is drawn.

    Shared by the A-D and the pairwise screens: ``ss`` is the session state (``bar_applied`` window -> last sequence
    applied goes back to the bar as its confirmation; messages go to ``flash``; Back/Next set ``pos``). An action
    tagged with an item the queue no longer holds at that place is refused; a choice goes to ``record(items, action,
    window)``, which stores it, sets ``pos`` and returns the queue as it is after it.
    """
    window, actions = pending_actions(ss.get(BAR_KEY), choices)
    if window is None:
        return items
    applied: dict[str, int] = ss.setdefault("bar_applied", {})
    flash: list[tuple[str, str]] = ss.setdefault("flash", [])
    for action in actions:
        if action.seq <= applied.get(window, 0):
            continue
        applied[window] = action.seq  # answered now, whatever the outcome: a refused action is not retried
        item = items[action.index] if 0 <= action.index < len(items) else None
        if item is None or item_id(item) != action.answer:
            flash.append(("error", STUDY_CHANGED_MESSAGE))
        elif action.kind == "back":
            ss["pos"] = max(action.index - 1, 0)
        elif action.kind == "next":
            ss["pos"] = action.index + 1
        else:
            items = record(items, action, window)
    return items
