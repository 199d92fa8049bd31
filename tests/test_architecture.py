"""The package's layout as ARCHITECTURE.md writes it: every module listed, imports one way, no cycle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bayes_lsl"


def _layers() -> dict[str, int]:
    """Module name -> layer number, from ARCHITECTURE.md's numbered sections."""
    layers, layer = {}, None
    for line in (ROOT / "ARCHITECTURE.md").read_text().splitlines():
        heading = re.match(r"## (\d+)\.", line)
        if heading:
            layer = int(heading.group(1))
        item = re.match(r"- `(bayes_lsl/[\w/]+)\.py`", line)
        if item and layer is not None:
            layers[_module_name(item.group(1))] = layer
    return layers


def _module_name(path: str) -> str:
    name = path.replace("/", ".")
    return name.removesuffix(".__init__")


def _modules() -> dict[str, Path]:
    return {_module_name(str(p.relative_to(ROOT).with_suffix(""))): p for p in PACKAGE.rglob("*.py")}


def _imports(tree: ast.AST, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``tree`` imports, at top level or inside functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from pkg import sub`` imports the module pkg.sub when there is one.
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                     for a in node.names]
        else:
            continue
        found |= {name for name in names if name in modules}
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(ast.parse(path.read_text()), modules) - {name} for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules around it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_every_module_is_listed_and_every_listed_module_exists():
    listed, present = set(_layers()), set(_modules())
    assert not present - listed, f"modules missing from ARCHITECTURE.md: {sorted(present - listed)}"
    assert not listed - present, f"ARCHITECTURE.md lists modules that do not exist: {sorted(listed - present)}"


def test_no_import_cycle():
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def _function_level(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``path`` imports only inside functions."""
    tree = ast.parse(path.read_text())
    top = ast.Module(body=[n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)], type_ignores=[])
    return _imports(tree, modules) - _imports(top, modules)


def test_imports_go_one_way():
    layers, modules = _layers(), _modules()
    # The one exception, written in ARCHITECTURE.md: a result's ``.plot()`` imports the figures when called.
    allowed = {(a, "bayes_lsl.plots") for a, path in modules.items()
               if "bayes_lsl.plots" in _function_level(path, modules)}  # fmt: skip
    upward = [f"{a} (layer {layers[a]}) imports {b} (layer {layers[b]})"
              for a, targets in _graph().items() for b in targets
              if a in layers and b in layers and layers[b] > layers[a] and (a, b) not in allowed]  # fmt: skip
    assert not upward, "imports against the flow:\n" + "\n".join(sorted(upward))


@pytest.mark.parametrize(
    ("graph", "expected"),
    [({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]), ({"a": {"b"}, "b": set()}, None)],
)
def test_the_cycle_finder_finds_cycles(graph, expected):
    assert _cycle(graph) == expected
