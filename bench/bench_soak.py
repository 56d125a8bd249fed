"""Resident memory of the grading server over a long study: sessions opened and closed one after another (sign in,
grade, leave), driven in headless Chromium against ``streamlit run owleval/rate.py``, the server's RSS sampled after
each session. Writes the series to ``bench/results/soak_<mode>_<date>.csv`` and prints sessions 0/20/100/200 and the
growth from session 100 to the end (issue 25 asks: under 5% and under 20 MiB).

Modes:
- ``sessions`` (default): ``--sessions 200`` one after another, each signing in under a new name (a name study:
  a new annotator joins with a full queue), grading ``--grades`` answers and closing its tab.
- ``day``: a working day compressed: ``--sessions`` sessions, two tabs open at a time, each one half the time
  reloaded mid-session (F5) before grading on, and every tenth session left open idle until the next one ends —
  the shapes of a day (people coming back, reloading, leaving a tab open) without its hours. The server's
  ``server.disconnectedSessionTTL`` is shortened to ``--ttl`` seconds so sessions left behind are reaped within
  the run, as they would be over a day.

Usage: python bench/bench_soak.py [--mode sessions|day] [--sessions 200] [--grades 3] [--ttl 120] [--data DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from owleval.paths import default_data_dir  # noqa: E402
from tests.browser_helpers import Server, launch_chromium  # noqa: E402
from tests.grading_helpers import make_study  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def rss_mib(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def open_session(browser, url: str, name: str):
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.get_by_label("Your name").fill(name)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Answer to grade").wait_for()
    return page


def grade(page, count: int, choices: str = "BCAD") -> None:
    """Grade ``count`` answers with the bar's buttons, each confirmed (the heading moves on) before the next."""
    for i in range(count):
        heading = page.locator("h3").filter(has_text="Answer ").first.inner_text()
        page.get_by_role("button", name=f"{choices[i % len(choices)]} — ").first.click()
        page.wait_for_function("h => ![...document.querySelectorAll('h3')].some(e => e.textContent.trim() === h)",
                               arg=heading.strip(), timeout=60_000)


def run(args: argparse.Namespace, out: Path) -> list[tuple[int, float, float]]:
    """Drive the sessions; each sample is appended to ``out`` as it is taken (an interrupted run keeps its series)."""
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="owleval-soak-"))
    study = make_study(tmp, args.data, ("first annotator",), auth="name", name="soak.sqlite")
    server = Server(study.path, tmp, args=("--server.address", "127.0.0.1", "--server.disconnectedSessionTTL", str(args.ttl)))
    server.start()
    assert server.proc is not None
    pid, start = server.proc.pid, time.monotonic()
    series = [(0, rss_mib(pid), 0.0)]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("session,rss_mib,elapsed_s\n0,%.1f,0.0\n" % series[0][1], encoding="utf-8")
    try:
        with sync_playwright() as p:
            browser = launch_chromium(p.chromium)
            idle = None
            for n in range(1, args.sessions + 1):
                name = f"annotator {n}"
                page = open_session(browser, server.url, name)
                if args.mode == "day":
                    other = open_session(browser, server.url, f"annotator {n} second tab")
                    grade(other, 1)
                    if n % 2:
                        page.reload()
                        page.get_by_text("Your name").or_(page.get_by_text("Answer to grade")).first.wait_for()
                        if page.get_by_label("Your name").count():
                            page.get_by_label("Your name").fill(name)
                            page.get_by_role("button", name="Sign in").click()
                            page.get_by_text("Answer to grade").wait_for()
                    other.context.close()
                grade(page, args.grades)
                if args.mode == "day" and n % 10 == 0:
                    if idle is not None:
                        idle.context.close()
                    idle = page  # left open, idle, until the next tenth session
                else:
                    page.context.close()
                series.append((n, rss_mib(pid), time.monotonic() - start))
                with open(out, "a", encoding="utf-8") as fh:
                    fh.write(f"{n},{series[-1][1]:.1f},{series[-1][2]:.1f}\n")
                if n % 10 == 0:
                    print(f"session {n}: {series[-1][1]:.0f} MiB", flush=True)
            if idle is not None:
                idle.context.close()
            browser.close()
    finally:
        server.kill9()
    return series


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("sessions", "day"), default="sessions")
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--grades", type=int, default=3)
    parser.add_argument("--ttl", type=int, default=120, help="server.disconnectedSessionTTL (Streamlit's default: 120 s)")
    parser.add_argument("--data", type=Path, default=default_data_dir(), help="data-set folder (images, questions)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or RESULTS / f"soak_{args.mode}_{dt.date.today().isoformat()}.csv"
    series = run(args, out)
    by = {n: rss for n, rss, _ in series}
    marks = [n for n in (0, 20, 100, 200, args.sessions) if n in by]
    print("RSS (MiB) after session " + ", ".join(f"{n}: {by[n]:.0f}" for n in dict.fromkeys(marks)))
    if 100 in by and args.sessions > 100:
        end = by[args.sessions]
        print(f"growth from session 100 to {args.sessions}: {end - by[100]:+.1f} MiB ({(end / by[100] - 1) * 100:+.1f}%)")
    print(f"series written to {out}")


if __name__ == "__main__":
    main()
