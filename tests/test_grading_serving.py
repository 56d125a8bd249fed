"""What the page decides about where it is served (name sign-in only when no one else can reach it, forwarded
addresses only from a named proxy, the server limits of config.toml), and the bounds on what one client can make
the server keep: grade actions per annotator, windows per session, log lines, the admin's one-time CSV link."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import pytest

from owleval.commands.rate import streamlit_command, trusted_proxy_setting
from owleval.errors import OwlEvalError
from owleval.screens import action_limits, admin_download, gradebar, serving
from owleval.screens.log_limits import BoundedLogFilter
from owleval.study.queue import load_queue, record_grade
from owleval.screens.serving import Request
from owleval.study.store import Store
from tests.grading_helpers import make_study

LOCAL = {"host": "127.0.0.1:8501", "origin": "http://127.0.0.1:8501"}
CONFIG = Path(serving.__file__).resolve().parent.parent / ".streamlit" / "config.toml"


def _request(bind: str | None = "127.0.0.1", proxies: str | None = None, **headers: str) -> Request:
    return Request(bind, proxies, {k.replace("_", "-"): v for k, v in ({**LOCAL, **headers}).items()})


# -- name sign-in: decided inside the app -------------------------------------------------------------------------

@pytest.mark.parametrize("host, origin", [("127.0.0.1:8501", "http://127.0.0.1:8501"), ("localhost:8501", "http://localhost:8501"),
                                          ("[::1]:8501", "http://[::1]:8501")])
def test_a_browser_on_this_machine_may_sign_in_by_name(host: str, origin: str) -> None:
    assert serving.name_sign_in_refusal(_request(host=host, origin=origin), allowed=False) is None


@pytest.mark.parametrize("request_, why", [
    (_request(bind=None), "every interface"),  # plain `streamlit run` listens everywhere
    (_request(bind="0.0.0.0"), "0.0.0.0"),
    (_request(bind="::"), "listens on ::"),
    (_request(host="attacker.example:8501"), "attacker.example"),  # DNS rebinding
    (_request(origin="http://attacker.example:8501"), "attacker.example"),
    (_request(host="127.0.0.1:8501", origin="https://grading.example.org"), "grading.example.org"),  # proxy keeping Host
    (_request(x_forwarded_for="192.0.2.7"), "proxy"),
    (_request(proxies="10.0.0.5"), "proxy"),
], ids=["streamlit-run-default", "ipv4-any", "ipv6-any", "rebinding-host", "rebinding-origin", "proxy-origin",
        "forwarded", "trusted-proxy"])
def test_name_sign_in_is_refused_wherever_others_can_reach_the_page(request_: Request, why: str) -> None:
    refusal = serving.name_sign_in_refusal(request_, allowed=False)
    assert refusal is not None and why in refusal and "--allow-name-sign-in" in refusal
    assert serving.name_sign_in_refusal(request_, allowed=True) is None, "the owner may accept the risk"


def test_a_request_without_origin_is_refused_name_sign_in() -> None:
    """Browsers always send Origin on a websocket; a client that leaves it out proves nothing about where it is."""
    request = Request("127.0.0.1", None, {"host": "127.0.0.1:8501"})
    assert serving.name_sign_in_refusal(request, allowed=False) is not None


def test_in_process_runs_have_no_network_to_refuse() -> None:
    assert serving.name_sign_in_refusal(Request(None, None, {}), allowed=False) is None
    assert serving.proxy_refusal(Request(None, None, {})) is None


def test_allow_flag_reaches_the_page_after_the_double_dash_or_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(serving.ALLOW_NAME_ENV, raising=False)
    assert not serving.allow_name_sign_in(["/x/owleval/rate.py", "--db", "s.sqlite"])
    assert serving.allow_name_sign_in(["/x/owleval/rate.py", "--db", "s.sqlite", "--allow-name-sign-in"])
    assert not serving.allow_name_sign_in(["/usr/bin/pytest", "--allow-name-sign-in"]), "only the app's own arguments"
    monkeypatch.setenv(serving.ALLOW_NAME_ENV, "1")
    assert serving.allow_name_sign_in(["/usr/bin/pytest"])


# -- forwarded addresses ------------------------------------------------------------------------------------------

def test_forwarding_headers_without_a_named_proxy_are_refused() -> None:
    """Under plain `streamlit run`, uvicorn believes X-Forwarded-For from any loopback peer: a client could pick
    its own throttle address. The page refuses such a request instead."""
    for header in ("x_forwarded_for", "forwarded", "x_real_ip"):
        refusal = serving.proxy_refusal(_request(**{header: "192.0.2.7"}))
        assert refusal is not None and "--trusted-proxy" in refusal
    assert serving.proxy_refusal(_request(proxies="", x_forwarded_for="192.0.2.7")) is not None
    assert serving.proxy_refusal(_request(proxies="127.0.0.1", x_forwarded_for="192.0.2.7")) is None
    assert serving.proxy_refusal(_request(proxies="*")) is not None, "trusting every peer is refused"
    assert serving.proxy_refusal(_request()) is None


def test_trusted_proxy_flag_becomes_uvicorns_setting() -> None:
    assert trusted_proxy_setting([]) == "", "no flag: no forwarded address is believed"
    assert trusted_proxy_setting(["127.0.0.1", "10.0.0.0/24,fd00::1"]) == "127.0.0.1,10.0.0.0/24,fd00::1"
    with pytest.raises(OwlEvalError, match="not an IP address"):
        trusted_proxy_setting(["proxy.example.org"])


def test_a_loopback_name_study_gets_streamlits_allowed_hosts_too() -> None:
    cmd = streamlit_command(8501, "127.0.0.1", None, None, True, loopback_hosts_only=True)
    hosts = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--server.allowedHosts"]
    assert hosts == ["localhost", "127.0.0.1", "::1"]
    assert cmd.index("--server.allowedHosts") < cmd.index("--")
    allowed = streamlit_command(8501, "0.0.0.0", None, None, True, allow_name_sign_in=True)
    assert allowed[allowed.index("--") + 1:] == ["--allow-name-sign-in"]


# -- server limits ------------------------------------------------------------------------------------------------

def test_config_toml_beside_the_app_sets_the_limits_the_page_requires() -> None:
    config = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
    options = {f"{section}.{k}": v for section, values in config.items() for k, v in values.items()}
    assert serving.settings_refusal(options.get) is None
    assert options["server.maxUploadSize"] == 0, "no uploader: the smallest limit Streamlit takes"


def test_weakened_limits_are_refused() -> None:
    good = {"server.maxUploadSize": 0, "server.maxMessageSize": 16, "server.maxWidgetStateSize": 1,
            "server.enableXsrfProtection": True}
    for option, weak in (("server.maxUploadSize", 200), ("server.maxMessageSize", 200), ("server.maxWidgetStateSize", 25),
                         ("server.enableXsrfProtection", False)):
        refusal = serving.settings_refusal({**good, option: weak}.get)
        assert refusal is not None and option in refusal


# -- grade actions, windows, logs ---------------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_grade_actions_are_limited_per_annotator() -> None:
    clock = Clock()
    limiter = action_limits.ActionLimiter(rate=5.0, burst=15, clock=clock)
    assert sum(limiter.allow("ann") for _ in range(100)) == 15, "a burst of 15 at once"
    assert limiter.allow("bob"), "another annotator has a bucket of her own"
    clock.now += 1.0
    assert sum(limiter.allow("ann") for _ in range(100)) == 5, "then 5 a second"
    clock.now += 10.0
    passed = 0
    for _ in range(30):  # a person grading 30 answers at 150 ms apiece is never refused
        passed += limiter.allow("carol")
        clock.now += 0.15
    assert passed == 30


def _bar_message(window: str, actions: list[tuple[int, str]]) -> dict:
    pending = [{"seq": seq, "kind": "grade", "grade": grade, "index": 0, "answer": 7, "seen": 0} for seq, grade in actions]
    return {gradebar.BAR_KEY: {"actions": {"window": window, "pending": pending}}}


def test_a_flood_of_grade_actions_is_refused_past_the_limit_with_a_message() -> None:
    ss = _bar_message("w1", [(seq, "ABCD"[seq % 4]) for seq in range(1, 41)])
    recorded: list[int] = []

    def record(items, action, window):
        recorded.append(action.seq)
        return items

    limiter = action_limits.ActionLimiter(rate=5.0, burst=15, clock=Clock())
    action_limits.apply_limited(ss, limiter, "ann", [object()], lambda item: 7, record)
    assert recorded == list(range(1, 16)), "a burst of 15, then refused"
    assert [kind for kind, _ in ss["flash"]] == ["error"] * 25
    assert all(message == action_limits.RATE_MESSAGE for _, message in ss["flash"])
    assert ss["bar_applied"] == {"w1": 40}, "answered (refused ones too): never retried in a loop"


def test_windows_per_session_are_capped_most_recent_kept() -> None:
    ss = {"bar_applied": {f"w{i}": i for i in range(10)}}
    action_limits.trim_windows(ss, "w2", max_windows=4)
    assert list(ss["bar_applied"]) == ["w7", "w8", "w9", "w2"]


def test_log_lines_from_a_flood_of_bad_messages_are_bounded() -> None:
    clock = Clock()
    filt = BoundedLogFilter(max_bytes=512, per_window=5, window_s=60.0, clock=clock)
    logger = logging.getLogger("owleval.test.flood")
    logger.propagate = False
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.addFilter(filt)
    try:
        for i in range(200):
            try:
                raise KeyError("$$ID-" + "x" * 5000 + str(i))
            except KeyError:
                logger.exception("Error processing back message")
        clock.now += 60.0
        logger.exception("Error processing back message")
    finally:
        logger.removeHandler(handler)
    assert len(lines) == 6, "5 a minute, then the next minute's first"
    assert all(len(line.encode()) <= 512 for line in lines) and "Traceback" not in "".join(lines)
    assert "[195 similar lines dropped]" in lines[-1]


def test_the_same_grade_from_any_window_is_not_stored_again(tmp_path: Path, owl_data: Path) -> None:
    study = make_study(tmp_path, owl_data, ("ann",), qids=(1,))
    store = Store(study.path)
    try:
        who = store.conn.execute("SELECT annotator_id FROM annotators").fetchone()[0]
        item = load_queue(store, who)[0]
        first = record_grade(store, who, item.answer_id, "B", window="w1", seq=1, seen=0)
        for n in range(2, 50):  # fresh window ids, nothing changed
            assert record_grade(store, who, item.answer_id, "B", window=f"w{n}", seq=1, seen=first.event_id) == first
        changed = record_grade(store, who, item.answer_id, "C", window="w99", seq=1, seen=first.event_id)
        count = store.conn.execute("SELECT COUNT(*) FROM grade_events").fetchone()[0]
    finally:
        store.close()
    assert changed.grade == "C" and count == 2


# -- the admin's CSV link -----------------------------------------------------------------------------------------

def test_the_admin_csv_link_lasts_60_seconds_or_one_fetch() -> None:
    ticket = admin_download.Ticket("a,b\n", made_at=100.0)
    assert ticket.valid(100.0) and ticket.valid(159.9)
    assert not ticket.valid(160.0), "60 s at most"
    fetched = admin_download.Ticket("a,b\n", made_at=100.0)
    fetched.fetched = True
    assert not fetched.valid(101.0), "one fetch"
    assert admin_download.Ticket("x", 0.0).nonce != admin_download.Ticket("x", 0.0).nonce


def test_config_is_shipped_with_the_package() -> None:
    pyproject = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text(encoding="utf-8"))
    assert ".streamlit/config.toml" in pyproject["tool"]["setuptools"]["package-data"]["owleval"]
