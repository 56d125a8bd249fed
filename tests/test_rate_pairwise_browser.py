"""The grading app on a pairwise study, in a real browser (`streamlit run` on loopback, headless Chromium).

A study is voted through with clicks and keys; every model is shown on both sides over it; no model id, answers
file name or model_a/model_b position reaches the page; a double click records one vote; the server is killed
with -9 mid-study and every confirmed vote is still there, the annotator resuming at the first pair without one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from owleval.study.store import Store
from owleval.study.manage import create_study
from owleval.study.pairs import PairDesign
from owleval.study.pair_queue import load_pair_queue
from tests.grading_helpers import HOSTILE, MODELS, QIDS, write_answer_files
from tests.browser_helpers import BROWSER_MARKS, Server
from tests.timing import budget, budget_ms

pytestmark = BROWSER_MARKS
LABELS = {"left": "Left is better", "right": "Right is better", "tie": "Tie", "both_bad": "Both are bad"}
KEYS = {"left": "1", "right": "r", "tie": "t", "both_bad": "4"}


def _text(model: str, qid: int) -> str:
    """Each model's answer names its short tag, so the page shows which model is on which side (to the test)."""
    if qid == 32:
        return HOSTILE + f"\nby tag-{model[:5]}"  # different per model: asked, and hostile on both sides
    return f"answer {qid} by tag-{model[:5]}"


@pytest.fixture
def served(tmp_path: Path, owl_data: Path) -> Iterator[tuple[Server, object]]:
    answers = write_answer_files(tmp_path / "answers", owl_data, MODELS, QIDS, _text)
    created = create_study(tmp_path / "pairs.sqlite", answers, annotators=["ann"], data_dir=owl_data, seed=3,
                           pairwise=PairDesign("all"))
    server = Server(created.path, tmp_path)
    server.start()
    yield server, created
    if server.proc and server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait(timeout=budget(10))


def _sign_in(browser, url: str, token: str):
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.set_default_timeout(budget_ms(20))
    page.goto(url)
    page.get_by_label("Your sign-in token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.evaluate("window.__alerts = 0; window.alert = () => { window.__alerts += 1; }; true")
    return page


def _at(page, number: int, total: int) -> None:
    """Wait until pair ``number`` is on screen with its vote buttons."""
    page.get_by_role("heading", name=f"Pair {number} of {total}").wait_for()
    page.locator(f'[class*="st-key-shown_{number - 1}_"]').wait_for()
    page.get_by_role("button", name="Both are bad").wait_for()


def _tag(page, side: str) -> str:
    """The model whose answer (and earlier turns) the box of ``side`` shows, once the run has drawn the page
    (until a run ends, Streamlit keeps the previous screen's surplus elements, faded)."""
    tags: set[str] = set()
    for _ in range(50):
        text = page.locator(f".st-key-{side}_answer").inner_text()
        tags = {m for m in MODELS if f"tag-{m[:5]}" in text}
        if len(tags) == 1 and page.locator('[data-testid="stStatusWidget"]').count() == 0:
            return tags.pop()
        page.wait_for_timeout(100)
    raise AssertionError(f"the {side} box shows {sorted(tags)}: {text!r}")


def _votes(db: Path) -> list[tuple[int, str, str, str]]:
    store = Store(db)
    try:
        return [tuple(r) for r in store.conn.execute(
            "SELECT pair_id, left_model, winner, reason FROM vote_events ORDER BY event_id")]
    finally:
        store.close()


def _expected_winner(choice: str, left: str, other: str) -> str:
    if choice in ("tie", "both_bad"):
        return choice
    winner = left if choice == "left" else other
    return "model_a" if winner == min(left, other) else "model_b"


def test_a_pairwise_study_voted_through_with_keys_and_clicks_survives_kill_9(served, browser) -> None:
    server, created = served
    store = Store(server.db)
    queue = load_pair_queue(store, store.conn.execute("SELECT annotator_id FROM annotators").fetchone()[0])
    store.close()
    total = len(queue)
    assert total == 15
    page = _sign_in(browser, server.url, created.tokens["ann"])
    sides: Counter[tuple[str, str]] = Counter()
    expected: list[tuple[int, str, str, str]] = []
    choices = list(LABELS)
    for number, item in enumerate(queue, 1):
        if number == 8:  # mid-study: kill -9, restart, sign in again
            confirmed = _votes(server.db)
            assert confirmed == expected
            server.kill9()
            server.start()
            assert _votes(server.db) == confirmed
            page = _sign_in(browser, server.url, created.tokens["ann"])
            page.get_by_text(f"7 of {total} voted").wait_for()
        _at(page, number, total)
        html = page.content()
        leaked = [word for word in (*MODELS, ".jsonl", "model_a", "model_b") if word in html]
        assert not leaked, f"pair {number} leaks {leaked}"
        left, right = _tag(page, "left"), _tag(page, "right")
        assert left == item.left_model and {left, right} == {item.model_a, item.model_b}
        sides.update([(left, "left"), (right, "right")])
        choice = choices[number % 4]
        reason = ""
        if number % 3 == 0:  # the box a person sees (the last pair's may linger, hidden, until the run ends)
            reason = f"reason {number}"
            box = page.get_by_label("Reason (optional)").filter(visible=True)
            box.fill(reason)
            box.press("Tab")  # typed keys vote nothing; leaving the field sends it
        if number % 2:
            page.get_by_role("button", name=LABELS[choice]).click()
        else:
            page.keyboard.press(KEYS[choice])
        page.get_by_text(f"Saved vote “{LABELS[choice]}” for pair {number}.").wait_for()
        expected.append((item.pair_id, left, _expected_winner(choice, left, right), reason))
    page.get_by_text(f"All {total} pairs have your vote.").wait_for()
    assert _votes(server.db) == expected
    assert all(sides[(m, s)] > 0 for m in MODELS for s in ("left", "right")), sides
    # untrusted text stayed text on both sides of the hostile pair
    assert page.evaluate("[String(window.__owned), String(window.__alerts)]") == ["undefined", "0"]

    # back to the last pair: a double click on another vote records one vote, and it replaces the old one
    page.get_by_role("button", name="Back to the last pair").click()
    _at(page, total, total)
    item = queue[-1]
    old = expected[-1][2]
    choice = next(c for c in ("left", "right") if _expected_winner(c, item.left_model, _tag(page, "right")) != old)
    page.get_by_role("button", name=LABELS[choice]).dblclick()
    page.get_by_text(f"Saved vote “{LABELS[choice]}” for pair {total}.").wait_for()
    page.wait_for_timeout(500)
    assert len(_votes(server.db)) == total + 1


def _long_text(model: str, qid: int) -> str:
    words = " ".join(f"w{i}" for i in range(900))
    return f"answer {qid} by tag-{model[:5]} " + words + "\nthe end" if qid == 8 else f"answer {qid} by tag-{model[:5]}"


def test_both_long_answers_scroll_in_their_own_boxes_with_the_votes_in_a_1280x800_window(tmp_path: Path, owl_data: Path,
                                                                                         browser) -> None:
    answers = write_answer_files(tmp_path / "answers", owl_data, MODELS[:2], (6, 7, 8), _long_text)
    created = create_study(tmp_path / "pairs.sqlite", answers, annotators=["ann"], data_dir=owl_data, pairwise=PairDesign("all"))
    store = Store(created.path)
    queue = load_pair_queue(store, store.conn.execute("SELECT annotator_id FROM annotators").fetchone()[0])
    store.close()
    at = next(i.index for i in queue if i.question_id == 8) + 1
    server = Server(created.path, tmp_path)
    server.start()
    try:
        page = _sign_in(browser, server.url, created.tokens["ann"])
        for number in range(1, at):
            _at(page, number, len(queue))
            page.keyboard.press("ArrowRight")
        _at(page, at, len(queue))
        left, right = _tag(page, "left"), _tag(page, "right")
        page.wait_for_timeout(300)  # the image in place
        assert page.evaluate("window.scrollY") == 0
        for label in (*LABELS.values(), "Next →"):
            box = page.get_by_role("button", name=label).bounding_box()
            assert box["y"] + box["height"] <= 800, f"{label!r} is below the fold"
        for side in ("left", "right"):
            box = page.locator(f".st-key-{side}_answer")
            bottom = box.bounding_box()
            page.screenshot(path=str(tmp_path / "pair.png"))
            assert bottom["y"] + bottom["height"] <= 800 and bottom["width"] >= 280, (side, bottom)
            assert box.evaluate("e => e.scrollHeight > e.clientHeight"), f"the {side} answer should scroll in its box"
        page.screenshot(path=str(tmp_path / "pair.png"))
        # each side's earlier turns are that model's own, behind a collapsible heading
        for side, model in (("left", left), ("right", right)):
            box = page.locator(f".st-key-{side}_answer")
            box.get_by_text("Earlier turns of this dialogue").click()
            box.get_by_text(f"answer 7 by tag-{model[:5]}").wait_for()
            assert box.get_by_text(f"answer 6 by tag-{model[:5]}").is_visible()
    finally:
        server.proc.kill()
        server.proc.wait(timeout=budget(10))
