"""Issue 25 in a real browser: nothing moves under the pointer, and no click, tap or key is lost without a word.

- A second click aimed where a button was just before a rerun (50-200 ms after a grade, or after Next) hits that
  button, on the A-D and the pairwise screens, with a toast on the way and without one, while the server is slowed
  (tests/pointer_races.py): the bar never moves.
- The same grade button tapped (touch, mobile emulation) or clicked on two answers in a row, 150, 300 and 600 ms
  apart: each answer gets its grade; the same answer twice within 300 ms counts once, with a note.
- A grade made just before Back is kept in the tab and sent when the person is back; while it is unconfirmed the
  bar counts it and the browser asks before leaving.
- A key pressed at the first frame of the first answer after sign-in is applied to it.
- Format characters in an answer show as markers; a PNG with an oversized zTXt chunk is refused with the image
  warning while the heading and the bar work.
bench/bench_grading_races.py runs the first two with 15 rounds each.
"""

from __future__ import annotations

import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from owleval.study.store import Store
from owleval.study.manage import create_study
from owleval.study.pairs import PairDesign
from tests import pointer_races as pr
from tests.browser_helpers import BROWSER_MARKS, Server, launch_chromium
from tests.grading_helpers import MODELS, oversized_chunk_png, write_answer_files
from tests.timing import budget, wait_until

pytestmark = BROWSER_MARKS
QIDS = (1, 2, 3, 4, 5, 9, 10, 11, 12, 13)  # stand-alone questions and dialogue openers: 30 answers per annotator
BIDI = "\u202eD edarg"  # displays as "grade D" unless its control character is shown
NAMES = ("layout", "touch", "mouse", "back", "early")
DELAYS_MS = (50, 100, 150, 200)
INTERVALS_MS = (150, 300, 600)


def _text(model: str, qid: int) -> str:
    return f"answer {qid} by {model[:5]} {BIDI}" if qid == 1 else f"answer {qid} by {model[:5]}"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:  # one Chromium for the module (conftest's is per test)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = launch_chromium(p.chromium)
        chromium.devices = p.devices
        yield chromium
        chromium.close()


def _serve(tmp: Path, owl_data: Path, data_dir: Path | None = None, **study) -> Iterator[tuple[Server, object]]:
    answers = write_answer_files(tmp / "answers", owl_data, MODELS, QIDS, _text)
    created = create_study(tmp / "study.sqlite", answers, annotators=list(NAMES), data_dir=data_dir or owl_data, seed=4,
                           **study)
    server = Server(created.path, tmp)
    server.start()
    yield server, created
    server.proc.send_signal(signal.SIGCONT)
    server.proc.kill()
    server.proc.wait(timeout=budget(10))


@pytest.fixture(scope="module")
def grades(tmp_path_factory: pytest.TempPathFactory, owl_data: Path) -> Iterator[tuple[Server, object]]:
    """An A-D study whose first question's image is a PNG with a zTXt chunk of 300 MB once decompressed."""
    tmp = tmp_path_factory.mktemp("pointer")
    data = tmp / "owleval_82q"
    shutil.copytree(owl_data, data)
    (data / "cases" / "1.jpg").write_bytes(oversized_chunk_png(b"zTXt"))
    yield from _serve(tmp, owl_data, data)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory, owl_data: Path) -> Iterator[tuple[Server, object]]:
    yield from _serve(tmp_path_factory.mktemp("pointer_pairs"), owl_data, pairwise=PairDesign("all"))


@pytest.mark.parametrize("screen", ["grades", "pairs"])
def test_a_click_aimed_before_a_rerun_hits_that_button_with_and_without_a_toast(screen, request, browser) -> None:
    server, created = request.getfixturevalue(screen)
    page = pr.sign_in(browser, server, created.tokens["layout"])
    grade, other = ("D —", "B —") if screen == "grades" else ("Right is better", "Tie")
    rounds = pr.pointer_rounds(page, server, grade, "Next →", DELAYS_MS)  # a saved-grade toast comes with the rerun
    rounds += pr.pointer_rounds(page, server, "Next →", other, DELAYS_MS)  # no toast
    misses = [r["line"] for r in rounds if not r["right"] or r["moved"]]
    page.context.close()
    assert not misses, "\n".join(misses)


@pytest.mark.parametrize("touch", [True, False], ids=["touch", "mouse"])
def test_the_same_button_on_consecutive_answers_counts_for_each(grades, browser, touch: bool) -> None:
    server, created = grades
    name = "touch" if touch else "mouse"
    page = pr.sign_in(browser, server, created.tokens[name], touch=touch)
    taps, lost, wrong, details = pr.same_button_rounds(page, server.db, name, touch, INTERVALS_MS)
    assert taps == 2 * len(INTERVALS_MS)
    assert (lost, wrong) == (0, 0), f"{lost} lost, {wrong} wrong of {taps}: " + "; ".join(details)
    # a double tap on one answer (the server held, so the page cannot move in between) counts once, with a note
    pr.idle(page)
    before = pr.events(server.db, name)
    spot = pr.centre(page, "C —")
    pointer = pr.Pointer(page, touch)
    server.proc.send_signal(signal.SIGSTOP)
    try:
        for _ in range(2):
            pointer.press(*spot)
            page.wait_for_timeout(100)
        page.get_by_text("Counted once").wait_for()
    finally:
        server.proc.send_signal(signal.SIGCONT)
    page.get_by_text("Saved grade C").wait_for()
    pr.idle(page)
    assert len(pr.events(server.db, name)) == len(before) + 1
    page.context.close()


def test_a_grade_made_just_before_back_is_kept_and_sent_on_return(grades, browser) -> None:
    server, created = grades
    page = pr.sign_in(browser, server, created.tokens["back"])
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.type), dialog.accept()))
    pr.idle(page)
    number = pr.shown(page)
    server.proc.send_signal(signal.SIGSTOP)  # the grade cannot be confirmed before the page goes
    try:
        page.mouse.click(*pr.centre(page, "D —"))
        page.get_by_text("1 action not saved yet").wait_for()
        page.go_back()
    finally:
        server.proc.send_signal(signal.SIGCONT)
    assert dialogs == ["beforeunload"], "the browser asks before leaving while a grade is unsaved"
    page.go_forward()
    token_field = page.get_by_label("Your sign-in token")
    token_field.or_(page.get_by_role("heading", name="of 30")).wait_for()
    if token_field.is_visible():  # a new page (not restored from the back-forward cache): signed out
        token_field.fill(created.tokens["back"])
        page.get_by_role("button", name="Sign in").click()
    wait_until(lambda: pr.events(server.db, "back") == [(number, "D")], 30, "the grade made before going back recorded")
    page.get_by_role("heading", name="of 30").wait_for()
    page.wait_for_function("() => !document.body.innerText.includes('not saved yet')"
                           " && ![...document.querySelectorAll('*')].some((e) => e.shadowRoot &&"
                           " e.shadowRoot.textContent.includes('not saved yet'))")
    page.context.close()


def test_a_key_at_the_first_frame_of_the_first_answer_is_applied_to_it(grades, browser) -> None:
    server, created = grades
    shown, bar_was_live = pr.early_key_round(browser, server, created.tokens["early"], "c")
    assert (shown, pr.events(server.db, "early")) == (1, [(1, "C")]), f"bar drawn at that frame: {bar_was_live}"


def test_format_characters_show_as_markers_and_a_bad_image_is_refused_without_blocking(grades, browser) -> None:
    server, created = grades
    store = Store(server.db)
    from owleval.study.queue import load_queue

    who = store.conn.execute("SELECT annotator_id FROM annotators WHERE name = 'layout'").fetchone()[0]
    at = next(i.index for i in load_queue(store, who) if i.question_id == 1) + 1
    store.close()
    page = pr.sign_in(browser, server, created.tokens["layout"])
    page.get_by_role("button", name="← Back").wait_for()
    while pr.shown(page) != at:  # Back/Next to the answer of question 1
        pr.idle(page)
        page.keyboard.press("ArrowRight" if pr.shown(page) < at else "ArrowLeft")
        page.wait_for_function(f"window.__hits.heading() !== {pr.shown(page)}")
    page.get_by_text("Image file not found or unreadable: 1.jpg").wait_for()
    box = page.locator(".st-key-answer_box").inner_text()
    assert "[U+202E]D edarg" in box and "\u202e" not in box
    page.keyboard.press("a")
    page.get_by_text(f"Saved grade A for answer {at}.").wait_for()
    page.context.close()
