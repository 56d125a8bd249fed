"""Time per grading click, from click to the next answer shown, on a study of 6 models x 82 answers x 5 annotators.

Three ways side by side, each on its own copy of the same study (four annotators already half done):
  store    the server-side work of a click alone: commit the grade, reload the queue, build the next screen
  apptest  the whole Streamlit rerun a click causes (streamlit.testing AppTest: callback, commit, render)
  browser  a real click on the grade bar in headless Chromium until the next answer, the bar redrawn for it and
           its image are on screen, timed inside the page (needs chromium on PATH; skipped otherwise)

Usage: python bench/bench_grading.py [--clicks 100] [--browser-clicks 40] [--no-browser]
Target: p95 < 150 ms per click.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from owleval.answers import PUBLISHED_MODELS
from owleval.study.queue import answer_screen, load_queue, next_ungraded, record_grade
from owleval.study.store import Store
from owleval.study.manage import create_study
from owleval.paths import default_data_dir

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.grading_helpers: what the grade bar sends
from tests.browser_helpers import CHROMIUM, launch_chromium  # noqa: E402

ANNOTATORS = ("ann", "bob", "cy", "dee", "eve")
APP = Path(__file__).resolve().parent.parent / "owleval" / "rate.py"


def build_study(folder: Path, data_dir: Path) -> tuple[Path, dict[str, str]]:
    """The six published answer sets, five annotators grading everything; four of them half done."""
    sources = [data_dir / "answer" / name for name in PUBLISHED_MODELS]
    created = create_study(folder / "bench.sqlite", sources, annotators=ANNOTATORS, seed=1, data_dir=data_dir)
    store = Store(created.path)
    rng = random.Random(0)
    for name in ANNOTATORS[1:]:
        who = store.conn.execute("SELECT annotator_id FROM annotators WHERE name = ?", (name,)).fetchone()[0]
        for item in load_queue(store, who)[:246]:
            record_grade(store, who, item.answer_id, rng.choice("ABCD"))
    store.close()
    return created.path, created.tokens


def fresh_copy(db: Path, name: str) -> Path:
    target = db.with_name(name)
    shutil.copy(db, target)
    return target


def bench_store(db: Path, clicks: int, data_dir: Path) -> list[float]:
    store = Store(db)
    who = store.conn.execute("SELECT annotator_id FROM annotators WHERE name = 'ann'").fetchone()[0]
    items = load_queue(store, who)
    pos = 0
    times = []
    for i in range(clicks):
        start = time.perf_counter()
        record_grade(store, who, items[pos].answer_id, "ABCD"[i % 4], request_id=f"bench:{i}")
        items = load_queue(store, who)
        pos = next_ungraded(items, pos)
        answer_screen(store, who, items[pos], data_dir)
        times.append(time.perf_counter() - start)
    store.close()
    return times


def bench_apptest(db: Path, token: str, clicks: int) -> list[float]:
    from streamlit.testing.v1 import AppTest

    os.environ["OWLEVAL_RATE_DB"] = str(db)
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.text_input(key="sign_in_token").input(token)
    at.button(key="sign_in_submit").click().run()
    from tests.grading_helpers import bar_action

    times = []
    for i in range(clicks):
        pos = at.session_state["pos"]
        start = time.perf_counter()
        bar_action(at, "grade", "ABCD"[i % 4])  # what the grade bar sends for a click
        times.append(time.perf_counter() - start)
        assert not at.exception and at.session_state["pos"] != pos
    return times


_CLICK_UNTIL_SHOWN_JS = """({index, grade}) => new Promise((resolve) => {
  const t0 = performance.now();
  const bar = [...document.querySelectorAll('*')].find(e => e.shadowRoot && e.shadowRoot.querySelector('.bar'))
    .shadowRoot.querySelector('.bar');
  const shown = () => {
    const next = document.querySelector(`[class*="st-key-shown_${index + 1}_"]`) && bar.dataset.index === String(index + 1);
    const img = document.querySelector('[data-testid="stImage"] img');
    return next && img && img.complete && img.naturalWidth > 0 && !document.querySelector('[data-stale="true"]');
  };
  let done = false;
  const check = () => {
    if (done) return;
    if (shown()) { done = true; observer.disconnect(); resolve(performance.now() - t0); return; }
    requestAnimationFrame(check);  // an image finishing its load is no DOM mutation: look every frame too
  };
  const observer = new MutationObserver(check);
  observer.observe(document.body, {subtree: true, childList: true, attributes: true});
  requestAnimationFrame(check);
  bar.querySelector(`button.grade[data-grade="${grade}"]`).click();
})"""


def bench_browser(db: Path, token: str, clicks: int) -> list[float]:
    import socket
    import urllib.request

    from playwright.sync_api import sync_playwright

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true", "--server.address", "127.0.0.1",
         "--server.port", str(port), "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", "--", "--db", str(db)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                if urllib.request.urlopen(url + "_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.1)
        with sync_playwright() as p:
            browser = launch_chromium(p.chromium)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.get_by_label("Your sign-in token").fill(token)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_text("Answer to grade").wait_for()
            times = []
            for i in range(clicks):
                # the order is the annotator's own: read the current place from the heading
                number = int(page.get_by_role("heading", name="Answer ").first.inner_text().split()[1])
                page.locator(f'[class*="st-key-shown_{number - 1}_"]').wait_for()
                page.get_by_role("button", name="D —").wait_for()
                # timed inside the page (no round trips to playwright): the click, until the next answer's
                # grade buttons are on screen and its image has loaded
                elapsed = page.evaluate(_CLICK_UNTIL_SHOWN_JS, {"index": number - 1, "grade": "ABCD"[i % 4]})
                times.append(elapsed / 1000)
            browser.close()
        return times
    finally:
        server.kill()
        server.wait()


def summary(times: list[float]) -> tuple[float, float]:
    ms = sorted(t * 1000 for t in times)
    return statistics.median(ms), ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clicks", type=int, default=100)
    parser.add_argument("--browser-clicks", type=int, default=40)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    data_dir = args.data or default_data_dir()
    with tempfile.TemporaryDirectory() as tmp:
        db, tokens = build_study(Path(tmp), data_dir)
        results = {
            "store": bench_store(fresh_copy(db, "store.sqlite"), args.clicks, data_dir),
            "apptest": bench_apptest(fresh_copy(db, "apptest.sqlite"), tokens["ann"], args.clicks),
        }
        if not args.no_browser and CHROMIUM.is_file():
            results["browser"] = bench_browser(fresh_copy(db, "browser.sqlite"), tokens["ann"], args.browser_clicks)
    base = summary(results["store"])
    print("study: 6 models x 82 answers, 5 annotators (4 half done); times per grading click")
    print(f"{'way':<8} {'clicks':>6} {'p50 ms':>8} {'p95 ms':>8} {'p50 / store':>12} {'p95 / store':>12}")
    for way, times in results.items():
        p50, p95 = summary(times)
        print(f"{way:<8} {len(times):>6} {p50:>8.1f} {p95:>8.1f} {p50 / base[0]:>12.1f} {p95 / base[1]:>12.1f}")
    slowest = max(summary(t)[1] for t in results.values())
    print(f"target p95 < 150 ms: {'met' if slowest < 150 else 'NOT met'} (slowest p95 {slowest:.1f} ms)")


if __name__ == "__main__":
    main()
