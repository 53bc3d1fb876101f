"""The import graph of distillkit between its parts, read from the source with ``ast``.

``python -m distillkit.tools.import_graph`` prints, for each part (a subpackage or a
top-level module), the parts it imports, marking imports made inside a function, then
every import that runs upward against :data:`LAYERS` and every cycle between parts.
Exit status 1 when there is an upward import or a cycle (a test runs this).
"""
from __future__ import annotations

import ast
import os
import sys
from collections import defaultdict
from typing import Dict, List, Set, Tuple

# Bottom to top: a part may import parts of its own layer or below (never a cycle).
LAYERS = [
    ["errors"],
    ["registry", "utils", "members"],
    ["config", "hooks", "plugins"],
    ["data", "models", "losses"],
    ["model_side"],
    ["engine"],
    ["tasks", "multi"],
    ["experiment"],
    ["runner", "tools", "api"],
    ["cli"],
    ["__init__", "__main__"],
]
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}
PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _module_name(path: str) -> str:
    relative = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
    return relative[: -len(".__init__")] if relative.endswith(".__init__") else relative


def _part(module: str) -> str:
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "__init__"


def _imports(path: str) -> List[Tuple[str, bool]]:
    """``(imported distillkit module, inside a function)`` for each import in ``path``."""
    module = _module_name(path)
    is_package = path.endswith("__init__.py")
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".")
                    base = base[: len(base) - child.level + (1 if is_package else 0)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.split(".")[0] == "distillkit":
                    names = [f"{target}.{a.name}" if not child.module or child.level else target for a in child.names]
                    found.extend((name, in_function) for name in (names if child.module is None else [target]))
            elif isinstance(child, ast.Import):
                found.extend((a.name, in_function) for a in child.names if a.name.split(".")[0] == "distillkit")
            visit(child, nested)

    visit(tree, False)
    return found


def graph() -> Dict[Tuple[str, str], Set[str]]:
    """``{(from part, to part): {'from.module -> to.module [in function]', ...}}``."""
    edges: Dict[Tuple[str, str], Set[str]] = defaultdict(set)
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                source = _module_name(path)
                for target, in_function in _imports(path):
                    a, b = _part(source), _part(target)
                    if a != b:
                        edges[(a, b)].add(f"{source} -> {target}" + (" [in function]" if in_function else ""))
    return edges


def inner_deferred() -> List[str]:
    """Imports inside functions between modules of the same part (e.g. config.tags -> config.loader)."""
    found = []
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                source = _module_name(path)
                found += [f"{source} -> {target} [in function]" for target, in_function in _imports(path)
                          if in_function and _part(source) == _part(target)]
    return found


def cycles(edges) -> List[List[str]]:
    adjacency = defaultdict(set)
    for a, b in edges:
        adjacency[a].add(b)
    found = []
    for start in sorted(adjacency):
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(adjacency[node]):
                if nxt == start and sorted(path) not in [sorted(c) for c in found]:
                    found.append(path)
                elif nxt not in path and nxt > start:
                    stack.append((nxt, path + [nxt]))
    return found


def main() -> int:
    edges = graph()
    for part in sorted({a for a, _ in edges}, key=lambda p: (RANK.get(p, 99), p)):
        targets = sorted((b for a, b in edges if a == part), key=lambda p: (RANK.get(p, 99), p))
        marks = [b + ("*" if any("[in function]" in e for e in edges[(part, b)]) else "") for b in targets]
        print(f"{part:12s} -> {', '.join(marks)}")
    print("(* = imported inside a function somewhere)")
    upward = [(a, b) for a, b in edges if RANK.get(a, 99) < RANK.get(b, 99)]
    for a, b in sorted(upward):
        print(f"UPWARD {a} -> {b}: " + "; ".join(sorted(edges[(a, b)])))
    found = cycles(edges)
    for cycle in found:
        print("CYCLE " + " -> ".join(cycle + [cycle[0]]))
    deferred = sorted(e for group in edges.values() for e in group if "[in function]" in e)
    deferred += sorted(inner_deferred())
    for edge in deferred:
        print(f"DEFERRED {edge}")
    print(f"{len(upward)} upward imports, {len(found)} cycles, {len(deferred)} distillkit imports inside functions")
    return 1 if upward or found or deferred else 0


if __name__ == "__main__":
    sys.exit(main())
