"""The study a newcomer gets with no arguments: the six published answer sets, everyone grades everything.

It lives in the user's data folder, is created on first use (installing the data set first when it is
missing), and signs annotators in by name alone, since it is a local study on one's own machine. Its admin
token is written to a private file beside it, so the owner can open the admin page and annotators cannot see
model names by accident.
"""

from __future__ import annotations

import os
from pathlib import Path

from owleval.answers import PUBLISHED_MODELS
from owleval.errors import OwlEvalError
from owleval.study.manage import AUTH_NAME, create_study
from owleval.paths import default_data_dir

DB_ENV = "OWLEVAL_DEFAULT_STUDY"
QUESTIONS_FILE = "questions.jsonl"


def default_db_path() -> Path:
    """``$OWLEVAL_DEFAULT_STUDY``, else ``$XDG_DATA_HOME/owleval/default-study.sqlite`` (~/.local/share)."""
    env = os.environ.get(DB_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "owleval" / "default-study.sqlite"


def admin_token_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".admin-token")


def ensure_dataset(data_dir: Path) -> None:
    """Install the data set into ``data_dir`` when its questions or published answers are missing."""
    answers = [data_dir / "answer" / name for name in PUBLISHED_MODELS]
    if (data_dir / QUESTIONS_FILE).is_file() and all(p.is_file() for p in answers):
        return
    from owleval.fetch import install_dataset

    install_dataset(data_dir)


def ensure_default_study(db_path: Path | None = None, data_dir: Path | None = None) -> Path:
    """Open the default study, creating it on first use; returns its path."""
    db_path = db_path or default_db_path()
    if db_path.is_file():
        return db_path
    data_dir = (data_dir or default_data_dir()).resolve()
    ensure_dataset(data_dir)
    sources = [data_dir / "answer" / name for name in PUBLISHED_MODELS]
    try:
        created = create_study(db_path, sources, data_dir=data_dir, auth=AUTH_NAME)
    except OwlEvalError:
        if db_path.is_file():  # another process created it at the same moment
            return db_path
        raise
    token_file = admin_token_path(db_path)
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(created.admin_token + "\n")
    return db_path
