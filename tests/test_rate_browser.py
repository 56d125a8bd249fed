"""The grading app in a real browser: `streamlit run` on a loopback port, driven by headless Chromium.

Two annotators grade at once, the server is killed with -9 and restarted, and every confirmed grade is still
there with each annotator resuming where they stopped; an answer holding <script> and <img onerror> stays text.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from owleval.study.export import current_grades_frame
from owleval.study.queue import load_queue
from owleval.study.store import Store
from tests.browser_helpers import BROWSER_MARKS, Server
from tests.grading_helpers import HOSTILE, MODELS, QIDS, make_study
from tests.timing import budget, budget_ms

N = len(MODELS) * len(QIDS)

pytestmark = BROWSER_MARKS


@pytest.fixture
def served(tmp_path: Path, owl_data: Path) -> Iterator[tuple[Server, object]]:
    created = make_study(tmp_path, owl_data, ("ann", "bob"), seed=2)
    server = Server(created.path, tmp_path)
    server.start()
    yield server, created
    if server.proc and server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait(timeout=budget(10))


def _sign_in(browser, url: str, token: str):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.set_default_timeout(budget_ms(20))
    page.goto(url)
    page.get_by_label("Your sign-in token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Answer to grade").wait_for()
    return page


def _at(page, number: int) -> None:
    """Wait until answer ``number`` is on screen with its grade buttons (keys pressed earlier hit the old ones)."""
    page.get_by_role("heading", name=f"Answer {number} of {N}").wait_for()
    page.locator(f'[class*="st-key-shown_{number - 1}_"]').wait_for()
    page.get_by_role("button", name="D — irrelevant or incorrect").wait_for()


def _events(db: Path) -> list[tuple[str, str, str]]:
    store = Store(db)
    try:
        return [tuple(r) for r in store.conn.execute(
            "SELECT n.name, e.grade, e.comment FROM grade_events e JOIN annotators n USING (annotator_id) ORDER BY event_id")]
    finally:
        store.close()


def test_two_annotators_grade_at_once_and_survive_kill_9(served, browser) -> None:
    server, created = served
    ann = _sign_in(browser, server.url, created.tokens["ann"])
    bob = _sign_in(browser, server.url, created.tokens["bob"])
    _at(ann, 1)
    _at(bob, 1)
    ann.get_by_role("button", name="B — some imperfections").click()
    ann.get_by_text("Saved grade B for answer 1.").wait_for()
    bob.get_by_label("Comment (optional)").fill("abcd typed here grades nothing")
    bob.get_by_role("button", name="D — irrelevant or incorrect").click()
    bob.get_by_text("Saved grade D for answer 1.").wait_for()
    _at(ann, 2)
    ann.keyboard.press("3")  # the 1-4 keys
    ann.get_by_text("Saved grade C for answer 2.").wait_for()
    _at(ann, 3)
    ann.keyboard.press("a")  # the a-d keys
    ann.get_by_text("Saved grade A for answer 3.").wait_for()
    _at(ann, 4)
    ann.keyboard.press("ArrowLeft")
    _at(ann, 3)
    ann.keyboard.press("d")  # change the grade of answer 3
    ann.get_by_text("Saved grade D for answer 3.").wait_for()
    confirmed = [("ann", "B", ""), ("bob", "D", "abcd typed here grades nothing"), ("ann", "C", ""), ("ann", "A", ""), ("ann", "D", "")]
    assert _events(server.db) == confirmed

    server.kill9()
    server.start()
    assert _events(server.db) == confirmed
    ann2 = _sign_in(browser, server.url, created.tokens["ann"])
    bob2 = _sign_in(browser, server.url, created.tokens["bob"])
    _at(ann2, 4)  # resumes at the first ungraded answer
    _at(bob2, 2)
    ann2.get_by_text(f"3 of {N} graded").wait_for()
    frame = current_grades_frame(server.db).sort_values(["annotator", "graded_at"])
    assert frame[["annotator", "grade"]].values.tolist() == [["ann", "B"], ["ann", "C"], ["ann", "D"], ["bob", "D"]]


def test_answers_stay_inert_text_and_no_model_name_reaches_the_page(served, browser) -> None:
    server, created = served
    page = _sign_in(browser, server.url, created.tokens["ann"])
    store = Store(server.db)
    who = store.conn.execute("SELECT annotator_id FROM annotators WHERE name = 'ann'").fetchone()[0]
    hostile_at = next(i.index for i in load_queue(store, who) if i.question_id == 32)
    store.close()
    page.evaluate("window.__alerts = 0; window.alert = () => { window.__alerts += 1; }; true")
    for number in range(1, hostile_at + 2):
        _at(page, number)
        html = page.content()
        assert not [m for m in MODELS if m in html], f"a model name is in the page of answer {number}"
        if number <= hostile_at:
            page.keyboard.press("ArrowRight")
    box = page.locator(".st-key-answer_box")
    shown = box.inner_text()
    assert "<script>window.__owned = 1</script>" in shown and "onerror" in shown and "**not bold**" in shown
    assert shown.index("**not bold**") < shown.index("\n") < shown.index("second line"), "the line break was lost"
    assert box.locator("img, script, a, strong").count() == 0
    page.wait_for_timeout(300)
    assert page.evaluate("[String(window.__owned), String(window.__alerts)]") == ["undefined", "0"]
    assert HOSTILE.split("\n")[1] in shown


def test_annotators_see_no_developer_toolbar_and_the_whole_rubric(served, browser) -> None:
    """Started as a developer would (plain `streamlit run`, no toolbar flag): the app itself hides the toolbar."""
    server, created = served
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(budget_ms(20))
    page.goto(server.url)
    page.get_by_label("Your sign-in token").wait_for()
    assert page.get_by_text("Deploy", exact=True).count() == 0
    page.get_by_label("Your sign-in token").fill(created.tokens["ann"])
    page.get_by_role("button", name="Sign in").click()
    _at(page, 1)
    assert page.get_by_text("Deploy", exact=True).count() == 0
    labels = page.evaluate("""() => [...document.querySelectorAll('*')].filter(e => e.shadowRoot)
        .flatMap(e => [...e.shadowRoot.querySelectorAll('button.grade')])
        .map(e => [e.innerText, e.scrollWidth <= e.clientWidth, getComputedStyle(e).textOverflow])""")
    from owleval.questions import GRADES

    assert [text for text, _, _ in labels] == [f"{g} — {meaning}" for g, meaning in GRADES.items()]
    assert all(fits and overflow != "ellipsis" for _, fits, overflow in labels), labels
