"""Nothing lost when the README became the front door: every heading, command line and CSV column name of the
README as it stood before the move (the 905-line README of main at 161415a) appears in docs/.

The fixture ``tests/docs_moved_fixture.json`` holds what this module's own extractor found in that README, not a copy
of it; regenerate it (only if the old README itself was wrong) with
``git show 161415a:README.md | .venv/bin/python -m tests.test_docs_moved > tests/docs_moved_fixture.json``.

- a heading is a Markdown heading outside code blocks; in docs it must be a heading too (case and spacing aside);
- a command line is a line of a ``bash``/``sh`` code block (backslash continuations joined, comments dropped), a line
  of an unlabelled block that runs ``owleval``, or an inline ``owleval ...`` code span; compared token by token;
- a CSV column name is a name in an inline code span that lists three or more comma-separated names (``annotator,
  model_id, question_id, ...``), or in the first cell of a table whose header is ``column``; in docs it must appear
  in a code span.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

from tests.test_docs_commands import _FENCE, _INLINE, SHELL_LANGS, command_lines, invocations

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).with_name("docs_moved_fixture.json")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def _prose(text: str) -> str:
    """The text with every fenced code block blanked (line count kept)."""
    return _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def _normal(text: str) -> str:
    return " ".join(text.split()).lower()


def _tokens(line: str) -> str:
    try:
        return " ".join(shlex.split(line, comments=True))
    except ValueError:
        return " ".join(line.split())


def headings(text: str) -> list[str]:
    return [" ".join(m.group(1).split()) for m in _HEADING.finditer(_prose(text))]


def commands(text: str) -> list[str]:
    found = []
    for fence in _FENCE.finditer(text):
        lang = fence.group(1)
        if lang not in SHELL_LANGS:
            continue
        for _, line in command_lines(fence.group(0)):  # the block's lines, continuations joined
            if lang == "" and not list(invocations(line)):  # a layout or other listing, not commands
                continue
            if tokens := _tokens(line):
                found.append(tokens)
    found += [_tokens(span) for _, span in command_lines(_prose(text))]  # inline `owleval ...` spans
    return list(dict.fromkeys(found))


def _table_first_cells(text: str) -> list[str]:
    cells, in_columns_table = [], False
    for line in text.splitlines():
        if not line.startswith("|"):
            in_columns_table = False
            continue
        first = line.strip("|").split("|")[0].strip()
        if first == "column":
            in_columns_table = True
        elif in_columns_table and not set(first) <= set("-: "):
            cells.append(first)
    return cells


def columns(text: str) -> list[str]:
    prose, found = _prose(text), []
    for span in _INLINE.finditer(prose):
        items = [item.strip() for item in span.group(2).replace("[", "").replace("]", "").split(",")]
        if len(items) >= 3 and all(_NAME.fullmatch(item) for item in items):
            found += items
    for cell in _table_first_cells(prose):
        found += [name for span in _INLINE.finditer(cell) for name in re.split(r"[^\w]+", span.group(2)) if _NAME.fullmatch(name)]
    return list(dict.fromkeys(found))


def extract(text: str) -> dict[str, list[str]]:
    return {"headings": headings(text), "commands": commands(text), "columns": columns(text)}


def _docs() -> list[str]:
    return [path.read_text(encoding="utf-8") for path in sorted((ROOT / "docs").glob("**/*.md"))]


def test_the_fixture_is_what_the_extractor_finds_in_a_full_readme() -> None:
    moved = json.loads(FIXTURE.read_text(encoding="utf-8"))
    assert len(moved["headings"]) >= 20 and len(moved["commands"]) >= 80 and len(moved["columns"]) >= 45
    assert "owleval data fetch --from ../shared/owleval_82q" in moved["commands"]
    assert {"annotator", "model_a", "ppi_py_rows", "ref_coef"} <= set(moved["columns"])


def test_every_heading_of_the_old_readme_is_a_heading_in_the_docs() -> None:
    moved = json.loads(FIXTURE.read_text(encoding="utf-8"))["headings"]
    present = {_normal(h) for text in _docs() for h in headings(text)}
    assert [h for h in moved if _normal(h) not in present] == []


def test_every_command_line_of_the_old_readme_is_in_the_docs() -> None:
    moved = json.loads(FIXTURE.read_text(encoding="utf-8"))["commands"]
    present = {c for text in _docs() for c in commands(text)}
    assert [c for c in moved if c not in present] == []


def test_every_csv_column_of_the_old_readme_is_named_in_the_docs() -> None:
    moved = json.loads(FIXTURE.read_text(encoding="utf-8"))["columns"]
    present = {name for text in _docs() for span in _INLINE.finditer(_prose(text)) for name in re.split(r"[^\w]+", span.group(2))}
    assert [c for c in moved if c not in present] == []


def test_the_extractor_finds_headings_commands_and_columns_and_skips_listings() -> None:
    text = ("# Title\n\n## `owleval data` — the set\n\n```bash\n# a comment line\nowleval data fetch \\\n"
            "    --from DIR   # local\npip install .\n```\n\n```\nowleval/   the package\nowleval rate\n```\n\n"
            "```python\nimport owleval\n```\n\nRun `owleval rate --db s.sqlite`; it writes `a, b_c, d[, e]`.\n\n"
            "| column | meaning |\n|---|---|\n| `x_1`, `y` | z |\n\n| ability | meaning |\n|---|---|\n| `q` | r |\n")
    assert extract(text) == {
        "headings": ["Title", "`owleval data` — the set"],
        "commands": ["owleval data fetch --from DIR", "pip install .", "owleval rate", "owleval data", "owleval rate --db s.sqlite"],
        "columns": ["a", "b_c", "d", "e", "x_1", "y"],
    }


if __name__ == "__main__":  # the fixture, from a README on stdin
    json.dump(extract(sys.stdin.read()), sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")
