"""Shared fixtures: one verified install of the data set per test session, from ../shared/owleval_82q.

Every test sees it through OWLEVAL_DATA, so no test reads or writes the checkout's data folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("OWLEVAL_SHARED_DATA", REPO_ROOT.parent / "shared" / "owleval_82q"))


def _environ_set(name: str, path: Path) -> Iterator[Path]:
    """Yield ``path`` with ``$name`` pointing at it for the session, then put the variable back as it was."""
    previous = os.environ.get(name)
    os.environ[name] = str(path)
    yield path
    if previous is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = previous


@pytest.fixture(scope="session", autouse=True)
def owl_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Path to an installed, verified copy of the OwlEval data set (questions.jsonl, cases/, answer/)."""
    from owleval.fetch import install_dataset

    if not SHARED_DATA.is_dir():
        pytest.exit(f"the OwlEval source files are expected at {SHARED_DATA} (set OWLEVAL_SHARED_DATA)", returncode=2)
    dest = tmp_path_factory.mktemp("owleval_data") / "owleval_82q"
    install_dataset(dest, SHARED_DATA)
    yield from _environ_set("OWLEVAL_DATA", dest)


@pytest.fixture(scope="session", autouse=True)
def weight_hash_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Checkpoint fingerprints cache their weight hashes in a session folder, never in the user's ~/.cache."""
    yield from _environ_set("OWLEVAL_CACHE_DIR", tmp_path_factory.mktemp("owleval_cache"))


@pytest.fixture(scope="session")
def published_answers_dir(owl_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The six published answer sets, imported and normalised (one <model>.jsonl each)."""
    from owleval.answers import PUBLISHED_MODELS, import_answer_files
    from owleval.questions import load_questions

    out = tmp_path_factory.mktemp("published_answers")
    import_answer_files([owl_data / "answer" / name for name in PUBLISHED_MODELS], out, load_questions(owl_data))
    return out


@pytest.fixture
def browser():
    """Headless Debian Chromium through playwright, for the browser tests (see tests/browser_helpers.py)."""
    from playwright.sync_api import sync_playwright

    from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(autouse=True)
def apptest_grades_unthrottled(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Streamlit's AppTest drives the screens in this process far faster than people grade, so the per-annotator
    grade limit (5 a second after a burst of 15) would refuse some of a test's grades depending on the machine's
    speed. Those tests get a limiter they cannot exhaust; the limit itself is tested with a fake clock
    (test_grading_serving.py) and against the real server (the browser tests)."""
    if "AppTest" not in vars(request.module):
        return
    from owleval.screens import action_limits

    monkeypatch.setattr(action_limits, "SHARED", action_limits.ActionLimiter(rate=1e9, burst=10**9))
