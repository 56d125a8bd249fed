"""``owleval rate``: serve the grading app (the same app as ``streamlit run owleval/rate.py`` in a checkout).

The command *becomes* the Streamlit server (``exec``): the PID a supervisor (systemd, Docker, a shell's ``kill``)
holds is the server's, so stopping it frees the port instead of leaving an orphaned child serving on.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from owleval.screens.serving import ALLOW_NAME_FLAG, TRUSTED_PROXY_ENV, is_loopback

#: the app ships inside the package, so this works from a wheel as well as from a checkout
APP = Path(__file__).resolve().parent.parent / "rate.py"
#: the Host names a browser on this machine uses (server.allowedHosts ignores the port)
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def serve_headless(requested: bool) -> bool:
    """Whether to serve without opening a browser: when asked, and wherever no browser could open or no one could
    answer a prompt (no ``DISPLAY``/``WAYLAND_DISPLAY``, or stdin not a terminal: systemd, Docker, nohup, CI)."""
    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return requested or not has_display or not sys.stdin.isatty()


def streamlit_command(port: int, address: str, db: Path | None, data: Path | None, headless: bool,
                      allow_name_sign_in: bool = False, loopback_hosts_only: bool = False) -> list[str]:
    """The ``python -m streamlit run`` argument list serving the app with the settings annotators should get.

    Streamlit's first-run e-mail prompt is always off: an annotation tool never shows a third party's sign-up
    prompt, and a server must not wait on a terminal to start. ``loopback_hosts_only`` (a name sign-in study on
    loopback) makes Streamlit itself refuse websockets whose Host is not a loopback name (DNS rebinding); the page
    checks the same, so plain ``streamlit run`` is covered too."""
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port), "--server.address", address,
           "--server.headless", str(headless).lower(), "--server.showEmailPrompt", "false",
           "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal", "--client.showErrorDetails", "none"]
    if loopback_hosts_only:
        for host in LOOPBACK_HOSTS:
            cmd += ["--server.allowedHosts", host]
    cmd.append("--")
    if db is not None:
        cmd += ["--db", str(db.resolve())]
    if data is not None:
        cmd += ["--data", str(data.resolve())]
    if allow_name_sign_in:
        cmd.append(ALLOW_NAME_FLAG)
    return cmd


def trusted_proxy_setting(proxies: list[str]) -> str:
    """The ``FORWARDED_ALLOW_IPS`` value for ``--trusted-proxy`` (addresses or networks; empty: trust no one, so
    a client's own X-Forwarded-For is never believed)."""
    from owleval.errors import OwlEvalError

    checked = []
    for proxy in proxies:
        for part in (p.strip() for p in proxy.split(",")):
            try:
                checked.append(str(ipaddress.ip_network(part, strict=False) if "/" in part else ipaddress.ip_address(part)))
            except ValueError:
                raise OwlEvalError(f"--trusted-proxy {part!r}: not an IP address or network (e.g. 127.0.0.1, 10.0.0.0/24)") from None
    return ",".join(checked)


def study_auth(db: Path | None) -> str:
    """How the study's annotators sign in; the default study (no --db) signs in by name."""
    from owleval.study.store import Store
    from owleval.study.manage import AUTH_NAME

    if db is None:
        return AUTH_NAME
    store = Store(db)
    try:
        return store.meta()["auth"]
    finally:
        store.close()


def check_exposure(db: Path | None, address: str, port: int, allow_name_sign_in: bool, proxied: bool = False) -> str | None:
    """Refuse to serve a name sign-in study beyond this machine (a non-loopback address, or behind a trusted proxy)
    unless allowed; the warning to print when allowed."""
    from owleval.errors import OwlEvalError
    from owleval.study.manage import AUTH_NAME

    if (is_loopback(address) and not proxied) or study_auth(db) != AUTH_NAME:
        return None
    which = str(db) if db is not None else "the default study"
    reach = f"{address}:{port} through the proxy" if proxied else f"{address}:{port}"
    risk = (f"{which} signs annotators in by name alone: anyone who can reach {reach} could sign in under "
            "another annotator's name, see their comments and change their grades")
    if not allow_name_sign_in:
        raise OwlEvalError(
            f"{risk}. To grade with others on a network, create a token study (owleval study create --annotators "
            "NAME,... gives each annotator a token) and serve that; or serve this one on 127.0.0.1; or pass "
            "--allow-name-sign-in to accept the risk"
        )
    return f"warning: {risk} (--allow-name-sign-in)"


def rate(
    db: Annotated[Path | None, typer.Option("--db", help="Study file; default: the local study of the six published answer sets.")] = None,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to serve on.")] = 8501,
    address: Annotated[str, typer.Option("--address", help="Address to listen on; 0.0.0.0 lets others on the network in (token studies only, see --allow-name-sign-in).")] = "127.0.0.1",
    data: Annotated[Path | None, typer.Option("--data", help="Data-set folder holding the images (default: the study's).")] = None,
    headless: Annotated[bool, typer.Option("--headless/--open-browser", help="Do not open a browser window (servers, containers); implied when there is no display or stdin is not a terminal.")] = False,
    allow_name_sign_in: Annotated[bool, typer.Option("--allow-name-sign-in", help="Serve a study whose annotators sign in by name on a non-loopback --address or behind a proxy (anyone who reaches it can grade as anyone).")] = False,
    trusted_proxy: Annotated[list[str] | None, typer.Option("--trusted-proxy", help="Address (or network) of the reverse proxy in front of the app, repeatable: only its X-Forwarded-For is believed, so throttles key on the real client. Without it no forwarded address is believed and proxied requests are refused.")] = None,
) -> None:
    """Serve the blind grading app and open it in the browser: the A-D grading screen for an A-D study, the
    pairwise voting screen (which of two answers is better) for a pairwise study.

    With no options it opens the local default study of the six published answer sets (created on first use;
    annotators sign in by name). Stop it with Ctrl-C or SIGTERM: this process is the server.

    Example: owleval rate --db grades.sqlite --port 8501
    """
    from owleval.errors import OwlEvalError
    from owleval.screens.access import EXPOSED_ENV
    from owleval.study.manage import AUTH_NAME

    if db is not None and not db.is_file():
        raise OwlEvalError(f"{db}: no such study; create one with `owleval study create`")
    if data is not None and not data.is_dir():
        raise OwlEvalError(f"--data {data}: no such folder")
    proxies = trusted_proxy_setting(trusted_proxy or [])
    warning = check_exposure(db, address, port, allow_name_sign_in, proxied=bool(proxies))
    if warning:
        typer.echo(warning, err=True)
        os.environ[EXPOSED_ENV] = f"{address}:{port}"  # the admin page shows it too
    os.environ[TRUSTED_PROXY_ENV] = proxies  # uvicorn reads it: X-Forwarded-For believed from these peers only
    loopback_only = is_loopback(address) and not proxies and not allow_name_sign_in and study_auth(db) == AUTH_NAME
    cmd = streamlit_command(port, address, db, data, serve_headless(headless), allow_name_sign_in=bool(warning),
                            loopback_hosts_only=loopback_only)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(cmd[0], cmd)  # replaces this process; returns only by raising OSError (shown as one line by the CLI)


def register(app: typer.Typer) -> None:
    app.command("rate")(rate)
