"""No import cycles in the app: the modules' top-level imports form a graph without loops,
each webhooks and handler module imports on its own in a fresh interpreter, whichever of them
comes first, and every import inside a function says why it is there."""
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
    "chalicelib.domain.webhooks.urls", "chalicelib.handlers.payments",
    "chalicelib.handlers.platform", "chalicelib.handlers.accounts", "chalicelib.handlers.jobs",
    "chalicelib.handlers.tasks", "chalicelib.handlers.quality", "chalicelib.handlers.rounds",
    "chalicelib.handlers.redundancy", "chalicelib.handlers.qualifications", "chalicelib.api.views",
])
def test_each_module_imports_first_in_a_fresh_interpreter(module):
    run = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT,
                         env={**os.environ, **FAKE_ENV}, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def late_imports_without_a_reason() -> list[str]:
    """Imports inside functions (or classes) of the app with no comment saying why: on the
    import's own line, on the first line of its run of imports, or on the line above the run.
    (The reasons allowed: a heavy library loaded when first needed, kept off the API's import
    path, or the Lambda's cold start.)"""
    found = []
    for name, path in _modules().items():
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        top = set(map(id, _top_level_imports(tree))) | {
            id(sub) for node in tree.body if isinstance(node, ast.If)
            for sub in ast.walk(node) if isinstance(sub, (ast.Import, ast.ImportFrom))}
        imports = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
        starts = {node.end_lineno: node.lineno for node in imports}  # last line -> first line
        for node in imports:
            if id(node) in top:
                continue
            first = node.lineno  # the first line of the run of imports (blank lines within)
            while True:
                above = first - 1
                while above > 0 and not lines[above - 1].strip() and above - 1 in starts:
                    above -= 1
                if above not in starts:
                    break
                first = starts[above]
            said = [lines[node.lineno - 1], lines[first - 1], lines[first - 2] if first > 1 else ""]
            if not any("#" in line for line in said):
                found.append(f"{name}:{node.lineno}")
    return found


def test_every_late_import_says_why():
    assert late_imports_without_a_reason() == []
