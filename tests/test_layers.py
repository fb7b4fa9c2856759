"""Layering: no import goes from a lower layer to a higher one, and no modules import each other in a circle.

Ranks (a module may import modules of the same or a lower rank)::

    0  reranker_core                                   common base
    1  training                                        data, teacher, student, export
    2  reranker_plugin.connection                      opensearch-py client from config
    3  reranker_plugin.node, reranker_plugin.mlcommons local node; ML Commons deploy path
    4  reranker_plugin.jobs                            data jobs against a live cluster
    5  reranker_plugin.cli                             the command line

Every ``import`` counts, at module level or inside a function (heavy imports are
lazy, but still dependencies), with relative imports resolved. Only explicit
imports are edges: the implicit import of a parent package is not.
"""
from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("reranker_core", "training", "reranker_plugin")
RANKS = {
    "reranker_core": 0,
    "training": 1,
    "reranker_plugin": 2,  # the package itself: only a docstring
    "reranker_plugin.connection": 2,
    "reranker_plugin.node": 3,
    "reranker_plugin.mlcommons": 3,
    "reranker_plugin.jobs": 4,
    "reranker_plugin.cli": 5,
}
Graph = Mapping[str, set[str]]


def rank(module: str) -> int:
    """The rank of ``module``: that of the longest prefix in RANKS."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in RANKS:
            return RANKS[prefix]
    raise KeyError(f"{module} is in no layer; add its package to RANKS")


def discover(root: Path = ROOT) -> dict[str, Path]:
    """Module name -> file, for every module of the three packages (a package is its ``__init__.py``)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports_of(module: str, source: str, modules: Iterable[str], is_package: bool = False) -> set[str]:
    """The modules among ``modules`` that ``source`` (the code of ``module``) imports, anywhere in the file."""
    known = set(modules)

    def ours(name: str) -> str | None:  # the longest known prefix: ``import a.b.c`` depends on module a.b.c
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            if ".".join(parts[:end]) in known:
                return ".".join(parts[:end])
        return None

    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{node.module}" if node.module else package
            else:
                base = node.module or ""
            # ``from pkg import name`` depends on pkg.name when that is a module, else on pkg
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        found |= {t for t in map(ours, targets) if t and t != module}
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = discover(root)
    return {name: imports_of(name, path.read_text(encoding="utf-8"), modules, path.name == "__init__.py")
            for name, path in modules.items()}


def upward_imports(graph: Graph) -> list[str]:
    """Every import that goes to a higher rank, as ``"a (rank) -> b (rank)"``."""
    return [f"{a} ({rank(a)}) -> {b} ({rank(b)})" for a in sorted(graph) for b in sorted(graph[a]) if rank(b) > rank(a)]


def find_cycle(graph: Graph) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_every_module_has_a_layer(graph):
    # every layer was found, and every Python file of the layered packages (counted apart from discover) with it
    assert set(RANKS) <= set(graph)
    tops = {name.split(".")[0] for name in RANKS}
    assert len(graph) == sum(1 for top in tops for _ in (ROOT / top).rglob("*.py"))
    assert "reranker_core.errors" in graph["reranker_plugin.cli.app"]  # imports are resolved, not just listed
    for module in graph:
        rank(module)


def test_no_import_goes_to_a_higher_layer(graph):
    assert upward_imports(graph) == []


def test_no_import_cycle(graph):
    assert find_cycle(graph) is None


def test_cli_verb_modules_import_only_app(graph):
    """Only reranker_plugin.cli (its __init__) assembles the verbs; a verb module reaches the others through the group."""
    for module, targets in graph.items():
        if module.startswith("reranker_plugin.cli."):
            assert {t for t in targets if t.startswith("reranker_plugin.cli")} <= {"reranker_plugin.cli.app"}, module


def test_the_checks_catch_an_upward_import_and_a_cycle():
    modules = ["reranker_core.errors", "training.models", "reranker_plugin.jobs.search", "reranker_plugin.cli.app",
               "reranker_plugin.cli"]
    # a function-level relative import, resolved against a module two packages deep
    source = "import os\n\ndef f():\n    from ..cli import app\n    from . import search\n"
    edges = imports_of("reranker_plugin.jobs.evaluate", source, [*modules, "reranker_plugin.jobs.evaluate"])
    assert edges == {"reranker_plugin.cli.app", "reranker_plugin.jobs.search"}
    assert upward_imports({"reranker_plugin.jobs.evaluate": edges}) == [
        "reranker_plugin.jobs.evaluate (4) -> reranker_plugin.cli.app (5)"]
    assert imports_of("reranker_core.errors", "from training.models import read_meta\n", modules) == {"training.models"}
    assert upward_imports({"reranker_core.errors": {"training.models"}, "training.models": {"reranker_core.errors"}})
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    with pytest.raises(KeyError, match="in no layer"):
        rank("somewhere_else.module")
