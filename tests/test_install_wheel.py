"""What users install: the sdist and the wheel built from this checkout, the wheel installed non-editable outside
the checkout, and every command run from there (the editable install used by the rest of the suite hides a module
missing from the wheel).

The wheel goes into a target folder put first on ``sys.path`` (``pip install --no-deps --target``), so the
dependencies already installed for the tests are reused and nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import site
import socket
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

from tests.browser_helpers import free_port, serving
from tests.timing import budget, wait_until

ROOT = Path(__file__).resolve().parent.parent
#: source folder -> where its files land in the wheel
INSTALLED_AS = {"owleval": "owleval", "adapters": "owleval/adapters", "data/owleval_82q": "owleval/dataset_manifest"}
SHIPPED = ("*.py", "*.j2", "py.typed", "manifest.json", "config.toml")

pytestmark = pytest.mark.slow


def _checkout_files() -> list[str]:
    """The files git would put in a clone (tracked, plus new ones not ignored): what a build from the repo sees."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to build a wheel from")
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, check=True).stdout.decode()
    return [name for name in listing.split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(wheel, sdist) built by `python -m build` from a copy of the checkout; the wheel is built from the sdist."""
    src = tmp_path_factory.mktemp("src")
    for name in _checkout_files():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    dist = tmp_path_factory.mktemp("dist")
    run = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(src)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (wheel,), (sdist,) = dist.glob("*.whl"), dist.glob("*.tar.gz")
    return wheel, sdist


def expected_wheel_files() -> set[str]:
    """Every module, template and data file of the checkout's package folders, named as installed."""
    expected = set()
    for name in _checkout_files():
        path = PurePosixPath(name)
        for folder, installed in INSTALLED_AS.items():
            if path.is_relative_to(folder) and any(path.match(pattern) for pattern in SHIPPED):
                expected.add(f"{installed}/{path.relative_to(folder)}")
    return expected


def test_the_wheel_holds_every_module_template_and_the_manifest(built: tuple[Path, Path]) -> None:
    wheel, _ = built
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name for name in archive.namelist() if not name.startswith("owleval-")}
    missing = sorted(expected_wheel_files() - shipped)
    assert not missing, f"{wheel.name} lacks {missing}"
    assert {"owleval/rate.py", "owleval/dataset_manifest/manifest.json", "owleval/report/templates/report.html.j2"} <= shipped
    assert {name.split("/")[0] for name in shipped} == {"owleval"}, "the wheel installs a top-level name besides owleval"


@pytest.fixture(scope="module")
def installed(built: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str], Path]]:
    """(target folder, environment, working folder outside the checkout) of a non-editable install of the wheel.

    A fresh virtual environment sees the test environment's packages through a ``.pth`` line naming their folder;
    ``.pth`` files inside that folder are not run, so the editable install's import hook (which would quietly
    serve any module the wheel lacks from the checkout) stays out.
    """
    wheel, _ = built
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--clear", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "test-environment.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    target = tmp_path_factory.mktemp("site")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    work = tmp_path_factory.mktemp("work")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OWLEVAL_", "PYTHON", "VIRTUAL_ENV"))}
    env |= {"PYTHONPATH": str(target), "PATH": f"{target / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            "OWLEVAL_DATA": str(work / "data"), "XDG_DATA_HOME": str(work / "share"), "COLUMNS": "200",
            "OWLEVAL_TEST_PYTHON": str(python)}
    yield target, env, work


def owleval(installed: tuple[Path, dict[str, str], Path], *args: str, base_s: float = 120) -> subprocess.CompletedProcess[str]:
    target, env, work = installed
    result = subprocess.run([str(target / "bin" / "owleval"), *args], cwd=work, env=env, capture_output=True, text=True,
                            timeout=budget(base_s))
    assert result.returncode == 0, f"owleval {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def test_every_command_runs_from_the_installed_wheel(installed, owl_data: Path) -> None:
    target, env, work = installed
    python = Path(env["OWLEVAL_TEST_PYTHON"])
    where = subprocess.run([python, "-c", "import owleval, owleval.adapters, owleval.commands; "
                            "print(owleval.__file__); print(owleval.adapters.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert all(Path(p).is_relative_to(target) for p in where), where  # not the editable checkout
    assert "owleval 0.1.0" in owleval(installed, "--version").stdout
    models = owleval(installed, "models").stdout
    assert all(name in models for name in ("mplug-owl", "llava", "minigpt4", "openai", "answers-file"))
    owleval(installed, "data", "fetch", "--from", str(owl_data))
    assert "57 files" in owleval(installed, "data", "verify").stdout
    owleval(installed, "answers", "import", "--published", "--out", "answers")
    owleval(installed, "generate", "--model", "answers-file", "--checkpoint", "answers/llava-13b.jsonl", "--out", "replay/llava.jsonl")
    assert len((work / "replay" / "llava.jsonl").read_text().splitlines()) == 82
    owleval(installed, "study", "create", "--db", "study.sqlite", "--answers", "answers", "--annotators", "ann,bob")
    rows = ["annotator,model_id,question_id,grade"]
    rows += [f"{who},{model},{q},{'ABCD'[(q * (i + 2) + (who == 'bob')) % 4]}"
             for i, model in enumerate(("llava-13b", "mplug-owl-7b")) for q in range(1, 83) for who in ("ann", "bob")]
    (work / "grades.csv").write_text("\n".join(rows) + "\n")
    owleval(installed, "report", "--grades", "grades.csv", "--answers", "answers", "--out", "report", "--bootstrap", "200")
    assert {"summary.csv", "agreement.csv", "report.html", "report.md"} <= {p.name for p in (work / "report").iterdir()}


def test_a_local_hf_checkpoint_generates_and_judges_from_the_installed_wheel(installed, owl_data: Path, tmp_path: Path) -> None:
    """`generate --model hf` and `judge --judge hf` from the wheel, on a tiny random Gemma 3 built here."""
    from tests.hf_family_helpers import make_tiny_checkpoint

    target, env, work = installed
    checkpoint = make_tiny_checkpoint("gemma3", tmp_path / "gemma3")
    owleval(installed, "data", "fetch", "--from", str(owl_data))
    owleval(installed, "generate", "--model", "hf", "--checkpoint", str(checkpoint), "--device", "cpu", "--limit", "2",
            "--max-new-tokens", "4", "--out", "hf-answers/tiny.jsonl", base_s=300)
    answers = [json.loads(line) for line in (work / "hf-answers" / "tiny.jsonl").read_text().splitlines()]
    assert [a["question_id"] for a in answers] == [1, 2] and all(isinstance(a["answer"], str) for a in answers)
    meta = json.loads((work / "hf-answers" / "tiny.jsonl.meta.json").read_text())
    assert meta["provenance"]["model_type"] == "gemma3"
    owleval(installed, "judge", "--answers", "hf-answers", "--judge", "hf", "--checkpoint", str(checkpoint), "--device", "cpu",
            "--limit", "1", "--out", "hf-judged", "-o", "max_tokens=4", "-o", "parse_retries=0", base_s=300)
    judged = json.loads((work / "hf-judged" / "meta.json").read_text())
    assert judged["adapter"] == "hf" and sum(judged["counts"].values()) == 1  # random weights: unparsed, never guessed


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _serve(installed, db: Path, port: int) -> subprocess.Popen[bytes]:
    target, env, work = installed
    proc = subprocess.Popen([str(target / "bin" / "owleval"), "rate", "--db", str(db), "--port", str(port), "--headless"],
                            cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: serving(f"http://127.0.0.1:{port}/"), 60, "owleval rate serving /_stcore/health",
                   alive=lambda: proc.poll() is None)
    except AssertionError:
        proc.kill()
        raise
    return proc


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_owleval_rate_is_the_server_and_stopping_it_frees_the_port(installed, owl_data: Path, stop: signal.Signals) -> None:
    _, _, work = installed
    db = work / "study.sqlite"
    if not db.is_file():  # this test alone: make the study it serves
        owleval(installed, "data", "fetch", "--from", str(owl_data))
        owleval(installed, "answers", "import", "--published", "--out", "answers")
        owleval(installed, "study", "create", "--db", "study.sqlite", "--answers", "answers", "--annotators", "ann")
    port = free_port()
    proc = _serve(installed, db, port)
    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
    assert b"streamlit" in cmdline, "owleval rate should have become the streamlit process"
    os.kill(proc.pid, stop)
    wait_until(lambda: _port_is_free(port), 5, f"port {port} freed after {stop.name} to owleval rate")
    proc.wait(timeout=budget(5))


def test_owleval_rate_from_the_wheel_serves_on_a_fresh_home_without_a_terminal(installed, owl_data: Path, tmp_path: Path) -> None:
    """First run on a new machine under a supervisor: no credentials file, stdin from /dev/null, no --headless."""
    target, env, work = installed
    db = work / "study.sqlite"
    if not db.is_file():
        owleval(installed, "data", "fetch", "--from", str(owl_data))
        owleval(installed, "answers", "import", "--published", "--out", "answers")
        owleval(installed, "study", "create", "--db", "study.sqlite", "--answers", "answers", "--annotators", "ann")
    home = tmp_path / "home"
    home.mkdir()
    fresh = {k: v for k, v in env.items() if not k.startswith("STREAMLIT_")} | {"HOME": str(home), "DISPLAY": ":99"}
    port, log = free_port(), tmp_path / "rate.log"
    with open(log, "wb") as out, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen([str(target / "bin" / "owleval"), "rate", "--db", str(db), "--port", str(port)],
                                cwd=work, env=fresh, stdin=devnull, stdout=out, stderr=subprocess.STDOUT)
    try:
        served = wait_until(lambda: serving(f"http://127.0.0.1:{port}/"), 30, "owleval rate serving",
                            alive=lambda: proc.poll() is None)
    except AssertionError as error:
        served = error
    finally:
        proc.kill()
        proc.wait(timeout=budget(10))
    output = log.read_text(errors="replace")
    assert served is True, f"{served}:\n{output[-2000:]}"
    assert "Welcome to Streamlit" not in output and "Email" not in output, output
