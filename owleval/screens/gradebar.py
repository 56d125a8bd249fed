"""The grade bar: one Streamlit component that owns the four grade buttons, Back/Next and their keys.

Why a component and not ``st.button``: Streamlit leaves the previous run's buttons (and their callbacks, bound to
the previous answer) live in the page until the new run replaces them, and merges queued widget triggers, so a quick
key or click could grade the answer that was just left, or be lost. The bar instead stays mounted across answers
(one key), and for each action it

- reads which answer the page shows at that moment (the heading and the answer box must agree; while the page is
  between two answers the action is dropped with a message in the bar, never sent for another answer),
- numbers it in its window (a random id per page load, and a sequence number per action), and
- keeps every action the server has not confirmed, sending the whole list again until the server reports it applied.

The server (:func:`pending_actions`, then :func:`owleval.study.queue.record_grade`) applies each window's actions
once, in sequence order. Answers are never passed to the bar, only their place in the queue: nothing it draws comes
from the study. Held keys (``repeat``) act once; the same choice on the same answer twice within :data:`DOUBLE_MS`
counts once and says so (a click or tap on a new answer is always a new action, whatever ``event.detail`` says).
Every grade not yet confirmed is kept in the tab's session storage (sent again, under its own window and number,
when the same person is back after Back, a reload or a lost connection); while any is unconfirmed the bar shows how
many and the browser asks before the page is left. The bar is mounted hidden on the sign-in screen
(:func:`mount_hidden`), so keys at the first frame of an answer are applied to it.
The same bar with other choices, keys and heading (a :class:`BarKind`) carries the pairwise votes
(:mod:`owleval.screens.pairwise_page`).
"""

from __future__ import annotations

import hashlib
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
#: the same choice on the same answer again within this many milliseconds is one action (a double click or tap)
DOUBLE_MS = 300
DOUBLE_MESSAGE = "Counted once: the same choice on the same answer twice within 0.3 s."
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
  owner: null, restoredOwners: [], last: null, note: ["", ""], unsent: false, serverNote: null, sentWindow: null,
});
const STORE = "owleval:" + GLOBAL;

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

function live() {
  return !!(G.view && document.contains(G.view.host) && G.view.data.index !== null);
}

// Actions of the person signed in on this page (others wait in the tab's storage for their own sign-in).
function mine() {
  return G.pending.filter((a) => a.owner === G.owner || a.owner === null);
}

function render() {
  const root = G.view && G.view.root;
  if (!root) return;
  const line = root.querySelector(".notice .message");
  line.textContent = G.note[0];
  line.parentElement.dataset.kind = G.note[1];
  const count = mine().length;
  root.querySelector(".notice .unsaved").textContent =
    count ? `${count} action${count > 1 ? "s" : ""} not saved yet` : "";
}

function notice(text, kind) {
  G.note = [text, kind || ""];
  render();
}

// The tab's session storage keeps every grade not yet confirmed, so Back, a reload or a lost connection loses none:
// the page sends them again (under their own window and number: applied once) when the same person is back.
function persist() {
  try {
    const held = (a) => !a || a.w === G.window || G.restoredOwners.includes(a.owner);  // what G.pending holds
    const others = JSON.parse(sessionStorage.getItem(STORE) || "[]").filter((a) => !held(a));
    const keep = G.pending.filter((a) => a.kind === "grade" && a.owner !== null);
    sessionStorage.setItem(STORE, JSON.stringify(others.concat(keep)));
  } catch (err) { /* storage full or blocked: the page still sends what it holds */ }
}

function restore(owner) {
  if (G.restoredOwners.includes(owner)) return;
  G.restoredOwners.push(owner);
  let stored = [];
  try { stored = JSON.parse(sessionStorage.getItem(STORE) || "[]"); } catch (err) { stored = []; }
  const old = stored.filter((a) => a && a.owner === owner && a.w !== G.window &&
    !G.pending.some((p) => p.w === a.w && p.seq === a.seq));
  if (old.length) G.pending = old.concat(G.pending);
}

function send() {
  clearTimeout(G.timer);
  G.timer = null;
  const todo = mine();
  if (!live() || todo.length === 0) return;
  G.unsent = false;
  G.attempt += 1;
  const w = todo[0].w;  // the oldest window first (actions kept from an earlier page), then this page's own
  const pending = todo.filter((a) => a.w === w).map(({ seq, kind, grade, index, answer, seen }) =>
    ({ seq, kind, grade, index, answer, seen }));
  G.sentWindow = w;
  G.view.setStateValue("actions", { window: w, attempt: G.attempt, pending });
  // Not confirmed yet (a lost message, a reconnect): send the whole list again, less often each time. Not sooner:
  // with fast reruns a new value stops the run that is applying the list.
  G.timer = setTimeout(send, Math.min(10000, 2500 * G.attempt));
}

function act(kind, grade) {
  const shown = displayed();
  if (!shown) { notice(STALE, "error"); return; }
  const now = performance.now();
  const last = G.last;
  if (last && last.index === shown.index && last.answer === shown.answer && last.kind === kind &&
      last.grade === (grade || null) && now - last.t < DOUBLE_MS) {
    notice(DOUBLE, "");  // a double click or tap: counted once
    return;
  }
  G.last = { index: shown.index, answer: shown.answer, kind, grade: grade || null, t: now };
  G.seq += 1;
  G.pending.push({ w: G.window, owner: live() ? G.owner : null, seq: G.seq, kind, grade: grade || null,
                   index: shown.index, answer: shown.answer, seen: shown.seen });
  G.note = ["", ""];
  G.attempt = 0;
  persist();
  render();
  if (live()) send(); else G.unsent = true;  // a key before the bar is ready: sent as soon as it is
}

function onKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (!live() && !displayed()) return;  // no answer on screen (signing in, finished): not a grading key
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
  const shown = displayed();
  if (nav === "back" && shown && shown.index === 0) return;
  act(grade ? "grade" : nav, grade);
}

function onLeave(e) {
  if (mine().length === 0) return;
  persist();
  e.preventDefault();
  e.returnValue = "";  // the browser asks before leaving while actions are not saved
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
    b.addEventListener("click", () => act("grade", grade));
    grades.appendChild(b);
  }
  const nav = document.createElement("div");
  nav.className = "nav";
  for (const [kind, label] of [["back", "← Back"], ["next", "Next →"]]) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "navbutton " + kind;
    b.textContent = label;
    b.addEventListener("click", () => act(kind));
    nav.appendChild(b);
  }
  const help = document.createElement("span");
  help.className = "help";
  help.textContent = HELP;
  nav.appendChild(help);
  const line = document.createElement("div");
  line.className = "notice";
  line.setAttribute("role", "status");
  const message = document.createElement("span");
  message.className = "message";
  const unsaved = document.createElement("span");
  unsaved.className = "unsaved";
  line.append(message, unsaved);
  bar.append(grades, nav, line);
  root.appendChild(bar);
  return bar;
}

export default function (component) {
  const { data, setStateValue, parentElement } = component;
  const root = parentElement;
  const bar = root.querySelector(".bar") || build(root);
  G.view = { data, setStateValue, root, host: root.host || root };
  bar.hidden = data.index === null;  // hidden: mounted early (sign-in), or no item on screen (all done)
  if (!G.installed) {
    G.installed = true;
    window.addEventListener("keydown", onKey, true);  // capture on window: before any handler of the page
    window.addEventListener("beforeunload", onLeave);
  }
  if (data.owner) {
    G.owner = data.owner;
    for (const a of G.pending) if (a.owner === null) a.owner = G.owner;  // keys made before the bar was ready
    restore(G.owner);
  }
  const applied = data.applied || {};
  const before = G.pending.length;
  G.pending = G.pending.filter((a) => (a.owner !== null && a.owner !== G.owner) || a.seq > (applied[a.w] || 0));
  const confirmed = G.pending.length < before;
  if (confirmed) G.attempt = 0;
  if (data.index === null) { persist(); return; }
  if (data.message && data.message.id !== G.serverNote) {
    G.serverNote = data.message.id;
    G.note = [data.message.text, "error"];
  }
  persist();
  render();
  for (const b of bar.querySelectorAll("button.grade")) {
    b.classList.toggle("current", b.dataset.grade === data.grade);
    b.setAttribute("aria-pressed", String(b.dataset.grade === data.grade));
  }
  bar.querySelector("button.back").disabled = data.index === 0;
  bar.dataset.index = String(data.index);
  if (G.unsent || (mine().length && G.timer === null)) send();
  else if (confirmed && mine().length && mine()[0].w !== G.sentWindow) {  // a kept window is done: now the next one
    clearTimeout(G.timer);
    G.timer = setTimeout(send, 300);
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
.notice[data-kind="error"] .message { color: var(--st-red-color, #d33); font-weight: 600; }
.unsaved { margin-left: 0.75rem; opacity: 0.8; }
.bar[hidden] { display: none; }
"""


def _js(kind: BarKind = GRADE_BAR) -> str:
    constants = {"GLOBAL": "__" + kind.name, "CHOICES": dict(kind.choices), "KEYS": dict(kind.keys), "HEADING": kind.heading,
                 "HELP": kind.help, "ARIA": kind.aria_label, "STALE": kind.stale_message, "DOUBLE_MS": DOUBLE_MS,
                 "DOUBLE": DOUBLE_MESSAGE}
    return "".join(f"const {name} = {json.dumps(value)};\n" for name, value in constants.items()) + _JS


_components: dict[str, Any] = {}


def _component(kind: BarKind) -> Any:
    import streamlit as st

    if kind.name not in _components:
        _components[kind.name] = st.components.v2.component(kind.name, js=_js(kind), css=_CSS)
    return _components[kind.name]


def mount(index: int, grade: str | None, applied: Mapping[str, int], kind: BarKind = GRADE_BAR, *, owner: str = "",
          message: tuple[int, str] | None = None) -> None:
    """Draw the bar for the item at ``index`` (its current choice ``grade``); ``applied`` maps window ids to the last
    sequence number applied, which tells each window which of its actions are confirmed. ``owner`` names the person
    and study (actions kept in the tab are sent again only for the same owner); ``message`` (a number, new for each
    message, and its text) is shown in the bar's notice line, where it moves nothing."""
    data = {"index": index, "grade": grade, "applied": dict(applied), "owner": owner,
            "message": {"id": message[0], "text": message[1]} if message else None}
    _component(kind)(key=BAR_KEY, data=data, on_actions_change=lambda: None, width="stretch")


def owner_key(study: object, annotator_id: int) -> str:
    """Who the bar works for: a digest of the study file and the annotator (actions a tab kept are sent again only
    for the same person in the same study; the page learns nothing else from it)."""
    return hashlib.sha256(f"{study}\0{annotator_id}".encode()).hexdigest()[:20]


def show_flash(ss: MutableMapping[str, Any]) -> list[str]:
    """Show this run's saved-grade toasts (after the page's style: see screens.app.main) and return its error messages,
    which the bar shows in its notice line (:func:`flash_message`): nothing appears above the bar during a run."""
    import streamlit as st

    errors = []
    for kind, message in ss.pop("flash", []):
        if kind == "ok":
            st.toast(message)
        else:
            errors.append(message)
    return errors


def flash_message(ss: MutableMapping[str, Any], errors: list[str]) -> tuple[int, str] | None:
    """The ``message`` for :func:`mount`: this run's errors as one text, with a number new for each message."""
    if not errors:
        return None
    ss["bar_message_id"] = ss.get("bar_message_id", 0) + 1
    return ss["bar_message_id"], " ".join(errors)


def mount_hidden(kind: BarKind = GRADE_BAR, applied: Mapping[str, int] | None = None, owner: str = "") -> None:
    """Mount the bar without buttons: on the sign-in screen, so that its script is loaded and listening for keys
    before the first answer is drawn (a key at the first frame of an answer is applied to it, not lost); and on the
    screen with no item (all done), so that it still learns which actions are confirmed."""
    data = {"index": None, "applied": dict(applied or {}), "owner": owner}
    _component(kind)(key=BAR_KEY, data=data, on_actions_change=lambda: None, width="stretch")


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
