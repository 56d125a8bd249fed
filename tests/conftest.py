"""Shared fixtures: one verified install of the data set per test session, from ../shared/owleval_82q.

Every test sees it through OWLEVAL_DATA, so no test reads or writes the checkout's data folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.timing import measure_slowdown, slowdown

# One compute thread per test process (and the servers and commands it starts, which inherit it): the models here are
# tiny, and OpenMP's threads spin while they wait, so torch's default of one thread per core oversubscribes the cores
# as soon as anything else runs (a second xdist worker, a busy neighbour): test_hf_adapter.py beside a busy loop took
# 104 s with the default, 44 s with one thread. Set before any test module imports torch; an explicit value is kept.
os.environ.setdefault("OMP_NUM_THREADS", "1")

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


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: never called without the plugin (-p no:xdist -o addopts=...)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` (pyproject's addopts): no workers for a run of one or two test files, where starting workers (each
    imports torch and collects on its own) costs more than it saves; otherwise pytest-xdist's one per core."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    files = {arg.split("::")[0] for arg in config.args}
    if config.args and all(name.endswith(".py") for name in files) and len(files) <= 2:
        return 0
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``--dist loadgroup``): every browser test runs in one worker, one at a time (a Streamlit
    server and Chromium each want most of a core; two at once on a 2-core machine starve each other), and a test
    that uses a module- or class-scoped fixture runs in the worker of the rest of its module, so the fixture (a built
    wheel, a tiny model) is built once. Other tests go wherever a worker is free. Without xdist the marks do nothing."""
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.xdist_group("browser"))
            continue
        defs = getattr(item, "_fixtureinfo", None)
        scopes = {d.scope for ds in (defs.name2fixturedefs.values() if defs else ()) for d in ds}
        if scopes & {"module", "class", "package"}:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


def pytest_report_header(config: pytest.Config) -> str:
    return f"machine slowdown for test deadlines: x{slowdown():.2f} (tests/timing.py)"


@pytest.fixture(scope="session", autouse=True)
def machine_slowdown() -> float:
    """Each test process measures the machine's speed once as it starts (tests/timing.py scales every deadline by it)."""
    return measure_slowdown()


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

    from tests.browser_helpers import launch_chromium

    with sync_playwright() as p:
        chromium = launch_chromium(p.chromium)
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
