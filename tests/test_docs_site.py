"""The docs site: ``mkdocs build --strict`` passes offline, its command reference (generated at build time from the
CLI) holds every command and option, every page the nav names exists, and formats.md documents every column the
report and the study files write."""

from __future__ import annotations

import html
import importlib
import importlib.util
import os
import pkgutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import typer
import yaml

from owleval.cli import app
from owleval.cli_help import walk_commands
from tests.timing import budget

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
#: guides the nav may list before they are written (mkdocs.yml's `validation.nav.not_found` would have to be `info`
#: meanwhile); all nine are in, so the strict build checks the nav.
PENDING_GUIDES: set[str] = set()


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cli_reference_hook", DOCS / "hooks" / "cli_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _command_titles() -> list[str]:
    return [" ".join(("owleval", *path)) for path, _ in walk_commands(typer.main.get_command(app))]


def _nav_pages(entries: list) -> list[str]:
    pages = []
    for entry in entries:
        for value in entry.values() if isinstance(entry, dict) else [entry]:
            pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_strict_build_passes_offline_and_the_reference_names_every_command(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(site)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=budget(300))
    assert done.returncode == 0, done.stderr[-3000:]
    page = html.unescape((site / "reference" / "commands" / "index.html").read_text(encoding="utf-8"))
    missing = [title for title in _command_titles() if f"<code>{title}</code>" not in page]
    assert missing == []
    assert not list(site.rglob("hooks")), "the build hook is not published"


def test_the_generated_reference_has_every_command_and_option() -> None:
    text = _hook().render_reference()
    root = typer.main.get_command(app)
    for path, command in walk_commands(root):
        title = " ".join(("owleval", *path))
        assert f"## `{title}`" in text, title
        section = text.split(f"## `{title}`", 1)[1].split("\n## ", 1)[0]
        for param in command.params:
            for opt in [*param.opts, *param.secondary_opts]:
                name = opt if opt.startswith("-") else (param.metavar or param.name)
                assert name in section, f"{title}: {name}"
        assert "Usage: " in section and "{" not in section.split("Usage: ", 1)[1].split("\n", 1)[0]


def test_the_reference_keeps_help_text_literal() -> None:
    hook = _hook()
    assert hook._inline("files <out>.jsonl, *.jsonl and a|b; see `owleval models`") == (
        r"files &lt;out&gt;.jsonl, \*.jsonl and a\|b; see `owleval models`"
    )
    blocks = hook._help_blocks("Does a thing.\n\nExamples: owleval models ;  owleval models openai")
    assert blocks == ["Does a thing.", "```bash\nowleval models\nowleval models openai\n```"]


def test_every_nav_page_exists_or_is_a_pending_guide() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    pages = _nav_pages(config["nav"])
    generated = {_hook().PAGE}
    missing = {p for p in pages if p not in generated and not (DOCS / p).is_file()}
    assert missing <= PENDING_GUIDES, missing - PENDING_GUIDES
    assert {"index.md", "formats.md", "statistics.md", "reference/commands.md"} <= set(pages)
    assert not {p for p in config.get("plugins", []) if isinstance(p, (str, dict)) and str(p).startswith(("social", "privacy"))}


#: column constants of frames that stay in memory (no file has these columns)
IN_MEMORY = {"FRAME_COLUMNS", "PROBABILITY_COLUMNS"}  # PROBABILITY_COLUMNS: --combine ds posteriors (owleval.report.combine)


def _column_constants() -> dict[str, tuple[str, ...]]:
    """Every ``*_COLUMNS`` constant of owleval.report (the files the report writes) and of the study exports,
    except the in-memory frames' (FRAME_COLUMNS) and the required subsets."""
    import owleval.report

    modules = [f"owleval.report.{m.name}" for m in pkgutil.iter_modules(owleval.report.__path__)]
    modules += ["owleval.study.export", "owleval.study.sample", "owleval.study.votes", "owleval.quality.table", "owleval.quality.voters"]
    found = {}
    for name in modules:
        for key, value in vars(importlib.import_module(name)).items():
            if key.endswith("_COLUMNS") and isinstance(value, (tuple, list)) and key not in IN_MEMORY and not key.startswith("REQUIRED"):
                found[f"{name}.{key}"] = tuple(value)
    return found


def test_formats_documents_every_column_of_the_report_tables() -> None:
    text = (DOCS / "formats.md").read_text(encoding="utf-8")
    constants = _column_constants()
    assert len(constants) >= 15
    missing = {where: [c for c in columns if f"`{c}`" not in text] for where, columns in constants.items()}
    assert {where: cols for where, cols in missing.items() if cols} == {}
