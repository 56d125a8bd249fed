"""Votes per hour in the app: time from a click on a vote to the next pair on screen, pairwise beside A-D grading.

Two studies of the six published answer sets, one annotator each: an A-D study (a click on a grade) and a pairwise
study with ``--pairs-per-question 3`` (a click on a vote). Each is served by ``streamlit run owleval/rate.py`` and
driven in headless Chromium at 1280x800; the time is taken inside the page, from the click until the next item,
the bar redrawn for it and its image are on screen (bench_grading.py's measure). ``app ceiling`` is 3600 / p50:
the votes (grades) per hour the app allows a person who decides instantly; a person's real rate is set by reading.

Usage: python bench/bench_pairwise_votes.py [--clicks 30]
Timings vary with machine load; compare the two rows of one run.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_grading import _CLICK_UNTIL_SHOWN_JS, APP, summary  # noqa: E402
from tests.browser_helpers import launch_chromium  # noqa: E402

from owleval.answers import PUBLISHED_MODELS  # noqa: E402
from owleval.study.manage import create_study  # noqa: E402
from owleval.study.pairs import PairDesign  # noqa: E402
from owleval.paths import default_data_dir  # noqa: E402

CHOICES = {"Answer": "ABCD", "Pair": ("left", "right", "tie", "both_bad")}
LAST_BUTTON = {"Answer": "D —", "Pair": "Both are bad"}


def _serve(db: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true", "--server.address", "127.0.0.1",
         "--server.port", str(port), "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", "--", "--db", str(db)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            if urllib.request.urlopen(url + "_stcore/health", timeout=1).read() == b"ok":
                break
        except OSError:
            time.sleep(0.1)
    return server, url


def bench(chromium, db: Path, token: str, heading: str, clicks: int) -> list[float]:
    server, url = _serve(db)
    try:
        page = chromium.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(30_000)
        page.goto(url)
        page.get_by_label("Your sign-in token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        times = []
        for i in range(clicks):
            title = page.get_by_role("heading", name=f"{heading} ").first
            title.wait_for()
            number = int(title.inner_text().split()[1])
            page.locator(f'[class*="st-key-shown_{number - 1}_"]').wait_for()
            page.get_by_role("button", name=LAST_BUTTON[heading]).wait_for()  # the bar is mounted
            page.wait_for_timeout(150)  # a person reads before deciding: the page is at rest when they click
            choice = CHOICES[heading][i % 4]
            times.append(page.evaluate(_CLICK_UNTIL_SHOWN_JS, {"index": number - 1, "grade": choice}) / 1000)
        page.close()
        return times
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clicks", type=int, default=30)
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    data_dir = args.data or default_data_dir()
    sources = [data_dir / "answer" / name for name in PUBLISHED_MODELS]
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        grades = create_study(Path(tmp) / "grades.sqlite", sources, annotators=["ann"], seed=1, data_dir=data_dir)
        pairs = create_study(Path(tmp) / "pairs.sqlite", sources, annotators=["ann"], seed=1, data_dir=data_dir,
                             pairwise=PairDesign("per_question", per_question=3, seed=1))
        with sync_playwright() as p:
            chromium = launch_chromium(p.chromium)
            results = {
                "A-D grade": bench(chromium, grades.path, grades.tokens["ann"], "Answer", args.clicks),
                "pairwise vote": bench(chromium, pairs.path, pairs.tokens["ann"], "Pair", args.clicks),
            }
            chromium.close()
    base = summary(results["A-D grade"])[0]
    print("six published answer sets, one annotator; click until the next item is on screen (1280x800)")
    print(f"{'way':<14} {'clicks':>6} {'p50 ms':>8} {'p95 ms':>8} {'p50 / A-D':>10} {'app ceiling /h':>15}")
    for way, times in results.items():
        p50, p95 = summary(times)
        print(f"{way:<14} {len(times):>6} {p50:>8.1f} {p95:>8.1f} {p50 / base:>10.2f} {3600_000 / p50:>15.0f}")


if __name__ == "__main__":
    main()
