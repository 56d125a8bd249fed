"""A quick annotator on the grading page: key presses and clicks at the speeds of issue 15, and the check of every
recorded grade against what the screen showed when the action was made.

Shared by tests/test_rate_races.py (a few rounds of each sequence) and bench/bench_grading_races.py (20+ rounds).
Actions under 60 ms apart are dispatched inside the page with ``setTimeout``; what the screen showed is the answer
number in the page's heading at that moment. Nothing here knows how the page implements its buttons: a grade is
found by its label, a key is a keydown on the page, a click is a click on what is under the pointer.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from owleval.study.queue import load_queue
from owleval.study.store import Store
from tests.timing import budget

#: installed in the page once: the recorder of actions and of "Not saved" messages, and the action helpers
PAGE_JS = r"""
(() => {
  if (window.__race) return true;
  const KEYCODE = {"1": "Digit1", "2": "Digit2", "3": "Digit3", "4": "Digit4", a: "KeyA", b: "KeyB", c: "KeyC",
                   d: "KeyD", ArrowLeft: "ArrowLeft", ArrowRight: "ArrowRight"};
  const GRADE = {"1": "A", "2": "B", "3": "C", "4": "D", a: "A", b: "B", c: "C", d: "D"};
  const heading = () => {
    const found = [...document.querySelectorAll("h1, h2, h3")]
      .map((h) => /^Answer (\d+) of \d+/.exec((h.textContent || "").trim())).filter(Boolean);
    return found.length === 1 ? Number(found[0][1]) : null;
  };
  const texts = () => {
    const parts = [document.body.innerText];
    for (const host of document.querySelectorAll("*")) if (host.shadowRoot) parts.push(host.shadowRoot.textContent);
    return parts.join("\n");
  };
  const race = window.__race = {
    log: [], messages: 0, heading,
    reset() { race.log = []; race.messages = 0; },
    key(k, repeat = false) {
      if (!repeat) race.log.push({ kind: GRADE[k] ? "grade" : "nav", grade: GRADE[k] || null, shown: heading(), what: "key " + k });
      const init = { key: k, code: KEYCODE[k], bubbles: true, cancelable: true, composed: true, repeat };
      document.body.dispatchEvent(new KeyboardEvent("keydown", init));
    },
    keyup(k) { document.body.dispatchEvent(new KeyboardEvent("keyup", { key: k, code: KEYCODE[k], bubbles: true })); },
    clickAt(x, y) {
      let el = document.elementFromPoint(x, y);
      while (el && el.shadowRoot) {
        const inner = el.shadowRoot.elementFromPoint(x, y);
        if (!inner || inner === el) break;
        el = inner;
      }
      const button = el && el.closest("button");
      const label = button ? button.textContent.trim() : "";
      const grade = /^[ABCD] —/.test(label) ? label[0] : null;
      race.log.push({ kind: grade ? "grade" : "nav", grade, shown: heading(), what: "click " + label.slice(0, 8) });
      if (button) button.click();
    },
    // run fn as soon as the heading names answer n (polled every few ms)
    whenHeading(n, fn) { const tick = () => (heading() === n ? fn() : setTimeout(tick, 3)); tick(); },
  };
  setInterval(() => { if (/Not saved/.test(texts())) race.messages += 1; }, 10);
  return true;
})()
"""


@dataclass
class Tally:
    """Counts over the rounds of one sequence (an action is a grade key or click)."""

    rounds: int = 0
    actions: int = 0
    wrong_answer: int = 0  # grade events on an answer, or with a grade, that no action made while it was on screen
    lost_silently: int = 0  # grade actions with no event, no same earlier grade, and no "Not saved" message
    last_not_kept: int = 0  # answers whose current grade is not the last action's grade on them (no message)
    with_message: int = 0  # rounds in which a "Not saved" message was shown
    details: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        for name in ("rounds", "actions", "wrong_answer", "lost_silently", "last_not_kept", "with_message"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.details += other.details

    @property
    def failures(self) -> int:
        return self.wrong_answer + self.lost_silently + self.last_not_kept

    def line(self, name: str) -> str:
        return (f"{name:<28} rounds {self.rounds:>3}  actions {self.actions:>3}  wrong answer {self.wrong_answer:>3}  "
                f"lost silently {self.lost_silently:>3}  last not kept {self.last_not_kept:>3}  "
                f"'not saved' shown {self.with_message:>3}")


def annotator_id(db: Path, name: str) -> int:
    store = Store(db)
    try:
        return int(store.conn.execute("SELECT annotator_id FROM annotators WHERE name = ?", (name,)).fetchone()[0])
    finally:
        store.close()


def grade_events(db: Path, who: int) -> list[tuple[int, int, str]]:
    """(event id, queue number 1-based, grade) of every event of annotator ``who``."""
    store = Store(db)
    try:
        number = {item.answer_id: item.index + 1 for item in load_queue(store, who)}
        rows = store.conn.execute("SELECT event_id, answer_id, grade FROM grade_events WHERE annotator_id = ? ORDER BY event_id", (who,))
        return [(int(e), number[int(a)], g) for e, a, g in rows]
    finally:
        store.close()


def install(page) -> None:
    page.evaluate(PAGE_JS)


def heading(page) -> int | None:
    return page.evaluate("window.__race.heading()")


def settle(page, db: Path, who: int, quiet_s: float = 1.0, limit_s: float = 20.0) -> None:
    """Wait until the page and the study stop changing (no script run, same heading and events for ``quiet_s``)."""
    last, since, deadline = None, time.monotonic(), time.monotonic() + budget(limit_s)
    while time.monotonic() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').count() > 0
        state = (running, heading(page), len(grade_events(db, who)))
        if state != last or running:
            last, since = state, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.1)


def wait_ready(page, number: int | None = None) -> int:
    """Wait until an answer (``number`` if given) is on screen with its grade buttons; returns its number."""
    if number is not None:
        page.get_by_role("heading", name=f"Answer {number} of").wait_for()
    page.get_by_role("button", name="D — irrelevant or incorrect").last.wait_for()
    page.wait_for_function("window.__race && window.__race.heading() !== null")
    return heading(page)


def button_centre(page, label_start: str) -> tuple[float, float]:
    box = page.get_by_role("button", name=label_start).last.bounding_box()
    assert box is not None, f"no {label_start!r} button on screen"
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def check_round(page, db: Path, who: int, before: list[tuple[int, int, str]]) -> Tally:
    """Compare every grade recorded in the round with the actions made and what the screen showed for each."""
    log = page.evaluate("window.__race.log")
    message = page.evaluate("window.__race.messages") > 0
    grades = [a for a in log if a["kind"] == "grade"]
    events = grade_events(db, who)
    new = events[len(before):]
    tally = Tally(rounds=1, actions=len(grades), with_message=int(message))
    made = {(a["shown"], a["grade"]) for a in grades}
    for _, number, grade in new:
        if (number, grade) not in made:
            tally.wrong_answer += 1
            tally.details.append(f"{grade} recorded on answer {number}; actions: {log}")
    current = {number: grade for _, number, grade in events}
    previous = {number: grade for _, number, grade in before}
    recorded = Counter((number, grade) for _, number, grade in new)
    last_on: dict[int, str] = {}
    for i, action in enumerate(grades):
        key = (action["shown"], action["grade"])
        last_on[action["shown"]] = action["grade"]
        repeat = previous.get(action["shown"]) == action["grade"] or key in {(a["shown"], a["grade"]) for a in grades[:i]}
        if not recorded[key] and not repeat and not message:
            tally.lost_silently += 1
            tally.details.append(f"{action['what']} on answer {action['shown']} not recorded; actions: {log}")
    if not message:
        for number, grade in last_on.items():
            if number is not None and current.get(number) != grade:
                tally.last_not_kept += 1
                tally.details.append(f"answer {number}: last action {grade}, kept {current.get(number)}; actions: {log}")
    return tally


def run_round(page, db: Path, who: int, script: str) -> Tally:
    """One round: ``script`` (JavaScript using ``race``, ``n`` = the answer on screen, ``p`` = positions) runs in the
    page, then the round is checked once the page has settled."""
    n = wait_ready(page)
    before = grade_events(db, who)
    positions = {g: button_centre(page, f"{g} —") for g in "ABCD"}
    positions["next"] = button_centre(page, "Next →")
    page.evaluate(f"([n, p]) => {{ const race = window.__race; race.reset(); {script} }}", [n, positions])
    time.sleep(0.4)
    settle(page, db, who)
    return check_round(page, db, who, before)


#: the sequences of issue 15's table, as page scripts
SEQUENCES: dict[str, str] = {
    # graded N with `c`, pressed `d` as soon as answer N+1's heading appeared
    "key on the next answer": "race.key('c'); race.whenHeading(n + 1, () => race.key('d'));",
    # the same with clicks on the button under the pointer
    "click on the next answer": (
        "race.clickAt(...p.C); race.whenHeading(n + 1, () => race.clickAt(...p.D));"),
    # `3` pressed 60 ms after the next answer's heading appeared, while the page is still being redrawn
    "key while redrawing": "race.key('c'); race.whenHeading(n + 1, () => setTimeout(() => race.key('3'), 60));",
    # two keys on one answer 25 ms apart: the second is the grade meant
    "two keys 25 ms apart": "race.key('1'); setTimeout(() => race.key('4'), 25);",
    # a digit tapped twice, 80 ms apart
    "key tapped twice": "race.key('2'); setTimeout(() => { race.keyup('2'); race.key('2'); }, 80);",
    # a digit held down 300 ms (the browser repeats it every 33 ms)
    "key held 300 ms": (
        "race.key('2'); for (let t = 33; t < 300; t += 33) setTimeout(() => race.key('2', true), t);"
        "setTimeout(() => race.keyup('2'), 300);"),
    # grade click, then Next 30 ms later
    "grade then Next 30 ms": "race.clickAt(...p.B); setTimeout(() => race.clickAt(...p.next), 30);",
}
