"""The grade bar is on screen without scrolling at 1280x800 for the longest screens of the published answer sets:
the longest answer, and the longest dialogue (earlier turns, question and answer together). Long text scrolls
inside its own box, not the page."""

from __future__ import annotations

import json
from pathlib import Path


from owleval.study.manage import create_study
from owleval.questions import questions_by_id
from tests import grading_races as race
from tests.browser_helpers import BROWSER_MARKS, Server, launch_chromium
from tests.timing import budget, budget_ms

pytestmark = BROWSER_MARKS
VIEWPORT = {"width": 1280, "height": 800}


def _longest_screens(answers_dir: Path, owl_data: Path) -> dict[str, list[dict]]:
    """The answer rows (the screen's own and its earlier turns') of the longest answer and of the longest screen."""
    by_id = questions_by_id(owl_data)
    rows = {(r["model_id"], r["question_id"]): r for f in sorted(answers_dir.glob("*.jsonl"))
            for r in map(json.loads, f.read_text(encoding="utf-8").splitlines())}

    def screen(key: tuple[str, int]) -> list[dict]:
        model, qid = key
        return [rows[(model, q)] for q in by_id[qid].earlier_turns if (model, q) in rows] + [rows[key]]

    def length(key: tuple[str, int]) -> int:
        return sum(len(r["answer"]) + len(by_id[r["question_id"]].question) for r in screen(key))

    longest_answer = max(rows, key=lambda k: len(rows[k]["answer"]))
    return {"longest answer": screen(longest_answer), "longest dialogue": screen(max(rows, key=length))}


def test_the_grade_bar_is_above_the_fold_for_the_longest_published_screens(tmp_path: Path, owl_data: Path,
                                                                           published_answers_dir: Path) -> None:
    from playwright.sync_api import sync_playwright

    screens = _longest_screens(published_answers_dir, owl_data)
    by_model: dict[str, dict[int, dict]] = {}
    for rows in screens.values():
        for r in rows:
            by_model.setdefault(r["model_id"], {})[r["question_id"]] = r
    sources = []
    for model, rows in by_model.items():
        path = tmp_path / f"{model}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows.values()), encoding="utf-8")
        sources.append(path)
    created = create_study(tmp_path / "longest.sqlite", sources, annotators=["ann"], data_dir=owl_data)
    targets = {rows[-1]["answer"] for rows in screens.values()}
    server = Server(created.path, tmp_path)
    server.start()
    try:
        with sync_playwright() as p:
            chromium = launch_chromium(p.chromium)
            page = chromium.new_context(viewport=VIEWPORT).new_page()
            page.set_default_timeout(budget_ms(30))
            page.goto(server.url)
            page.get_by_label("Your sign-in token").fill(created.tokens["ann"])
            page.get_by_role("button", name="Sign in").click()
            race.install(page)
            total = sum(len(rows) for rows in by_model.values())
            checked = 0
            for number in range(1, total + 1):
                race.wait_ready(page, number)
                page.wait_for_timeout(300)  # the image and the last elements in place
                shown = page.locator(".st-key-answer_box").inner_text().strip()
                buttons = [page.get_by_role("button", name=f"{g} —").bounding_box() for g in "ABCD"]
                buttons.append(page.get_by_role("button", name="Next →").bounding_box())
                assert page.evaluate("window.scrollY") == 0
                low = max(b["y"] + b["height"] for b in buttons)
                assert low <= VIEWPORT["height"], f"answer {number}: the grade bar ends at {low}px, below the fold"
                if shown in targets:
                    checked += 1
                    box = page.locator('[class*="st-key-shown_"]')
                    fits = box.evaluate("e => e.scrollHeight <= e.clientHeight")
                    page_height = page.evaluate("document.scrollingElement.scrollHeight")
                    assert not fits, "the longest screen should need its own scrolling box"
                    bottom = box.bounding_box()
                    assert bottom["y"] + bottom["height"] <= VIEWPORT["height"], "the text box runs below the fold"
                    assert page_height <= VIEWPORT["height"] + 400, f"the page itself grew to {page_height}px"
                    page.screenshot(path=str(tmp_path / f"answer-{number}.png"))
                page.keyboard.press("ArrowRight")
            assert checked == len(targets)
            chromium.close()
    finally:
        server.proc.kill()
        server.proc.wait(timeout=budget(10))
