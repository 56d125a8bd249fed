"""`owleval rate` on a network address, driven by headless Chromium.

A name sign-in study lets anyone who reaches the page sign in as "ann" and change her grades, so `owleval rate`
refuses to serve one beyond this machine; with --allow-name-sign-in it serves it (the flag reaches the page after
`--`) and the admin page says so. A token study is served and checks tokens.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from owleval.study.store import Store
from tests.grading_helpers import make_study
from tests.browser_helpers import BROWSER_MARKS, free_port, wait_healthy
from tests.timing import budget, budget_ms, wait_until

OWLEVAL = Path(sys.executable).parent / "owleval"

pytestmark = BROWSER_MARKS


class Rate:
    """`owleval rate ... --address 0.0.0.0` as the real command (it becomes the streamlit server)."""

    def __init__(self, tmp: Path, *args: str):
        self.port = free_port()
        self.log = tmp / f"rate-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OWLEVAL_RATE_")} | {"HOME": str(tmp)}
        cmd = [str(OWLEVAL), "rate", "--headless", "--address", "0.0.0.0", "--port", str(self.port), *args]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/"

    def wait_served(self) -> None:
        wait_healthy(self.url(), self.proc, self.log)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=budget(10))


def _page(browser, url: str):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.set_default_timeout(budget_ms(20))
    page.goto(url)
    return page


def _events(db: Path) -> list[tuple]:
    store = Store(db)
    try:
        return [tuple(r) for r in store.conn.execute("SELECT annotator_id, grade FROM grade_events ORDER BY event_id")]
    finally:
        store.close()


def test_name_sign_in_is_refused_on_the_network_and_warned_about_when_allowed(tmp_path: Path, owl_data: Path, browser) -> None:
    study = make_study(tmp_path, owl_data, ("ann",), qids=(1,), auth="name", name="named.sqlite")
    refused = Rate(tmp_path, "--db", str(study.path))
    try:
        assert refused.proc.wait(timeout=budget(60)) != 0, "a name sign-in study was served on 0.0.0.0"
    except subprocess.TimeoutExpired:
        refused.stop()
        pytest.fail(f"a name sign-in study was served on 0.0.0.0:\n{refused.output()[-2000:]}")
    assert "--allow-name-sign-in" in refused.output()
    with pytest.raises(OSError):
        urllib.request.urlopen(refused.url(), timeout=2)

    allowed = Rate(tmp_path, "--db", str(study.path), "--allow-name-sign-in")
    try:
        allowed.wait_served()
        assert "warning:" in allowed.output() and "signs annotators in by name alone" in allowed.output()
        # what the warning is about: a second browser signing in as "ann" grades as ann
        for graded in (1, 2):
            page = _page(browser, allowed.url())
            page.get_by_label("Your name").fill("ann")
            page.get_by_role("button", name="Sign in").click()
            page.get_by_text("Answer to grade").wait_for()
            page.get_by_role("button", name="B — some imperfections").click()
            wait_until(lambda: len(_events(study.path)) >= graded, 20, f"grade {graded} recorded")  # confirmed once committed
            assert len(_events(study.path)) == graded
            page.context.close()
        assert len({who for who, _ in _events(study.path)}) == 1, "both browsers graded as the same annotator"
        admin = _page(browser, allowed.url())
        admin.locator('[data-testid="stSidebar"]').get_by_text("Admin", exact=True).click()
        admin.get_by_label("Admin token").fill(study.admin_token)
        admin.get_by_role("button", name="Open").click()
        admin.get_by_text("Study progress").wait_for()
        admin.get_by_text("can sign in under another annotator's name").wait_for()
        assert f"0.0.0.0:{allowed.port}" in admin.content()
    finally:
        allowed.stop()


def test_a_token_study_on_the_network_is_served_and_checks_tokens(tmp_path: Path, owl_data: Path, browser) -> None:
    """Served on 0.0.0.0 as for a network, a token study is served: a wrong token is refused, the right one signs in.
    How guesses are spaced (and that a lock-out never refuses the right token) is checked with the gate itself in
    test_grading_throttle and through the app in test_grading_access: the browser here stays on loopback, where
    every session shares one address key."""
    study = make_study(tmp_path, owl_data, ("ann", "bob"), qids=(1,))
    served = Rate(tmp_path, "--db", str(study.path))
    try:
        served.wait_served()
        assert "warning" not in served.output()
        page = _page(browser, served.url())
        page.get_by_label("Your sign-in token").fill("owl_0123456789ab_" + "A" * 32)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text("That token is not valid for this study.").wait_for()
        page.get_by_label("Your sign-in token").fill(study.tokens["bob"])
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text("Answer to grade").wait_for()
    finally:
        served.stop()
