"""``owleval rate``: start the grading app (``streamlit run owleval/rate.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

APP = Path(__file__).resolve().parent.parent / "rate.py"


def rate(
    db: Annotated[Path | None, typer.Option("--db", help="Study file; default: the local study of the six published answer sets.")] = None,
    port: Annotated[int, typer.Option("--port", help="Port to serve on.")] = 8501,
    address: Annotated[str, typer.Option("--address", help="Address to listen on (0.0.0.0 to let others on the network in).")] = "127.0.0.1",
    data: Annotated[Path | None, typer.Option("--data", help="Data-set folder holding the images (default: the study's).")] = None,
) -> None:
    """Open the blind A-D grading app in the browser.

    Example: owleval rate --db grades.sqlite --port 8501
    """
    from owleval.errors import OwlEvalError

    if db is not None and not db.is_file():
        raise OwlEvalError(f"{db}: no such study; create one with `owleval study create`")
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port), "--server.address", address,
           "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal", "--"]
    if db is not None:
        cmd += ["--db", str(db.resolve())]
    if data is not None:
        cmd += ["--data", str(data.resolve())]
    raise typer.Exit(subprocess.call(cmd))


def register(app: typer.Typer) -> None:
    app.command("rate")(rate)
