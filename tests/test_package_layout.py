"""The package layout shows the flow: no import cycles between the packages of ``owleval/`` nor between files.

The import graph is read from the source (AST), so an import inside a function counts like one at the top, and
imports under ``if TYPE_CHECKING:`` are ignored (they never run). A subpackage of ``owleval/`` is one node; a
top-level module of ``owleval/`` is a node of its own.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "owleval"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Every dotted name an import statement of ``tree`` can load (``from a import b`` yields ``a`` and ``a.b``)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            todo.extend(node.orelse)  # the TYPE_CHECKING block never runs; an else branch does
            continue
        todo.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            yield source
            yield from (f"{source}.{alias.name}" for alias in node.names)


def import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(package graph, file graph) of ``owleval``: node -> the nodes it imports."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    packages: dict[str, set[str]] = {}
    modules: dict[str, set[str]] = {}
    for module, path in files.items():
        own = module.split(".")[1] if "." in module else module
        for name in imported_names(ast.parse(path.read_text(encoding="utf-8")), module, path.name == "__init__.py"):
            if not name.startswith("owleval."):
                continue
            other = name.split(".")[1]
            if other != own and any(f == f"owleval.{other}" or f.startswith(f"owleval.{other}.") for f in files):
                packages.setdefault(own, set()).add(other)
            target = name
            while target and target not in files:
                target = target.rpartition(".")[0]
            if target and target != module and not module.startswith(f"{target}."):  # a package's own __init__ is not a cycle
                modules.setdefault(module, set()).add(target)
    return packages, modules


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(set(graph) | {n for targets in graph.values() for n in targets}):
        if node not in index:
            visit(node)
    return found


def test_no_two_packages_of_owleval_import_each_other_directly_or_around_a_circle():
    packages, _ = import_graph()
    assert cycles(packages) == []
    assert {"study", "screens", "report", "judge", "quality", "records"} <= set(packages) | {p for t in packages.values() for p in t}


def test_no_file_of_owleval_imports_itself_around_a_circle():
    _, modules = import_graph()
    assert cycles(modules) == []


@pytest.mark.parametrize(
    ("lower", "upper"),
    [("study", "report"), ("study", "screens"), ("study", "judge"), ("records", "study"), ("quality", "report"), ("judge", "report")],
)
def test_the_lower_layer_never_imports_the_upper_one(lower: str, upper: str):
    packages, _ = import_graph()
    assert upper not in packages.get(lower, set())


def test_the_graph_sees_function_level_imports_and_skips_type_checking_blocks(tmp_path: Path):
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from owleval.report import build\n"
        "def f():\n    from owleval.study import store\n    from . import sibling\n"
    )
    names = set(imported_names(ast.parse(source), "owleval.screens.page", is_package=False))
    assert {"owleval.study.store", "owleval.screens.sibling"} <= names
    assert not any(n.startswith("owleval.report") for n in names)
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_every_folder_of_owleval_says_in_two_lines_what_lives_there():
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc, f"{init} has no docstring"
        assert 1 <= len(doc.splitlines()) <= 2, f"{init}: {len(doc.splitlines())} lines"
