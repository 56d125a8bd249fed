"""What the browser tests share: Debian's Chromium and its flags, a wait for a Streamlit server to answer, and a
`streamlit run` server of the grading app on a loopback port (the `browser` fixture is in conftest.py)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.timing import budget, budget_ms, wait_until

#: Debian's chromium package (playwright's own browser download is not reachable from CI)
CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
#: the app served; OWLEVAL_TEST_RATE_APP points the browser tests at another copy (e.g. an older rate.py, to check
#: that a test fails without a fix)
APP = Path(os.environ.get("OWLEVAL_TEST_RATE_APP") or Path(__file__).resolve().parent.parent / "owleval" / "rate.py")
#: the marks of every browser test module
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="needs Chromium on PATH (apt-get install chromium)"),
]


def launch_chromium(chromium, *extra_args: str):
    """Debian's Chromium, headless, from playwright's ``chromium`` browser type (``sync_playwright().chromium``), with
    ``extra_args`` after the usual switches; its start waits a calibrated budget."""
    return chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *extra_args], timeout=budget_ms(30))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serving(url: str) -> bool:
    """True when the Streamlit server at ``url`` answers ``/_stcore/health`` with ``ok`` now."""
    try:
        with urllib.request.urlopen(url + "_stcore/health", timeout=1) as reply:
            return reply.read() == b"ok"
    except OSError:
        return False


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, base_s: float = 60.0) -> None:
    """Return once the Streamlit server at ``url`` answers ``/_stcore/health``; raise with its log if it ends first or
    does not answer within :func:`tests.timing.budget` (``base_s``)."""
    try:
        wait_until(lambda: serving(url), base_s, f"the app at {url}", alive=lambda: proc.poll() is None)
    except AssertionError as error:
        raise RuntimeError(f"the app did not start ({error}):\n{log.read_text(errors='replace')[-3000:]}") from None


class Server:
    """A `streamlit run` process serving the app on a loopback port; restartable on the same port."""

    def __init__(self, db: Path, tmp: Path, args: tuple[str, ...] = ("--server.address", "127.0.0.1")):
        self.db, self.log, self.args = db, tmp / "server.log", args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        cmd = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true", *self.args,
               "--server.port", str(self.port), "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
               "--", "--db", str(self.db)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("OWLEVAL_RATE_")}
        with open(self.log, "ab") as log:  # the child keeps its own copy of the file descriptor
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_healthy(self.url, self.proc, self.log)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no clean shutdown, no chance to flush anything
        self.proc.wait(timeout=budget(10))
