"""Sign-in on a network: name sign-in is not served beyond this machine unless allowed, wrong tokens are slowed
down per session and per address, and the answer to a token never tells whether its id exists."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from owleval.commands.rate import check_exposure, is_loopback, streamlit_command, trusted_proxy_setting
from owleval.errors import OwlEvalError
from owleval.screens import access
from owleval.study import tokens
from owleval.study.store import Store
from owleval.study.manage import check_name
from owleval.screens.throttle import LOOPBACK_KEY, CheckGate
from tests.grading_helpers import make_study
from tests.timing import budget

APP = str(Path(__file__).resolve().parent.parent / "owleval" / "rate.py")
OWLEVAL = Path(sys.executable).parent / "owleval"


@pytest.fixture
def token_study(tmp_path: Path, owl_data: Path):
    return make_study(tmp_path, owl_data, ("ann", "bob"), qids=(1, 6))


@pytest.fixture
def name_study(tmp_path: Path, owl_data: Path):
    return make_study(tmp_path, owl_data, ("ann",), qids=(1, 6), auth="name", name="named.sqlite")


# -- serving a name sign-in study beyond this machine ------------------------------------------------------------

def test_loopback_addresses() -> None:
    assert all(is_loopback(a) for a in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"))
    assert not any(is_loopback(a) for a in ("0.0.0.0", "::", "192.0.2.7", "10.0.0.1", "fd00::2", "grading.example.org"))


def _rate(*args: str, home: Path) -> subprocess.CompletedProcess:
    """`owleval rate` as its own process: on success it *becomes* the server, so it must never run inside pytest."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OWLEVAL_RATE_")} | {"HOME": str(home)}
    try:
        return subprocess.run([str(OWLEVAL), "rate", "--headless", "--port", "1", *args], capture_output=True, text=True,
                              timeout=budget(60), stdin=subprocess.DEVNULL, env=env)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`owleval rate {' '.join(args)}` served instead of refusing: {exc.stderr}")


@pytest.mark.parametrize("address", ["0.0.0.0", "::"])
def test_a_name_sign_in_study_is_not_served_on_the_network(address: str, name_study, tmp_path: Path) -> None:
    result = _rate("--db", str(name_study.path), "--address", address, home=tmp_path)
    assert result.returncode != 0
    assert "signs annotators in by name alone" in result.stderr and "--allow-name-sign-in" in result.stderr
    assert "token study" in result.stderr


def test_the_default_study_is_not_served_on_the_network(tmp_path: Path) -> None:
    result = _rate("--address", "0.0.0.0", home=tmp_path)
    assert result.returncode != 0 and "the default study signs annotators in by name alone" in result.stderr
    assert not (tmp_path / ".local").exists(), "nothing was created"


def test_token_studies_and_loopback_need_no_flag(token_study, name_study) -> None:
    assert check_exposure(token_study.path, "0.0.0.0", 8501, allow_name_sign_in=False) is None
    assert check_exposure(name_study.path, "127.0.0.1", 8501, allow_name_sign_in=False) is None
    for address in ("0.0.0.0", "192.0.2.7", "grading.example.org"):
        with pytest.raises(OwlEvalError, match="--allow-name-sign-in"):
            check_exposure(name_study.path, address, 8501, allow_name_sign_in=False)
    warning = check_exposure(name_study.path, "0.0.0.0", 8501, allow_name_sign_in=True)
    assert warning.startswith("warning:") and "0.0.0.0:8501" in warning


def test_a_name_sign_in_study_behind_a_trusted_proxy_is_refused_unless_allowed(name_study, token_study) -> None:
    with pytest.raises(OwlEvalError, match="through the proxy"):
        check_exposure(name_study.path, "127.0.0.1", 8501, allow_name_sign_in=False, proxied=True)
    assert check_exposure(token_study.path, "127.0.0.1", 8501, allow_name_sign_in=False, proxied=True) is None


def test_a_trusted_proxy_must_be_an_address(tmp_path: Path, token_study) -> None:
    result = _rate("--db", str(token_study.path), "--trusted-proxy", "proxy.example.org", home=tmp_path)
    assert result.returncode != 0 and "--trusted-proxy 'proxy.example.org'" in result.stderr
    assert trusted_proxy_setting(["::1"]) == "::1"


def test_no_traceback_reaches_an_annotator() -> None:
    cmd = streamlit_command(8501, "0.0.0.0", None, None, True)
    assert cmd[cmd.index("--client.showErrorDetails") + 1] == "none"


def test_the_admin_page_warns_when_name_sign_in_is_served_on_the_network(name_study, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OWLEVAL_RATE_DB", str(name_study.path))
    monkeypatch.setenv(access.EXPOSED_ENV, "0.0.0.0:8501")
    at = AppTest.from_file(APP, default_timeout=budget(30)).run()
    at.sidebar.radio(key="page").set_value("Admin").run()
    at.text_input(key="admin_token").input(name_study.admin_token)
    at.button(key="admin_open").click().run()
    assert not at.exception, at.exception
    assert any("0.0.0.0:8501" in w.value and "another annotator's name" in w.value for w in at.warning)


# -- names that a spreadsheet would run --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["=HYPERLINK(\"http://x\",\"ann\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\t=1+1"])
def test_annotator_names_may_not_begin_like_a_formula(name: str) -> None:
    with pytest.raises(OwlEvalError, match="may not begin with"):
        check_name(name)


@pytest.mark.parametrize("name", ["＝HYPERLINK(\"http://x\")", "＋1", "﹣2", "＠SUM(A1)", "\x00=1+1"])
def test_annotator_names_may_not_begin_like_a_disguised_formula(name: str) -> None:
    with pytest.raises(OwlEvalError, match="may not begin with|printable"):
        check_name(name)


@pytest.mark.parametrize("name", ["ann\u200b", "\u202eann", "an\u2066n", "\ufeffann"])
def test_annotator_names_may_not_hold_format_characters(name: str) -> None:
    with pytest.raises(OwlEvalError, match="invisible format characters"):
        check_name(name)


def test_an_existing_name_with_a_format_character_still_signs_in(name_study) -> None:
    store = Store(name_study.path)
    try:
        with store.write() as conn:  # a name from before the rule
            conn.execute("UPDATE annotators SET name = ? WHERE name = 'ann'", ("a\u202enn",))
        assert access.sign_in_with_name(store, "a\u202enn").name == "a\u202enn"
        with pytest.raises(OwlEvalError, match="invisible format characters"):
            access.sign_in_with_name(store, "b\u202eob")  # a new one is refused
    finally:
        store.close()


def test_ordinary_names_pass() -> None:
    assert check_name("  Ann   Lee ") == "Ann Lee"
    assert check_name("O'Brien-Smith = ok") == "O'Brien-Smith = ok"


# -- the answer to a token tells nothing about its id ------------------------------------------------------------

@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = hashlib.scrypt

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(tokens.hashlib, "scrypt", counting)
    return calls


def test_an_unknown_token_id_costs_the_same_scrypt_as_a_known_one(token_study, scrypt_calls: list[int]) -> None:
    store = Store(token_study.path)
    try:
        access.sign_in_with_token(store, "owl_000000000000_" + "A" * 32)  # warm the decoy outside the count
        known_id = token_study.tokens["ann"].split("_")[1]
        for token in (f"owl_{known_id}_" + "A" * 32, "owl_0123456789ab_" + "A" * 32):
            scrypt_calls.clear()
            assert access.sign_in_with_token(store, token) is None
            assert len(scrypt_calls) == 1, token
        scrypt_calls.clear()
        assert access.sign_in_with_token(store, token_study.tokens["ann"]).name == "ann"
        assert len(scrypt_calls) == 1
        admin_id = token_study.admin_token.split("_")[1]
        for token in (f"owl_{admin_id}_" + "A" * 32, "owl_0123456789ab_" + "A" * 32):
            scrypt_calls.clear()
            assert not access.is_admin(store, token)
            assert len(scrypt_calls) == 1, token
        assert access.is_admin(store, token_study.admin_token)
    finally:
        store.close()


# -- wrong tokens are slowed down, a right one never refused (the gate itself: test_grading_throttle) ----------

def test_app_spaces_wrong_tokens_but_never_refuses_the_right_one(token_study, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OWLEVAL_RATE_DB", str(token_study.path))
    from owleval.screens.signin_guard import gate as shared_gate

    shared_gate.clear()  # one gate per server process: start from none (earlier AppTests of this process used it)
    at = AppTest.from_file(APP, default_timeout=budget(60)).run()
    wrong = token_study.tokens["ann"][:-2] + ("xx" if not token_study.tokens["ann"].endswith("xx") else "yy")
    free = CheckGate().free
    for _ in range(free):
        at.text_input(key="sign_in_token").input(wrong)
        at.button(key="sign_in_submit").click().run()
        assert at.error[0].value == "That token is not valid for this study."
    session_key = "session:" + at.session_state["throttle_id"]
    assert shared_gate().failures(session_key) == free
    assert shared_gate().gap(free) > 0, "the session's next checks are spaced"
    at.text_input(key="sign_in_token").input(token_study.tokens["ann"])  # the owner, after the lock-out began
    at.button(key="sign_in_submit").click().run()
    assert at.session_state["annotator"].name == "ann", "a right token is checked and signs in, never refused"
    assert shared_gate().failures(session_key) == 0, "a success clears its own session's failures"
    assert shared_gate().failures(LOOPBACK_KEY) == free, "but not the address's: it may be someone else's"
    shared_gate.clear()  # one gate per server process: leave none behind for the next test


def test_owleval_is_installed_beside_python() -> None:
    assert OWLEVAL.is_file() or shutil.which("owleval"), "the tests start `owleval rate` as its own process"
