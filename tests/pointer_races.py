"""Pointer races on the grading screens: a second click or tap aimed at where a button was just before a rerun, and
the same button on consecutive answers; the server "under load" while they happen.

Unlike tests/grading_races.py (which logs whatever button is under the pointer as the intended one), the intended
button is named by the caller and the button actually hit is logged from the browser's own (trusted) click events,
with the answer on screen then; every frame, the bar's position is sampled, so a jump is seen even when no click
lands in it. Load: the server process is paused (SIGSTOP) for part of every cycle, which spreads a run's messages
over time as a busy machine does. Shared by tests/test_rate_pointer.py and bench/bench_grading_races.py.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from owleval.study.store import Store
from tests.timing import budget, budget_ms

#: installed in the page once: trusted clicks with the button they hit (inside the bar's shadow DOM too) and the
#: item number in the heading at that moment, and the bar's top edge every animation frame
HITS_JS = r"""
(() => {
  if (window.__hits) return true;
  const heading = () => {
    const found = [...document.querySelectorAll("h1, h2, h3")]
      .map((h) => /^(?:Answer|Pair) (\d+) of \d+/.exec((h.textContent || "").trim())).filter(Boolean);
    return found.length === 1 ? Number(found[0][1]) : null;
  };
  const barTop = () => {
    for (const host of document.querySelectorAll("*")) {
      const bar = host.shadowRoot && host.shadowRoot.querySelector(".bar");
      if (bar && !bar.hidden) return Math.round(bar.querySelector("button").getBoundingClientRect().top);
    }
    return null;
  };
  const state = window.__hits = { clicks: [], tops: new Set(), heading, barTop };
  window.addEventListener("click", (e) => {
    if (!e.isTrusted) return;
    const button = e.composedPath().find((n) => n.tagName === "BUTTON");
    state.clicks.push({ label: button ? button.textContent.trim() : "", shown: heading() });
  }, true);
  const frame = () => { const top = barTop(); if (top !== null) state.tops.add(top); requestAnimationFrame(frame); };
  requestAnimationFrame(frame);
  return true;
})()
"""


def install(page) -> None:
    page.evaluate(HITS_JS)


def reset(page) -> None:
    page.evaluate("window.__hits.clicks = []; window.__hits.tops = new Set(); true")


def clicks(page) -> list[dict]:
    return page.evaluate("window.__hits.clicks")


def bar_tops(page) -> list[int]:
    """Every top edge the bar's first button had since :func:`reset` (one value: it never moved)."""
    return sorted(page.evaluate("[...window.__hits.tops]"))


def shown(page) -> int | None:
    return page.evaluate("window.__hits.heading()")


def centre(page, label_start: str) -> tuple[float, float]:
    box = page.get_by_role("button", name=label_start).last.bounding_box()
    assert box is not None, f"no {label_start!r} button on screen"
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def idle(page, timeout_s: float = 30.0) -> None:
    """Wait until no run is under way and the bar is drawn (the status widget gone for 0.3 s)."""
    deadline, since = time.monotonic() + budget(timeout_s), None
    while time.monotonic() < deadline:
        busy = page.locator('[data-testid="stStatusWidget"]').count() > 0 or page.evaluate("window.__hits.barTop()") is None
        if busy:
            since = None
        elif since is None:
            since = time.monotonic()
        elif time.monotonic() - since >= 0.3:
            return
        time.sleep(0.05)
    raise AssertionError("the page did not settle")


@dataclass
class Load:
    """Pause a process ``stop_ms`` out of every ``stop_ms + run_ms`` (SIGSTOP/SIGCONT), as a busy machine delays it."""

    pid: int
    stop_ms: float = 90.0
    run_ms: float = 60.0

    def __enter__(self) -> Load:
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._cycle, daemon=True)
        self._thread.start()
        return self

    def _cycle(self) -> None:
        while not self._done.is_set():
            os.kill(self.pid, signal.SIGSTOP)
            try:
                self._done.wait(self.stop_ms / 1000)
            finally:
                os.kill(self.pid, signal.SIGCONT)
            self._done.wait(self.run_ms / 1000)

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        os.kill(self.pid, signal.SIGCONT)


def same_button_lost(taps: list[dict], before: list[tuple[int, str]], after: list[tuple[int, str]]) -> tuple[int, int]:
    """(lost, wrong) for taps on one grade button: a tap on an item it had not hit yet in this round, whose grade
    is not that item's grade afterwards, is lost; a new event for an item no tap was on, or with another choice, is
    wrong. ``before`` and ``after``: (item number, choice) of every event, oldest first."""
    tapped = {(t["shown"], t["choice"]) for t in taps}
    new = after[len(before):]
    wrong = sum((number, choice) not in tapped for number, choice in new)
    current = dict(after)
    lost = sum(current.get(number) != choice for number, choice in tapped)
    return lost, wrong


#: a desktop's double-click time (Chrome's default): a second click at the same spot within it has ``detail`` 2
DOUBLE_CLICK_S = 0.5


class Pointer:
    """Taps (touch emulation; Chrome itself counts taps) or mouse clicks that count like a real mouse: playwright's
    ``mouse.click`` always sends a click count of 1, where the browser would report a quick second click as the
    second of a double click."""

    def __init__(self, page, touch: bool):
        self.page, self.touch = page, touch
        self.last: tuple[tuple[float, float], float] | None = None

    def press(self, x: float, y: float) -> None:
        if self.touch:
            self.page.touchscreen.tap(x, y)
            return
        now = time.monotonic()
        count = 2 if self.last and self.last[0] == (x, y) and now - self.last[1] < DOUBLE_CLICK_S else 1
        self.page.mouse.move(x, y)
        self.page.mouse.down(click_count=count)
        self.page.mouse.up(click_count=count)
        self.last = ((x, y), now)


def sign_in(browser, server, token: str, touch: bool = False, devices: dict | None = None):
    """A new page signed in with ``token`` (a Pixel 7 with touch, from playwright's ``devices``, or a 1280x800 desktop
    window), once an item is on screen."""
    options = dict((devices or browser.devices)["Pixel 7"]) if touch else {"viewport": {"width": 1280, "height": 800}}
    options.pop("default_browser_type", None)
    page = browser.new_context(**options).new_page()
    page.set_default_timeout(budget_ms(30))
    page.goto(server.url)
    page.get_by_label("Your sign-in token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name=re.compile(r"^(Answer|Pair) \d+ of \d+")).wait_for()
    install(page)
    return page


def events(db: Path, name: str, pairwise: bool = False) -> list[tuple[int, str]]:
    """(queue number, choice) of every event of annotator ``name``, oldest first."""
    store = Store(db)
    try:
        who = store.conn.execute("SELECT annotator_id FROM annotators WHERE name = ?", (name,)).fetchone()[0]
        if pairwise:
            from owleval.study.pair_queue import load_pair_queue

            number = {item.pair_id: item.index + 1 for item in load_pair_queue(store, who)}
            rows = store.conn.execute("SELECT pair_id, winner FROM vote_events WHERE annotator_id = ? ORDER BY event_id", (who,))
        else:
            from owleval.study.queue import load_queue

            number = {item.answer_id: item.index + 1 for item in load_queue(store, who)}
            rows = store.conn.execute("SELECT answer_id, grade FROM grade_events WHERE annotator_id = ? ORDER BY event_id", (who,))
        return [(number[int(item)], choice) for item, choice in rows]
    finally:
        store.close()


def pointer_rounds(page, server, first: str, target: str, delays: tuple[int, ...]) -> list[dict]:
    """One round per delay: click ``first``, then, ``delay`` ms later, where ``target`` was before that click, with
    the server slowed. Per round: ``hit`` (the label of what the second click hit), ``right`` (it was ``target``),
    ``moved`` (the bar's top edge changed at any frame), ``line`` (a description)."""
    results = []
    for delay in delays:
        idle(page)
        aim, start = centre(page, target), centre(page, first)
        reset(page)
        with Load(server.proc.pid):
            page.mouse.click(*start)
            page.wait_for_timeout(delay)  # the person's speed, not a wait for the page
            page.mouse.click(*aim)
            page.wait_for_timeout(400)  # the rerun under way while the load lasts
        idle(page)
        hits, tops = clicks(page), bar_tops(page)
        hit = hits[1]["label"] if len(hits) == 2 else None
        results.append({"hit": hit, "right": bool(hit and hit.startswith(target)), "moved": len(tops) != 1,
                        "line": f"{first} then {target} {delay} ms later: hit {hits[1:]}, bar tops {tops}"})
    return results


#: how long an action may take to be recorded before it counts as lost: the bar sends an unconfirmed list again after
#: 2.5 s, and a run on a loaded machine takes up to a few seconds more
CONFIRM_S = 8.0


def same_button_rounds(page, db: Path, name: str, touch: bool, intervals: tuple[int, ...]) -> tuple[int, int, int, list]:
    """For each interval: tap (or click) B, and B again where it was once the next answer is on screen, ``interval``
    ms after the first at the soonest; then wait (up to :data:`CONFIRM_S`) for both grades to be recorded. Returns
    (taps, lost, wrong, details) over the rounds."""
    taps = lost = wrong = 0
    details = []
    pointer = Pointer(page, touch)
    for interval in intervals:
        idle(page)
        before, number = events(db, name), shown(page)
        spot = centre(page, "B —")
        reset(page)
        started = time.monotonic()
        pointer.press(*spot)
        page.wait_for_function(f"![null, {number}].includes(window.__hits.heading())")
        page.wait_for_timeout(max(0.0, interval - 1000 * (time.monotonic() - started)))
        pointer.press(*spot)
        idle(page)
        made = [{"shown": c["shown"], "choice": "B"} for c in clicks(page)]
        deadline = time.monotonic() + budget(CONFIRM_S)  # a grade made while a slow run is finishing can wait for a resend
        while True:
            after = events(db, name)
            round_lost, round_wrong = same_button_lost(made, before, after)
            if not (round_lost or round_wrong) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        idle(page)
        taps, lost, wrong = taps + len(made), lost + round_lost, wrong + round_wrong
        if round_lost or round_wrong:
            details.append(f"{interval} ms: taps on {[m['shown'] for m in made]}, new events {after[len(before):]}")
    return taps, lost, wrong, details


def early_key_round(browser, server, token: str, key: str) -> tuple[int, bool]:
    """Sign in and press ``key`` (a keydown in the page) in the same task as the first item's heading appears (before
    the next frame is painted). Returns the item number shown then and whether the bar was already drawn, once the
    page has settled (the grade, if made, recorded)."""
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.set_default_timeout(budget_ms(30))
    try:
        page.goto(server.url)
        page.get_by_label("Your sign-in token").fill(token)
        page.evaluate("""(key) => { const seen = new MutationObserver(() => {
            const found = [...document.querySelectorAll('h3')].map((h) => /^(?:Answer|Pair) (\\d+) of/.exec(h.textContent)).filter(Boolean);
            if (found.length !== 1) return;
            seen.disconnect();
            window.__early = [Number(found[0][1]), [...document.querySelectorAll('*')].some((e) => e.shadowRoot && e.shadowRoot.querySelector('.bar:not([hidden])'))];
            document.body.dispatchEvent(new KeyboardEvent('keydown', { key, bubbles: true, composed: true }));
          }); seen.observe(document.body, { childList: true, subtree: true, characterData: true }); }""", key)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_function("window.__early !== undefined")
        install(page)
        idle(page)
        page.wait_for_timeout(500)
        shown, live = page.evaluate("window.__early")
        return shown, live
    finally:
        page.context.close()
