"""Blindness of quality-control items in a real browser: the page of a gold, attention-check or retest item is the
page of a regular item with another answer text and image (the same elements, attributes, keys and id patterns)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from owleval.study.queue import QueueItem, answer_screen, load_queue
from owleval.study.special import QcSettings
from owleval.study.store import Store
from owleval.study.manage import create_study
from tests.browser_helpers import BROWSER_MARKS, Server
from tests.grading_helpers import MODELS, write_answer_files
from tests.qc_helpers import write_gold
from tests.timing import budget, budget_ms

pytestmark = BROWSER_MARKS

# the DOM as a list of lines: each element with its tag and every attribute, each text node (the app's own CSS and
# script blocks included: they are part of what the browser holds)
_SERIALISE = """() => {
  const out = [];
  const walk = (node, depth) => {
    if (node.nodeType === Node.TEXT_NODE) { if (node.textContent.trim()) out.push(depth + "#text " + node.textContent); return; }
    if (node.nodeType !== Node.ELEMENT_NODE) return;
    const attrs = Array.from(node.attributes).map((a) => a.name + "=" + a.value).sort();
    out.push(depth + "<" + node.tagName.toLowerCase() + " " + attrs.join(" ") + ">");
    for (const child of (node.shadowRoot ? [node.shadowRoot, ...node.childNodes] : node.childNodes)) walk(child, depth + " ");
  };
  walk(document.querySelector('[data-testid="stMain"]'), "");
  return out;
}"""

# the run that drew the page is over and nothing of an earlier run is left on it
# settled: no run under way, nothing stale, and no widget still a placeholder while its code loads (Streamlit draws a
# skeleton until a widget's lazily loaded component arrives: the first page with checkboxes has them for a moment)
_SETTLED = """() => document.querySelector('[data-testid="stApp"]').dataset.testScriptState !== "running"
  && !document.querySelector('[data-stale="true"]') && !document.querySelector('[data-testid="stSkeleton"]')"""


@pytest.fixture
def served(tmp_path: Path, owl_data: Path) -> Iterator[tuple[Server, object]]:
    answers = write_answer_files(tmp_path / "answers", owl_data)
    gold = write_gold(tmp_path / "gold.csv", [(1, MODELS[0], "A", ""), (6, MODELS[1], "B", ""), (32, MODELS[2], "C", "")])
    created = create_study(tmp_path / "study.sqlite", answers, annotators=("ann",), data_dir=owl_data, seed=4, gold=gold,
                           quality=QcSettings(gold_rate=0.2, attention_checks=2, retest=2))
    server = Server(created.path, tmp_path)
    server.start()
    yield server, created
    if server.proc and server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait(timeout=budget(10))


def _normalised(lines: list[str], texts: list[str]) -> list[str]:
    """The page with what may differ between two answers replaced: the texts of the screen (question, dialogue so far,
    answer), the image's source and size, every number (places, counts, ids), React's per-render ids."""
    out = []
    for line in lines:
        for text in sorted(texts, key=len, reverse=True):
            if text.strip():
                line = line.replace(text, "<TEXT>")
        if line.lstrip().startswith("<img "):
            line = re.sub(r"(src|style|width|height)=\S*", r"\1=<IMG>", line)
        line = re.sub(r":r[0-9a-z]+:", ":r:", line)  # React's own element ids, numbered by render
        out.append(re.sub(r"\d+", "#", line))
    return out


def test_special_items_look_like_regular_ones_in_the_page(served, browser, owl_data: Path) -> None:
    server, created = served
    store = Store(created.path)
    queue = load_queue(store, 1)
    screens = {i.index: answer_screen(store, 1, i, owl_data) for i in queue}
    store.close()

    def shape(item: QueueItem) -> int:  # items compared must show the same number of earlier turns
        return len(screens[item.index].earlier)

    wanted: dict[str, QueueItem] = {}
    for item in queue:
        if item.item_kind != "regular" and item.item_kind not in wanted:
            if any(r.item_kind == "regular" and shape(r) == shape(item) for r in queue):
                wanted[item.item_kind] = item
    assert set(wanted) == {"gold", "attention", "retest"}, [i.item_kind for i in queue]

    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.set_default_timeout(budget_ms(20))
    page.goto(server.url)
    page.get_by_label("Your sign-in token").fill(created.tokens["ann"])
    page.get_by_role("button", name="Sign in").click()
    pages: dict[int, list[str]] = {}
    for item in queue:
        page.get_by_role("heading", name=f"Answer {item.index + 1} of {len(queue)}").wait_for()
        page.locator(f'[class*="st-key-shown_{item.index}_{item.view_id}_"]').wait_for()
        page.get_by_role("img").first.wait_for()
        page.wait_for_function(_SETTLED)
        screen = screens[item.index]
        texts = [screen.answer, screen.question] + [t for turn in screen.earlier for t in (turn.question, turn.answer or "")]
        pages[item.index] = _normalised(page.evaluate(_SERIALISE), texts)
        page.keyboard.press("ArrowRight")
    for kind, special in wanted.items():
        regular = next(r for r in queue if r.item_kind == "regular" and shape(r) == shape(special))
        diff = list(difflib.unified_diff(pages[regular.index], pages[special.index], "regular", kind, lineterm="", n=1))
        assert not diff, f"the page of a {kind} item differs from a regular one:\n" + "\n".join(diff[:40])
    assert all("Answer to grade" in "".join(p) for p in pages.values())
