"""The import graph of ``src/terratorch`` follows the layering of ``docs/architecture.md``.

Read with :mod:`ast`, nothing is imported. The rule: **module-level imports** (including those in
class bodies and under ``if``/``try`` at module level) form the graph that must have no cycles and
must point inward (``iterate → tasks → models → registry``). Imports inside functions and under
``if TYPE_CHECKING:`` run later or never, so they may point anywhere (that is how a registry loads
a model module on first lookup) — with one exception: ``registry/`` imports nothing from
``models/`` at all; it names model modules only as strings in its lazy manifest.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import terratorch

SRC = Path(terratorch.__file__).resolve().parent
#: What ``models/`` must not import at module level (DESIGN.md: models know nothing of training).
MODELS_MUST_NOT_IMPORT = (
    "terratorch.tasks",
    "terratorch.iterate",
    "terratorch.cli",
    "terratorch.cli_tools",
    "lightning",
    "pytorch_lightning",
)


@dataclass(frozen=True)
class Import:
    """One import statement: who imports what, where, and whether it runs at module import time."""

    source: str
    target: str
    line: int
    module_level: bool

    def __str__(self) -> str:
        return f"{self.source}:{self.line} imports {self.target}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = _absolute(module, node)
    yield base
    for alias in node.names:  # ``from pkg import submodule`` imports the submodule too
        if f"{base}.{alias.name}" in MODULES:
            yield f"{base}.{alias.name}"


def _walk(module: str, body: list[ast.stmt], module_level: bool) -> Iterator[Import]:
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for target in _targets(module, node):
                yield Import(module, target, node.lineno, module_level)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from _walk(module, node.body, False)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _walk(module, node.body, False)
            yield from _walk(module, node.orelse, module_level)
        else:  # class bodies, if/try/with blocks at module level run at import time
            for field in ("body", "orelse", "finalbody", "handlers"):
                children = getattr(node, field, None)
                if isinstance(children, list):
                    yield from _walk(module, [c for c in children if isinstance(c, ast.stmt)], module_level)
                    for handler in children:
                        if isinstance(handler, ast.ExceptHandler):
                            yield from _walk(module, handler.body, module_level)


IMPORTS = [
    imp for module, path in MODULES.items() for imp in _walk(module, ast.parse(path.read_text()).body, True)
]


def _in(target: str, package: str) -> bool:
    return target == package or target.startswith(package + ".")


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_graph_was_read():
    assert "terratorch.registry.registry" in MODULES and "terratorch.models.necks" in MODULES
    assert any(i.source == "terratorch.models.necks" and i.target == "terratorch.registry" for i in IMPORTS)


def test_cycle_detector_finds_mutual_and_self_imports():
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}, "d": {"d"}}) == [["a", "b"], ["d"]]


def test_no_import_cycles_between_modules():
    edges: dict[str, set[str]] = {}
    for imp in IMPORTS:
        if imp.module_level and imp.target in MODULES and imp.target != imp.source:
            edges.setdefault(imp.source, set()).add(imp.target)
    cycles = _cycles(edges)
    report = []
    for members in cycles:
        lines = [str(i) for i in IMPORTS if i.module_level and i.source in members and i.target in members]
        report.append(" <-> ".join(members) + "\n    " + "\n    ".join(lines))
    assert not cycles, "module-level import cycles:\n" + "\n".join(report)


def test_registry_imports_nothing_from_models():
    offenders = [
        str(i) for i in IMPORTS if _in(i.source, "terratorch.registry") and _in(i.target, "terratorch.models")
    ]
    assert not offenders, offenders


@pytest.mark.parametrize("forbidden", MODELS_MUST_NOT_IMPORT)
def test_models_do_not_import_training_layers_at_module_level(forbidden):
    offenders = [
        str(i)
        for i in IMPORTS
        if i.module_level and _in(i.source, "terratorch.models") and _in(i.target, forbidden)
    ]
    assert not offenders, offenders
