"""Issue 15 in a real browser: a grade applies to the answer on screen when it was made, in the order made.

Each sequence of the issue's table is driven at its speed a few times (bench/bench_grading_races.py runs 20+
rounds each and prints the counts); every grade recorded is compared with what the screen showed at the moment of
the action. Also: two windows of one annotator, and the grade bar above the fold for the longest published answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import grading_races as race
from tests.grading_helpers import make_study
from tests.browser_helpers import BROWSER_MARKS, Server, launch_chromium
from tests.timing import budget, budget_ms

ROUNDS = 2
SIGN_INS = [f"s{i}" for i in range(len(race.SEQUENCES) + 3)]

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, owl_data: Path) -> Iterator[tuple[Server, object]]:
    tmp = tmp_path_factory.mktemp("races")
    created = make_study(tmp, owl_data, SIGN_INS, seed=5)
    server = Server(created.path, tmp)
    server.start()
    yield server, created
    server.proc.kill()
    server.proc.wait(timeout=budget(10))


@pytest.fixture(scope="module")  # one Chromium for the whole module (conftest's is per test)
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = launch_chromium(p.chromium)
        yield chromium
        chromium.close()


def _open(browser, server: Server, token: str, viewport=(1280, 800)):
    page = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}).new_page()
    page.set_default_timeout(budget_ms(30))
    page.goto(server.url)
    page.get_by_label("Your sign-in token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Answer to grade").wait_for()
    race.install(page)
    return page


@pytest.mark.parametrize("sequence", list(race.SEQUENCES))
def test_every_grade_lands_on_the_answer_on_screen_in_the_order_made(served, browser, sequence: str) -> None:
    server, created = served
    name = SIGN_INS[list(race.SEQUENCES).index(sequence)]
    page = _open(browser, server, created.tokens[name])
    who = race.annotator_id(server.db, name)
    tally = race.Tally()
    for _ in range(ROUNDS):
        tally.add(race.run_round(page, server.db, who, race.SEQUENCES[sequence]))
    page.context.close()
    assert tally.failures == 0, tally.line(sequence) + "\n" + "\n".join(tally.details)
    assert tally.actions >= ROUNDS


def test_a_second_window_does_not_silently_replace_a_newer_grade(served, browser) -> None:
    server, created = served
    name = SIGN_INS[-3]
    who = race.annotator_id(server.db, name)
    first, second = (_open(browser, server, created.tokens[name]) for _ in range(2))
    assert race.wait_ready(first) == race.wait_ready(second) == 1
    first.keyboard.press("b")
    race.wait_ready(first, 2)
    assert race.grade_events(server.db, who)[-1][1:] == (1, "B")
    second.keyboard.press("d")  # its view of answer 1 is older than the B
    second.get_by_text("graded B in another window").wait_for()
    race.settle(second, server.db, who)
    assert [e[1:] for e in race.grade_events(server.db, who)] == [(1, "B")]
    assert race.heading(second) == 1
    second.keyboard.press("d")  # asked and answered: now it replaces the B
    race.wait_ready(second, 2)
    assert [e[1:] for e in race.grade_events(server.db, who)] == [(1, "B"), (1, "D")]
    for page in (first, second):
        page.context.close()


def test_a_double_click_and_a_held_key_record_one_event_each(served, browser) -> None:
    server, created = served
    name = SIGN_INS[-2]
    who = race.annotator_id(server.db, name)
    page = _open(browser, server, created.tokens[name])
    race.wait_ready(page, 1)
    page.mouse.dblclick(*race.button_centre(page, "B —"))
    race.settle(page, server.db, who)
    race.wait_ready(page, 2)
    for _ in range(10):  # held: a key pressed again before its release comes with repeat set
        page.keyboard.down("c")
        page.wait_for_timeout(33)
    page.keyboard.up("c")
    race.settle(page, server.db, who)
    assert [e[1:] for e in race.grade_events(server.db, who)] == [(1, "B"), (2, "C")]
    assert race.heading(page) == 3
    page.context.close()


def test_a_key_while_the_page_is_between_two_answers_is_dropped_with_a_message(served, browser) -> None:
    """Mid-redraw the page can hold the box of the answer it leaves beside the box of the next: a key then grades
    nothing and says so. (Made here by adding a second box with the next answer's key.)"""
    server, created = served
    name = SIGN_INS[-1]
    who = race.annotator_id(server.db, name)
    page = _open(browser, server, created.tokens[name])
    race.wait_ready(page, 1)
    page.evaluate("""() => { const extra = document.createElement('div'); extra.id = 'leftover';
        extra.className = 'st-key-shown_1_999_0'; document.body.appendChild(extra); }""")
    page.keyboard.press("a")
    page.get_by_text("Not saved: the screen had already moved on — grade again.").wait_for()
    page.wait_for_timeout(500)
    assert race.grade_events(server.db, who) == []
    page.evaluate("() => document.getElementById('leftover').remove()")
    page.keyboard.press("a")
    race.wait_ready(page, 2)
    assert [e[1:] for e in race.grade_events(server.db, who)] == [(1, "A")]
    page.context.close()
