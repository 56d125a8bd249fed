"""Who can reach this page, decided inside the app: the same answer under ``owleval rate``, ``streamlit run
owleval/rate.py`` and behind any proxy.

Name sign-in (the local default study) lets anyone who reaches the page act as anyone, so it is served only when no
one else can reach it: the server listens on a loopback address (``server.address``), no proxy is trusted, and the
browser's request names a loopback host in both ``Host`` and ``Origin`` (a page on ``attacker.example`` resolved to
127.0.0.1 — DNS rebinding — sends ``Host: attacker.example``). ``--allow-name-sign-in`` (``owleval rate`` flag,
the same flag after ``--`` under ``streamlit run``, or ``OWLEVAL_RATE_ALLOW_NAME_SIGN_IN=1``) accepts the risk.

Addresses: uvicorn (Streamlit's server) replaces the peer address by ``X-Forwarded-For`` only from the peers in
``FORWARDED_ALLOW_IPS`` (its default: loopback). ``owleval rate`` sets that variable from ``--trusted-proxy`` (empty
without one); a request that carries forwarding headers while no proxy is named is refused, since its address
could be one the client chose.

Server settings that a running script cannot set (:data:`REQUIRED_LIMITS`) live in ``owleval/.streamlit/config.toml``
beside the entry script; :func:`settings_refusal` refuses to serve when a command line or config file weakened them.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

ALLOW_NAME_ENV = "OWLEVAL_RATE_ALLOW_NAME_SIGN_IN"
ALLOW_NAME_FLAG = "--allow-name-sign-in"
#: uvicorn's list of peers whose X-Forwarded-For it believes (``owleval rate --trusted-proxy`` sets it)
TRUSTED_PROXY_ENV = "FORWARDED_ALLOW_IPS"
FORWARDING_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip", "x-forwarded-host")
#: option -> the largest value the app serves with (MB); config.toml beside rate.py sets exactly these
REQUIRED_LIMITS = {"server.maxUploadSize": 0, "server.maxMessageSize": 16, "server.maxWidgetStateSize": 1}
#: options that must be on
REQUIRED_ON = ("server.enableXsrfProtection",)


def is_loopback(address: str | None) -> bool:
    """Whether only this machine can reach ``address`` (127.0.0.0/8, ::1, localhost); 0.0.0.0, "" (every
    interface, Streamlit's default) and host names are everyone."""
    if not address:
        return False
    address = address.strip().lower().rstrip(".")
    if address == "localhost" or address.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(value: str | None) -> str | None:
    """The host of a ``Host`` header or an ``Origin`` URL (``None`` if unreadable)."""
    if not value:
        return None
    try:
        parsed = urlparse(value if "//" in value else f"//{value}")
        return parsed.hostname
    except ValueError:
        return None


def allow_name_sign_in(argv: list[str] | None = None) -> bool:
    """Whether the owner accepted name sign-in on a network: the flag after ``--`` or the environment."""
    argv = sys.argv if argv is None else argv
    if os.environ.get(ALLOW_NAME_ENV, "").strip().lower() in ("1", "true", "yes"):
        return True
    if argv and os.path.basename(argv[0]) == "rate.py":
        parser = argparse.ArgumentParser(add_help=False)
        parser.add_argument(ALLOW_NAME_FLAG, action="store_true")
        args, _ = parser.parse_known_args(argv[1:])
        return bool(args.allow_name_sign_in)
    return False


@dataclass(frozen=True)
class Request:
    """What the page knows about where it is served and who asks: the bind address, the trusted proxies (uvicorn's
    setting), and the headers of this session's websocket handshake (empty when the script runs in-process, as
    under AppTest: then there is no network at all)."""

    bind_address: str | None
    trusted_proxies: str | None
    headers: Mapping[str, str]

    @classmethod
    def current(cls) -> Request:
        import streamlit as st

        headers = {k.lower(): v for k, v in st.context.headers.items()}
        return cls(st.get_option("server.address"), os.environ.get(TRUSTED_PROXY_ENV), headers)

    @property
    def over_network(self) -> bool:
        return bool(self.headers)

    @property
    def forwarded(self) -> bool:
        return any(h in self.headers for h in FORWARDING_HEADERS)

    @property
    def proxy_named(self) -> bool:
        return bool((self.trusted_proxies or "").strip())


def proxy_refusal(request: Request) -> str | None:
    """Why no one may sign in on this request (its client address cannot be believed), or None."""
    if not request.over_network:
        return None
    if (request.trusted_proxies or "").strip() == "*":
        return ("This server believes X-Forwarded-For from every peer (FORWARDED_ALLOW_IPS=*), so a client could "
                "choose its own address. Name the proxy instead: owleval rate --trusted-proxy ADDR.")
    if request.forwarded and not request.proxy_named:
        return ("This page was reached through a proxy (the request carries forwarding headers), but the server "
                "was not told which proxy to trust. Serve it with `owleval rate --trusted-proxy ADDR` (under "
                "`streamlit run`: FORWARDED_ALLOW_IPS=ADDR).")
    return None


def name_sign_in_refusal(request: Request, allowed: bool) -> str | None:
    """Why name sign-in is not offered on this request, or None: only loopback, unproxied, same-machine browsers."""
    if allowed or not request.over_network:
        return None
    why = None
    if not is_loopback(request.bind_address):
        shown = request.bind_address or "every interface"
        why = f"the server listens on {shown}, so other machines can reach it"
    elif request.proxy_named or request.forwarded:
        why = "it is served through a proxy, so other machines can reach it"
    elif not is_loopback(host_name(request.headers.get("host"))):
        why = f"the page was asked for as {request.headers.get('host', '(no Host)')!r}, not a loopback name"
    elif not is_loopback(host_name(request.headers.get("origin"))):
        why = f"the page was opened from {request.headers.get('origin', '(no Origin)')!r}, not a loopback origin"
    if why is None:
        return None
    return (f"This study signs annotators in by name alone, and {why}: anyone reaching it could grade as anyone. "
            "Grade on this machine at http://127.0.0.1 (serve with --server.address 127.0.0.1), or create a token "
            "study for grading on a network (owleval study create --annotators ...). The owner can accept the "
            f"risk with {ALLOW_NAME_FLAG}.")


def settings_refusal(get_option: Callable[[str], object]) -> str | None:
    """Why the app will not serve with these server settings (weaker than ``owleval/.streamlit/config.toml``)."""
    weak = []
    for option, limit in REQUIRED_LIMITS.items():
        value = get_option(option)
        if not isinstance(value, int) or value > limit:
            weak.append(f"{option} is {value!r} (at most {limit})")
    weak += [f"{option} is off" for option in REQUIRED_ON if not get_option(option)]
    if not weak:
        return None
    return ("The grading app refuses to serve with weakened server limits: " + "; ".join(weak) + ". Remove the "
            "override (command line, STREAMLIT_* variable or a config.toml); owleval/.streamlit/config.toml sets them.")
