"""The import graph has no cycle, and no import inside a function closes one.

The import-linter contracts in pyproject.toml (run by ``make test``) hold the
layering; a layers contract does not see a cycle between modules of one layer,
nor one through a module it does not list. This test looks at the whole graph.
"""

from __future__ import annotations

import linecache
from collections.abc import Iterable

import grimp
import pytest

import fieldstation


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("fieldstation", exclude_type_checking_imports=True)


def _imports(graph: grimp.ImportGraph) -> dict[str, set[str]]:
    return {module: set(graph.find_modules_directly_imported_by(module)) for module in graph.modules}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(iter(children), None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back(graph: grimp.ImportGraph) -> None:
    assert _cycles(_imports(graph)) == []


def _lazy_imports(graph: grimp.ImportGraph) -> list[tuple[str, str, int]]:
    """(importer, imported, line) of every import written inside a function or method."""
    lazy = []
    for importer in sorted(graph.modules):
        path = _source_file(importer)
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            for detail in graph.get_import_details(importer=importer, imported=imported):
                line = linecache.getline(path, detail["line_number"])
                if line[: len(line) - len(line.lstrip())]:
                    lazy.append((importer, imported, detail["line_number"]))
    return lazy


def _source_file(module: str) -> str:
    root = fieldstation.__file__.rsplit("/", 1)[0]
    parts = module.split(".")[1:]
    if not parts:
        return f"{root}/__init__.py"
    folder = "/".join([root, *parts])
    try:
        with open(f"{folder}/__init__.py"):
            return f"{folder}/__init__.py"
    except FileNotFoundError:
        return f"{folder}.py"


def test_no_lazy_import_closes_a_cycle(graph: grimp.ImportGraph) -> None:
    """A lazy import is fine where it keeps start-up fast; none may be the way back up a cycle."""
    lazy = _lazy_imports(graph)
    assert lazy, "the finder found no import inside a function; the app factory has several"
    closing = [
        (importer, imported, line)
        for importer, imported, line in lazy
        if graph.find_shortest_chain(importer=imported, imported=importer) is not None
    ]
    assert closing == [], f"{len(lazy)} lazy imports, of which these close a cycle"
