"""The package's layout holds: small modules, no import cycle, arrows from higher layers down only.

Run as a script to print the module table (lines) and the import graph between rooms::

    python tests/test_layout.py            # table + graph
    python tests/test_layout.py --modules  # every module-to-module arrow

Imports inside functions count like top-level ones: a lazy import is still an arrow.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rbcflow"
MAX_LINES = 400

# Lower number = lower layer. A module may import its own layer or lower ones, never higher.
LAYERS = {
    "rbcflow": 0,  # __init__ (version), errors, schema, config, model_settings
    "rbcflow.errors": 0,
    "rbcflow.schema": 0,
    "rbcflow.config": 0,
    "rbcflow.model_settings": 0,
    "rbcflow.run_settings": 0,  # how a run is carried out (limits, threads, batches): never hashed
    "rbcflow.threads": 0,  # thread budgets of torch, OpenCV, numba and BLAS (imports none of them)
    "rbcflow.memory": 0,  # peak and available memory, malloc thresholds (standard library only)
    "rbcflow.io": 1,
    "rbcflow.provenance": 1,
    "rbcflow.frontend": 2,
    "rbcflow.classify": 3,
    "rbcflow.training": 4,
    "rbcflow.synthetic": 4,
    "rbcflow.report": 5,
    "rbcflow.pipeline": 6,
    "rbcflow.batch": 7,
    "rbcflow.samples": 7,  # metadata sheets, one fraction per blood draw, the batch overview
    "rbcflow.review": 7,  # the review web application on a results folder
    "rbcflow.cli": 8,
    "rbcflow.__main__": 8,
}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Modules of the package that ``path`` imports (resolved to the longest known module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join([*pkg, base] if base else pkg)
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for t in targets:
            if not t.startswith("rbcflow"):
                continue
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(path, name, known) for name, path in mods.items()}


def layer_of(name: str) -> tuple[str, int]:
    """The room a module belongs to and its layer; ValueError for a module outside every room."""
    rooms = [k for k in LAYERS if name == k or (k != "rbcflow" and name.startswith(k + "."))]
    if not rooms:
        raise ValueError(f"{name} is in no room of LAYERS")
    best = max(rooms, key=len)
    return best, LAYERS[best]


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    for root in sorted(g):
        if state.get(root):
            continue
        stack = [(root, iter(sorted(g[root])))]
        path = [root]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                path.pop()
                state[node] = 2
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(sorted(g.get(nxt, ())))))
                path.append(nxt)
    return None


def upward_arrows(g: dict[str, set[str]]) -> list[str]:
    bad = []
    for src, dsts in g.items():
        room, lv = layer_of(src)
        for dst in dsts:
            droom, dlv = layer_of(dst)
            # a package's __init__ may gather its own modules
            if dlv > lv and not dst.startswith(src + "."):
                bad.append(f"{src} (layer {lv}) -> {dst} (layer {dlv})")
    return sorted(bad)


def line_counts() -> dict[str, int]:
    return {n: len(p.read_text(encoding="utf-8").splitlines()) for n, p in modules().items()}


def test_no_module_over_the_limit():
    big = {n: c for n, c in line_counts().items() if c > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_arrows_point_down():
    assert upward_arrows(graph()) == []


def test_every_module_has_a_layer():
    outside = []
    for name in modules():
        try:
            layer_of(name)
        except ValueError:
            outside.append(name)
    assert not outside, f"modules in no room of LAYERS: {outside}"


@pytest.mark.parametrize(
    "g, cycle",
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"a2"}, "a2": {"b"}, "b": {"a2"}}, ["a2", "b", "a2"]),
    ],
)
def test_cycle_finder_on_hand_built_graphs(g, cycle):
    assert find_cycle(g) == cycle


def _room(name: str) -> str:
    return layer_of(name)[0]


def main(argv: list[str]) -> int:
    g = graph()
    counts = line_counts()
    print(f"{'module':45s} lines")
    for n in sorted(counts):
        flag = "  OVER" if counts[n] > MAX_LINES else ""
        print(f"{n:45s} {counts[n]:5d}{flag}")
    print(f"{'total':45s} {sum(counts.values()):5d}\n")
    rooms: dict[str, set[str]] = defaultdict(set)
    for src, dsts in g.items():
        for dst in dsts:
            if _room(src) != _room(dst):
                rooms[_room(src)].add(_room(dst))
    print("room -> rooms it imports (layer in brackets)")
    for r in sorted(rooms, key=lambda r: (LAYERS[r], r)):
        deps = ", ".join(f"{d} [{LAYERS[d]}]" for d in sorted(rooms[r], key=lambda d: LAYERS[d]))
        print(f"  {r} [{LAYERS[r]}] -> {deps}")
    if "--modules" in argv:
        for src in sorted(g):
            for dst in sorted(g[src]):
                print(f"  {src} -> {dst}")
    cycle = find_cycle(g)
    up = upward_arrows(g)
    print("\ncycle:", " -> ".join(cycle) if cycle else "none")
    print("upward arrows:", "none" if not up else "")
    for u in up:
        print("  ", u)
    return 1 if cycle or up or any(c > MAX_LINES for c in counts.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
