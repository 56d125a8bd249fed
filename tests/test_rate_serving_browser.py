"""The page decides who may sign in by name, whatever started it (plain `streamlit run` here): a name sign-in study
listening on every interface, a page asked for under another name (DNS rebinding: attacker.example resolved to
127.0.0.1) or reached through a proxy is refused; weakened server limits are refused; and the admin's CSV comes
as a one-time link inside the admin's own page, never as a /media URL anyone could fetch.
"""

from __future__ import annotations

import csv
import io
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from tests.browser_helpers import BROWSER_MARKS, Server, free_port, launch_chromium, wait_healthy
from tests.grading_helpers import make_study
from tests.timing import budget, budget_ms

pytestmark = BROWSER_MARKS


class ForwardingProxy:
    """A minimal reverse proxy on this machine, as nginx would be: each connection goes on to the app with an
    ``X-Forwarded-For`` line added to the request that starts it (a websocket has a connection of its own)."""

    def __init__(self, port: int, client: str = "192.0.2.7"):
        self.target, self.client = port, client
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(65536)
            if not chunk:
                conn.close()
                upstream.close()
                return
            head += chunk
        end = head.index(b"\r\n\r\n")
        upstream.sendall(head[:end] + f"\r\nX-Forwarded-For: {self.client}".encode() + head[end:])
        threading.Thread(target=self._pump, args=(upstream, conn), daemon=True).start()
        self._pump(conn, upstream)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


def _server(tmp: Path, db: Path, *args: str) -> Server:
    folder = tmp / f"server-{len(list(tmp.glob('server-*')))}"
    folder.mkdir()
    server = Server(db, folder, args=args)
    server.start()
    return server


def _open(browser, url: str, **context):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}, **context).new_page()
    page.set_default_timeout(budget_ms(30))
    page.goto(url)
    return page


def test_name_sign_in_is_refused_where_others_can_reach_the_page(tmp_path: Path, owl_data: Path, browser) -> None:
    study = make_study(tmp_path, owl_data, ("ann",), qids=(1,), auth="name", name="named.sqlite")
    everywhere = _server(tmp_path, study.path)  # plain `streamlit run`: no --server.address, every interface
    try:
        page = _open(browser, everywhere.url)
        page.get_by_text("the server listens on every interface").wait_for()
        assert page.get_by_label("Your name").count() == 0
        page.context.close()
    finally:
        everywhere.kill9()

    local = _server(tmp_path, study.path, "--server.address", "127.0.0.1")
    # a second Chromium whose resolver maps the attacker's name to this machine
    rebinding = launch_chromium(browser.browser_type, "--host-resolver-rules=MAP attacker.example 127.0.0.1")
    try:
        page = _open(browser, local.url)  # this machine's own browser: allowed
        page.get_by_label("Your name").wait_for()
        page.context.close()
        # a page on attacker.example, resolved to 127.0.0.1, reaching the study from the victim's browser
        page = _open(rebinding, local.url.replace("127.0.0.1", "attacker.example"))
        page.get_by_text("not a loopback name").wait_for()
        assert page.get_by_label("Your name").count() == 0
        # a proxy on this machine forwarding a client from elsewhere (Host and Origin stay loopback here)
        proxy = ForwardingProxy(local.port)
        try:
            page = _open(browser, proxy.url)
            page.get_by_text("it is served through a proxy").wait_for()
            assert page.get_by_label("Your name").count() == 0
            page.context.close()
        finally:
            proxy.close()
        # the admin's CSV: made on click, a link inside this page, one download
        page = _open(browser, local.url)
        page.locator('[data-testid="stSidebar"]').get_by_text("Admin", exact=True).click()
        page.get_by_label("Admin token").fill(study.admin_token)
        page.get_by_role("button", name="Open").click()
        page.get_by_role("button", name="Make a grades CSV link").click()
        link = page.get_by_test_id("owleval-csv-link")
        assert (link.get_attribute("href") or "").startswith("blob:"), "never a /media URL served without a session"
        with page.expect_download() as download:
            link.click()
        rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
        assert rows and "annotator" in rows[0]
        page.get_by_text("Downloaded. Make a new link").wait_for()
        assert page.get_by_test_id("owleval-csv-link").count() == 0, "one fetch"
        assert page.locator('a[href*="/media/"]').count() == 0
        page.context.close()
    finally:
        rebinding.close()
        local.kill9()


def test_weakened_server_limits_are_refused(tmp_path: Path, owl_data: Path, browser) -> None:
    study = make_study(tmp_path, owl_data, ("ann",), qids=(1,))
    weak = _server(tmp_path, study.path, "--server.address", "127.0.0.1", "--server.maxUploadSize", "200")
    try:
        page = _open(browser, weak.url)
        page.get_by_text("refuses to serve with weakened server limits").wait_for()
        assert "server.maxUploadSize is 200" in page.content()
        assert page.get_by_label("Your sign-in token").count() == 0
        page.context.close()
    finally:
        weak.kill9()


def test_owleval_rate_on_loopback_serves_this_machine_and_refuses_a_rebinding_page(tmp_path: Path, owl_data: Path, browser) -> None:
    """The default set-up (a name study, `owleval rate` on 127.0.0.1): Streamlit's own allowed-hosts list refuses
    attacker.example's websocket before the page's check would."""
    study = make_study(tmp_path, owl_data, ("ann",), qids=(1,), auth="name", name="named.sqlite")
    port, log = free_port(), tmp_path / "rate.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OWLEVAL_RATE_")} | {"HOME": str(tmp_path)}
    owleval = Path(sys.executable).parent / "owleval"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(owleval), "rate", "--headless", "--db", str(study.path), "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    rebinding = launch_chromium(browser.browser_type, "--host-resolver-rules=MAP attacker.example 127.0.0.1")
    try:
        wait_healthy(f"http://127.0.0.1:{port}/", proc, log)
        page = _open(browser, f"http://localhost:{port}/")
        page.get_by_label("Your name").fill("ann")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text("Answer to grade").wait_for()
        page.context.close()
        attacker = _open(rebinding, f"http://attacker.example:{port}/")
        refused = "Rejecting WebSocket connection with disallowed Origin or Host header"
        for _ in range(600):  # until the server has answered the page's websocket
            if refused in log.read_text(errors="replace"):
                break
            attacker.wait_for_timeout(100)
        assert refused in log.read_text(errors="replace")
        assert attacker.get_by_label("Your name").count() == 0
    finally:
        rebinding.close()
        proc.kill()
        proc.wait(timeout=budget(10))
