"""The shape of the code (STYLE.md 15): no import circles, no private name used across modules.

Read from the sources (ast), so an import inside a function counts as much as one at the top:
either can close a circle that only shows in some import orders.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "dicomkit"
# Packages held to "no circle"; dicom/, pacs/ and tutor/ still have some: add them once untangled.
NO_CIRCLES = ("dicomkit.engines",)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_from(node: ast.ImportFrom, module: str, path: Path) -> str:
    """The absolute module a ``from ... import`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, *([node.module] if node.module else [])])


def scan(module: str, path: Path) -> tuple[set[str], list[str]]:
    """The dicomkit modules ``module`` imports, and its uses of another module's private names."""
    tree = ast.parse(path.read_text(), str(path))
    imports: set[str] = set()
    private: list[str] = []
    aliases: dict[str, str] = {}  # local name -> dicomkit module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    imports.add(alias.name)
                    if alias.asname:
                        aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            source = imported_from(node, module, path)
            if source.split(".")[0] != "dicomkit":
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in MODULES:
                    imports.add(submodule)
                    aliases[alias.asname or alias.name] = submodule
                    continue
                imports.add(source)
                if is_private(alias.name) and source != module:
                    private.append(f"line {node.lineno}: from {source} import {alias.name}")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and aliases[node.value.id] != module
            and is_private(node.attr)
        ):
            private.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return {m for m in imports if m in MODULES and m != module}, private


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


GRAPH = {m: scan(m, p)[0] for m, p in MODULES.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), i.e. import circles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_scan_sees_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert GRAPH["dicomkit.engines.native"] >= {
        "dicomkit.engines.process_lab",
        "dicomkit.engines.state",
    }


@pytest.mark.parametrize("package", NO_CIRCLES)
def test_no_import_circles(package: str) -> None:
    touching = [
        c for c in circles(GRAPH) if any(m == package or m.startswith(package + ".") for m in c)
    ]
    assert not touching, f"import circles: {touching}"


def test_no_private_name_used_across_modules() -> None:
    found = {m: scan(m, p)[1] for m, p in MODULES.items()}
    assert {m: uses for m, uses in found.items() if uses} == {}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("dicomkit.engines.")))
def test_each_engines_module_imports_alone(module: str) -> None:
    """In a fresh interpreter, so no other module has been imported first to hide a circle."""
    proc = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
