"""The package's import graph: no circles (type-only imports count), layers import downward,
and no module over 400 lines."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = {"gorums_mw": ROOT / "gorums_mw", "gorums_mw.interceptors": ROOT / "interceptors"}
MAX_LINES = 400

LAYERS = ("_identity", "_stream", "_calls", "_inbound")
"""Private subpackages, lowest first: each imports only from those before it
(and the shared modules at the top of ``gorums_mw``)."""


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            if path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
                continue
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """The package modules ``name`` imports, type-only imports included."""
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name if path.name == "__init__.py" else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(f"{target}."):
                yield target


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: set(imports(name, path, set(found))) for name, path in found.items()}


def test_no_import_circles() -> None:
    edges = graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                circle = [*path[path.index(target) :], target]
                pytest.fail("import circle: " + " -> ".join(circle))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)


def layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    return None


def test_layers_import_downward() -> None:
    for module, targets in graph().items():
        mine = layer(module)
        for target in targets:
            theirs = layer(target)
            if mine is not None and theirs is not None:
                assert theirs <= mine, f"{module} imports {target}, a layer above it"
            if layer(module) is not None or module.startswith("gorums_mw.interceptors"):
                assert not target.startswith(("gorums_mw._system", "gorums_mw._outbound")), (
                    f"{module} imports {target}: only the top wires a whole replica"
                )
            if not module.startswith("gorums_mw.interceptors") and module != "gorums_mw._system":
                assert not target.startswith("gorums_mw.interceptors"), (
                    f"{module} imports the grpc.aio glue {target}"
                )


def test_no_module_over_400_lines() -> None:
    long = {
        name: count
        for name, path in modules().items()
        if (count := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
