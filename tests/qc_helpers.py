"""Studies for the annotator quality-control tests: gold files, and a study file of schema 3 made by the owleval of
that time (from the checkout's git history)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: run by the owleval of schema 3 (the code before quality control): a study like make_study's default, ann's first
#: answer graded C "before the upgrade" (request r1)
_OLD_CODE_SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import owleval, owleval.grading.store as store
assert owleval.__file__.startswith(sys.argv[1]) and store.SCHEMA_VERSION == 3, (owleval.__file__, store.SCHEMA_VERSION)
from owleval.grading.queue import load_queue, record_grade
from owleval.grading.store import Store
from tests.grading_helpers import make_study
created = make_study(Path(sys.argv[2]), Path(sys.argv[3]))
s = Store(created.path)
ann = s.conn.execute("SELECT annotator_id FROM annotators WHERE name = 'ann'").fetchone()[0]
record_grade(s, ann, load_queue(s, ann)[0].answer_id, "C", "before the upgrade", request_id="r1")
s.close()
print(created.path)
"""


def schema_3_commit() -> str:
    """The last commit of this checkout whose studies are schema 3: the parent of the one that made schema 4."""
    out = subprocess.run(["git", "-C", str(ROOT), "log", "--format=%H", "-S", "SCHEMA_VERSION = 4", "--", "owleval/grading/store.py"],  # its path in that history
                         capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("needs the git history of the checkout (a schema-3 study is made by the code of that time)")
    commits = out.stdout.split()
    return f"{commits[-1]}^" if commits else "HEAD"


def make_schema_3_study(folder: Path, data_dir: Path) -> Path:
    """A study file written and graded by the owleval of schema 3 (checked out from git history), in ``folder``."""
    code = folder / "owleval-schema-3"
    code.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", schema_3_commit(), "owleval", "tests/grading_helpers.py"],
                             capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(code)], input=archive.stdout, check=True)
    work = folder / "made-by-schema-3"
    work.mkdir()
    done = subprocess.run([sys.executable, "-c", _OLD_CODE_SCRIPT, str(code), str(work), str(data_dir)],
                          capture_output=True, text=True, cwd=code)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


@pytest.fixture(scope="session")
def schema_3_study_file(tmp_path_factory: pytest.TempPathFactory, owl_data: Path) -> Path:
    """One schema-3 study per session (see :func:`make_schema_3_study`); copy it before changing it."""
    return make_schema_3_study(tmp_path_factory.mktemp("schema3"), owl_data)


def copy_study(source: Path, dest: Path) -> Path:
    import shutil

    shutil.copyfile(source, dest)
    return dest


def write_gold(path: Path, rows: list[tuple[int, str, str, str]]) -> Path:
    """A gold CSV of (question_id, model_id, grade, note) rows."""
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["question_id", "model_id", "grade", "note"])
        writer.writerows(rows)
    return path
