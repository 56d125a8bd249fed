"""``owleval rate`` on a fresh machine: no Streamlit sign-up prompt, and it serves without a terminal.

Run the way systemd, Docker, nohup or CI run it: a new ``HOME`` (no ``~/.streamlit/credentials.toml``), stdin from
``/dev/null``, and no ``--headless``.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from owleval.commands.rate import serve_headless, streamlit_command
from tests.browser_helpers import free_port, serving
from tests.grading_helpers import make_study
from tests.timing import budget, wait_until

OWLEVAL = Path(sys.executable).with_name("owleval")
PROMPT_WORDS = ("Welcome to Streamlit", "Email", "email address")


def fresh_home_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OWLEVAL_RATE_", "STREAMLIT_"))}
    env.pop("WAYLAND_DISPLAY", None)
    env |= {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), **extra}
    return env


def test_rate_serves_on_first_run_without_a_terminal_and_shows_no_prompt(tmp_path: Path, owl_data: Path) -> None:
    """A display is set (a desktop session's ssh, say) but stdin is /dev/null: nobody can answer a prompt."""
    created = make_study(tmp_path, owl_data, ("ann",))
    home = tmp_path / "home"
    home.mkdir()
    env = fresh_home_env(home, DISPLAY=":99")
    port = free_port()
    log = tmp_path / "rate.log"
    with open(log, "wb") as out, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen([str(OWLEVAL), "rate", "--db", str(created.path), "--port", str(port)],
                                stdin=devnull, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        served = wait_until(lambda: serving(f"http://127.0.0.1:{port}/"), 30, "owleval rate serving",
                            alive=lambda: proc.poll() is None)
    except AssertionError as error:
        served = error
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=budget(10))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    output = log.read_text(errors="replace")
    assert served is True, f"on a fresh HOME with stdin from /dev/null: {served}:\n{output[-2000:]}"
    assert not any(word in output for word in PROMPT_WORDS), output
    assert not (home / ".streamlit" / "credentials.toml").exists()


def test_the_email_prompt_is_always_off_and_the_headless_setting_passes_through() -> None:
    for headless in (True, False):
        cmd = streamlit_command(8501, "127.0.0.1", None, None, headless)
        assert cmd[cmd.index("--server.showEmailPrompt") + 1] == "false"
        assert cmd[cmd.index("--server.headless") + 1] == str(headless).lower()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_serves_headless_without_a_display_or_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(sys, "stdin", _Terminal())
    assert serve_headless(False) is False  # a desktop session: open the browser
    assert serve_headless(True) is True
    monkeypatch.delenv("DISPLAY")
    assert serve_headless(False) is True  # no display: no browser can open
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert serve_headless(False) is False
    monkeypatch.setattr(sys, "stdin", io.StringIO())  # not a terminal (systemd, nohup, CI)
    assert serve_headless(False) is True
