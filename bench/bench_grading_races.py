"""Issue 15's table, re-measured: each quick-annotator sequence driven N rounds in headless Chromium against
``streamlit run owleval/rate.py``, every recorded grade compared with what the screen showed when it was made.

Prints one line per sequence: rounds, grade actions, grades on the wrong answer, grades lost without a message,
answers whose last action was not the grade kept, rounds that showed a "Not saved" message; then the two-window
case (a grade from an older view: refused with a message naming the grade it would replace, or silently kept).
The sequences and the check are those of tests/test_rate_races.py (tests/grading_races.py).

Usage: python bench/bench_grading_races.py [--rounds 20] [--app owleval/rate.py] [--only NAME] [--height 800]
``--app`` runs another copy of the app (e.g. an older rate.py saved as .../rate.py) for a side-by-side count.
Timings vary with machine load; the counts are what matter.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from owleval.paths import default_data_dir  # noqa: E402
from tests import grading_races as race  # noqa: E402
from tests import browser_helpers as browser_tests  # noqa: E402
from tests.grading_helpers import make_study  # noqa: E402


HEIGHT = 800  # px; --height: the app before issue 16 had its grade buttons below a 1280x800 window's fold


def _open(browser, url: str, token: str):
    page = browser.new_context(viewport={"width": 1280, "height": HEIGHT}).new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    page.get_by_label("Your sign-in token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Answer to grade").wait_for()
    race.install(page)
    return page


def two_windows(browser, url: str, db: Path, name: str, token: str) -> str:
    """One round: window 1 grades answer 1 B, then window 2 (still showing answer 1 ungraded) presses d."""
    who = race.annotator_id(db, name)
    first, second = _open(browser, url, token), _open(browser, url, token)
    try:
        race.wait_ready(first, 1)
        race.wait_ready(second, 1)
        first.keyboard.press("b")
        race.wait_ready(first, 2)
        second.keyboard.press("d")
        race.settle(second, db, who)
        kept = [g for _, n, g in race.grade_events(db, who) if n == 1]
        warned = second.get_by_text("graded B in another window").count() > 0
        if kept[-1] == "B" and warned:
            return "refused with a message"
        return "replaced with a message" if warned else f"silently {'replaced' if kept[-1] == 'D' else 'kept'}"
    finally:
        first.context.close()
        second.context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--app", type=Path, default=None)
    parser.add_argument("--only", default=None, help="run only the sequences whose name contains this")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--height", type=int, default=800, help="window height in px (width 1280)")
    args = parser.parse_args()
    global HEIGHT
    HEIGHT = args.height
    if args.app:
        browser_tests.APP = args.app.resolve()
    from playwright.sync_api import sync_playwright

    sequences = {k: v for k, v in race.SEQUENCES.items() if not args.only or args.only in k}
    names = [f"s{i}" for i in range(len(sequences))] + [f"w{i}" for i in range(args.rounds)]
    with tempfile.TemporaryDirectory() as tmp:
        created = make_study(Path(tmp), args.data or default_data_dir(), names, seed=3, qids=tuple(range(1, 83)))
        server = browser_tests.Server(created.path, Path(tmp))
        server.start()
        started = time.monotonic()
        try:
            with sync_playwright() as p:
                chromium = browser_tests.launch_chromium(p.chromium)
                print(f"app: {browser_tests.APP}; {args.rounds} rounds per sequence")
                for name, (sequence, script) in zip(names, sequences.items()):
                    page = _open(chromium, server.url, created.tokens[name])
                    who = race.annotator_id(server.db, name)
                    tally = race.Tally()
                    for _ in range(args.rounds):
                        tally.add(race.run_round(page, server.db, who, script))
                    page.context.close()
                    print(tally.line(sequence), flush=True)
                if not args.only or args.only in "two windows":
                    outcomes: dict[str, int] = {}
                    for i in range(args.rounds):
                        outcome = two_windows(chromium, server.url, server.db, f"w{i}", created.tokens[f"w{i}"])
                        outcomes[outcome] = outcomes.get(outcome, 0) + 1
                    print(f"{'two windows':<28} rounds {args.rounds:>3}  " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
                chromium.close()
        finally:
            server.proc.kill()
            server.proc.wait(timeout=10)
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
