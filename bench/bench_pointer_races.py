"""Issue 25's pointer races, counted over many rounds (tests/test_rate_pointer.py runs a few of each).

1. Nothing moves under the pointer: on the A-D and the pairwise screens, a grade (the rerun brings a toast) or Next
   (no toast), then a click where Next (or a grade) was just before, 50, 100, 150 and 200 ms later, with the server
   paused 90 ms of every 150 ms (tests/pointer_races.Load). Counted: second clicks that hit another button, and
   rounds in which the bar moved at all.
2. The same grade button on two consecutive answers, 150, 300 and 600 ms apart at the soonest (the second once the
   next answer is on screen), by touch (Pixel 7 emulation) and by mouse (a quick second click counts as a double
   click, as a real mouse's does). Counted: taps, taps lost (the answer tapped does not have the grade), grades on
   an answer no tap was on.

3. A key pressed in the same task as the first answer's heading appears after sign-in (as the issue measured,
   15 of 15 were ignored): counted, keys applied to that answer, and in how many rounds the bar was already drawn.

Usage: python bench/bench_pointer_races.py [--rounds 5] [--taps 15] [--app path/to/rate.py]
``--app`` serves another copy of the app (an older rate.py beside its own modules) for a side-by-side count.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from owleval.study.manage import create_study  # noqa: E402
from owleval.study.pairs import PairDesign  # noqa: E402
from owleval.paths import default_data_dir  # noqa: E402
from tests import browser_helpers as browser_tests  # noqa: E402
from tests import pointer_races as pr  # noqa: E402
from tests.grading_helpers import MODELS, write_answer_files  # noqa: E402

DELAYS_MS = (50, 100, 150, 200)
INTERVALS_MS = (150, 300, 600)


def _server(tmp: Path, data: Path, names: list[str], **design):
    answers = write_answer_files(tmp / "answers", data, MODELS, tuple(range(1, 83)))
    created = create_study(tmp / "study.sqlite", answers, annotators=names, data_dir=data, seed=7, **design)
    server = browser_tests.Server(created.path, tmp)
    server.start()
    return server, created


def layout(chromium, server, created, pairwise: bool, rounds: int) -> None:
    grade, other = ("Right is better", "Tie") if pairwise else ("D —", "B —")
    for name, (first, target) in (("toast", (grade, "Next →")), ("no toast", ("Next →", other))):
        page = pr.sign_in(chromium, server, created.tokens[name.replace(" ", "")])
        results = []
        for _ in range(rounds):
            results += pr.pointer_rounds(page, server, first, target, DELAYS_MS)
        page.context.close()
        moved, wrong = sum(r["moved"] for r in results), sum(not r["right"] for r in results)
        screen = "pairwise" if pairwise else "A-D"
        print(f"{screen:<9} {first} then {target:<14} rounds {rounds * len(DELAYS_MS):>3}  other button hit {wrong:>3}  "
              f"bar moved {moved:>3}", flush=True)


def same_button(chromium, devices, server, created, rounds: int) -> None:
    for touch in (True, False):
        name = "touch" if touch else "mouse"
        page = pr.sign_in(chromium, server, created.tokens[name], touch=touch, devices=devices)
        for interval in INTERVALS_MS:
            taps = lost = wrong = 0
            for _ in range(rounds):
                t, lo, w, _details = pr.same_button_rounds(page, server.db, name, touch, (interval,))
                taps, lost, wrong = taps + t, lost + lo, wrong + w
            print(f"same button {name:<5} {interval:>3} ms  taps {taps:>3}  lost {lost:>3}  on another answer {wrong:>3}",
                  flush=True)
        page.context.close()


def early_keys(chromium, server, created, rounds: int) -> None:
    applied = live = 0
    for i in range(rounds):
        name = f"early{i}"
        shown, bar_live = pr.early_key_round(chromium, server, created.tokens[name], "c")
        applied += (shown, "C") in pr.events(server.db, name)
        live += bar_live
    print(f"key at the first frame   rounds {rounds:>3}  applied {applied:>3}  bar already drawn {live:>3}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="layout rounds per delay and case (4 delays)")
    parser.add_argument("--taps", type=int, default=15, help="same-button rounds (2 taps each) per interval and input")
    parser.add_argument("--app", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    if args.app:
        browser_tests.APP = args.app.resolve()
    from playwright.sync_api import sync_playwright

    data = args.data or default_data_dir()
    names = ["toast", "notoast", "touch", "mouse"] + [f"early{i}" for i in range(args.taps)]
    started = time.monotonic()
    print(f"app: {browser_tests.APP}")
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b, sync_playwright() as p:
        chromium = browser_tests.launch_chromium(p.chromium)
        for pairwise, tmp in ((False, a), (True, b)):
            server, created = _server(Path(tmp), data, names, **({"pairwise": PairDesign("all")} if pairwise else {}))
            try:
                layout(chromium, server, created, pairwise, args.rounds)
                if not pairwise:
                    same_button(chromium, p.devices, server, created, args.taps)
                    early_keys(chromium, server, created, args.taps)
            finally:
                server.proc.kill()
                server.proc.wait(timeout=10)
        chromium.close()
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
