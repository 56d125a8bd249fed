"""A reason (pairwise) or comment and flag (A-D) typed right before a vote or grade is saved with that vote, in a real
browser, with no wait: the person types as soon as the heading names the next item, while the run that draws it is
still under way (its image comes last), then votes by click at once or by Tab and a key at once.

Streamlit keeps the previous run's element beside a new one until the run ends, shown while it has the focus; when the
note box was drawn after the heading, the box typed into could still be the previous item's, and the note went to that
item or was lost. Items left without a note must be saved with none (nothing carried over from the item before). The
page also records every moment its heading names an item whose note box is not there yet: the draw order itself is
checked, not only the luck of one run's timing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from owleval.study.queue import load_queue
from owleval.study.store import Store
from owleval.study.manage import create_study
from owleval.study.pairs import PairDesign
from owleval.study.pair_queue import load_pair_queue
from tests.browser_helpers import BROWSER_MARKS, Server
from tests.grading_helpers import MODELS, make_study, write_answer_files

pytestmark = BROWSER_MARKS
ITEMS = 6  # odd: a click at once; even: Tab and a key at once; every third: no note
QUESTIONS = (1, 2, 3, 4, 11, 12)  # each with its own image: a new image to prepare, last in each run


#: records every moment the heading names an item whose note box is not in the page yet (a box typed into then is
#: the previous item's): checked on every change of the page, whatever the timing of the runs
_WATCH = """(([heading, box]) => {
  window.__early = [];
  new MutationObserver(() => {
    for (const h of document.querySelectorAll("h1, h2, h3")) {
      const m = new RegExp("^" + heading + " ([0-9]+) of").exec((h.textContent || "").trim());
      if (m && !document.querySelector(`.st-key-${box}_${Number(m[1]) - 1}`)) window.__early.push(Number(m[1]));
    }
  }).observe(document, { childList: true, subtree: true, characterData: true });
})"""


def _page(browser, server: Server, token: str, heading: str, box_key: str):
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.add_init_script(f"{_WATCH}({json.dumps([heading, box_key])})")
    page.set_default_timeout(20_000)
    page.goto(server.url)
    page.get_by_label("Your sign-in token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    return page


def _note_for(number: int) -> str:
    return "" if number % 3 == 0 else f"note {number} for this item"


def _type_and_act(page, heading: str, box_label: str, number: int, click: str, key: str) -> None:
    """As soon as the heading names item ``number``: type its note in the box a person sees, and act at once."""
    page.get_by_role("heading", name=heading).wait_for()
    note = _note_for(number)
    box = page.get_by_label(box_label).filter(visible=True)
    if note:
        box.press_sequentially(note)  # key by key, as a person types: the run drawing the item ends meanwhile
    if number % 2:
        page.get_by_role("button", name=click).click()  # leaves the box: the click alone sends the note
    else:
        if note:
            box.press("Tab")  # keys typed in the box are text: leave it, then the key at once
        page.keyboard.press(key)


def _wait_rows(read: Callable[[], list[tuple]], count: int) -> list[tuple]:
    deadline = time.monotonic() + 60
    while len(rows := read()) < count:
        assert time.monotonic() < deadline, f"only {len(rows)} of {count} saved: {rows}"
        time.sleep(0.2)
    return rows


def _rows(db: Path, sql: str) -> Callable[[], list[tuple]]:
    def read() -> list[tuple]:
        store = Store(db)
        try:
            return [tuple(r) for r in store.conn.execute(sql)]
        finally:
            store.close()
    return read


def test_a_reason_typed_right_before_each_vote_is_saved_with_that_vote(tmp_path: Path, owl_data: Path, browser) -> None:
    answers = write_answer_files(tmp_path / "answers", owl_data, MODELS[:2], QUESTIONS)
    created = create_study(tmp_path / "pairs.sqlite", answers, annotators=["ann"], data_dir=owl_data,
                           pairwise=PairDesign("all"))
    store = Store(created.path)
    queue = load_pair_queue(store, store.conn.execute("SELECT annotator_id FROM annotators").fetchone()[0])
    store.close()
    count = min(ITEMS, len(queue))
    assert count == ITEMS
    server = Server(created.path, tmp_path)
    server.start()
    try:
        page = _page(browser, server, created.tokens["ann"], "Pair", "reason")
        for number in range(1, count + 1):
            _type_and_act(page, f"Pair {number} of {len(queue)}", "Reason (optional)", number, "Tie", "t")
        rows = _wait_rows(_rows(created.path, "SELECT pair_id, winner, reason FROM vote_events ORDER BY event_id"), count)
        assert page.evaluate("window.__early") == []
    finally:
        server.proc.kill()
        server.proc.wait(timeout=10)
    expected = [(item.pair_id, "tie", _note_for(item.index + 1)) for item in queue[:count]]
    assert rows == expected


def test_a_comment_and_flag_set_right_before_each_grade_are_saved_with_that_grade(tmp_path: Path, owl_data: Path,
                                                                                  browser) -> None:
    created = make_study(tmp_path, owl_data, ("ann",), models=MODELS[:1], qids=QUESTIONS)
    store = Store(created.path)
    queue = load_queue(store, store.conn.execute("SELECT annotator_id FROM annotators").fetchone()[0])
    store.close()
    count = min(ITEMS, len(queue))
    server = Server(created.path, tmp_path)
    server.start()
    try:
        page = _page(browser, server, created.tokens["ann"], "Answer", "comment")
        for number in range(1, count + 1):
            if number == 4:  # a flag ticked just before the grade, as a person does it
                page.get_by_role("heading", name=f"Answer {number} of {len(queue)}").wait_for()
                page.get_by_text("Answer cut off").filter(visible=True).click()
            _type_and_act(page, f"Answer {number} of {len(queue)}", "Comment (optional)", number,
                          "B — some imperfections", "b")
        rows = _wait_rows(_rows(created.path, "SELECT answer_id, grade, comment, flags FROM grade_events ORDER BY event_id"),
                          count)
        assert page.evaluate("window.__early") == []
    finally:
        server.proc.kill()
        server.proc.wait(timeout=10)
    expected = [(item.answer_id, "B", _note_for(item.index + 1), "answer-cut-off" if item.index == 3 else "")
                for item in queue[:count]]
    assert rows == expected
