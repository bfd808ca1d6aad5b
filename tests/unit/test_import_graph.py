"""No import cycles in the app: the modules' top-level imports form a graph without loops,
and each webhooks module (with the ports it shares) imports on its own in a fresh
interpreter, whichever of them comes first."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.import_time import FAKE_ENV

ROOT = Path(__file__).resolve().parents[2]


def _modules() -> dict[str, Path]:
    paths = [*(ROOT / "chalicelib").rglob("*.py"), ROOT / "app.py"]
    return {".".join(part for part in path.relative_to(ROOT).with_suffix("").parts
                     if part != "__init__"): path for path in paths}


def _top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: not those inside functions, nor those
    under `if TYPE_CHECKING:` (annotations only)."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, (ast.If, ast.Try)):
            found += [sub for sub in ast.walk(node) if isinstance(sub, (ast.Import, ast.ImportFrom))]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
    return found


def import_graph() -> dict[str, set[str]]:
    """Each module of the app and the app's modules it imports at its top level."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in _top_level_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            else:
                base = node.module or ""
                targets |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules
                            else base for alias in node.names}
        graph[name] = {target for target in targets if target in modules and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back():
    graph = import_graph()
    assert "chalicelib.domain.webhooks.outbox" in graph["chalicelib.domain.webhooks"]
    assert cycles(graph) == []


@pytest.mark.parametrize("module", [
    "chalicelib.domain.ports", "chalicelib.domain.webhooks.types",
    "chalicelib.domain.webhooks.outbox", "chalicelib.domain.webhooks.delivery",
    "chalicelib.domain.webhooks.endpoints", "chalicelib.domain.webhooks.signing",
    "chalicelib.domain.webhooks.urls", "chalicelib.domain.payments", "chalicelib.domain.reviews",
    "chalicelib.domain.services", "chalicelib.api.views",
])
def test_each_module_imports_first_in_a_fresh_interpreter(module):
    run = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT,
                         env={**os.environ, **FAKE_ENV}, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
