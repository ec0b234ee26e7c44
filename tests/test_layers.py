"""The package import graph has no circle, counting imports made inside functions (docs/ARCHITECTURE.md,
"Layers"): a circle is how a spec check ends up importing the trainer, or the store the estimator."""

from __future__ import annotations

import ast
from pathlib import Path

import scalebench

ROOT = Path(scalebench.__file__).parent
COMMANDS = {"cli"}  # command modules (and *_cli) sit above every package and may import anything


def _unit(module: str) -> str:
    """The layer a module belongs to: its top-level package, or ``cli`` for a command module."""
    parts = module.split(".")
    if parts[-1] in COMMANDS or parts[-1].endswith("_cli"):
        return "cli"
    return parts[1] if len(parts) > 1 else ""


def _imports(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("scalebench"):
            found += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("scalebench")]
    return found


def _graph() -> dict[str, set[str]]:
    units = {p.stem if p.is_file() else p.name for p in ROOT.iterdir() if p.suffix == ".py" or p.is_dir()}
    edges: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
        src = _unit(module)
        for target in _imports(ast.parse(path.read_text(), str(path))):
            dst = _unit(target)
            if src and dst and src != dst and dst in units | {"cli"} and src != "__init__" and dst != "__init__":
                edges.setdefault(src, set()).add(dst)
    return edges


def _circle(edges: dict[str, set[str]]) -> list[str] | None:
    """One circle of the graph as a path (first == last), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_packages_import_one_way():
    edges = _graph()
    assert {"config", "sweep", "laws", "families"} <= set(edges)  # the walk saw the packages
    circle = _circle(edges)
    assert circle is None, "import circle: " + " -> ".join(circle or [])


def test_the_walk_finds_a_planted_circle():
    assert _circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _circle({"a": {"b"}, "b": {"c"}}) is None
    assert _unit("scalebench.laws.cli") == "cli" and _unit("scalebench.laws.hyper_cli") == "cli"
    assert _unit("scalebench.laws.fitting") == "laws"
