#!/usr/bin/env python3
"""`make lint`'s architecture rules: no import cycle in reprobuild/, no module over 700 lines.

Why: a cycle means two stages cannot be understood (or tested, or replaced) apart,
and a module that outgrows one screenful of responsibilities hides bugs. Both
creep in one line at a time, so a machine checks them on every `make lint`.

Imports are read with `ast`, never executed. Every import counts, at module
level or inside a function (a lazy import is still a dependency) except those
under `if TYPE_CHECKING:` (annotations only, never run). `from pkg import name`
is an edge to `pkg.name` when that is a module, else to `pkg`; the implicit
import of a parent package's `__init__` is not an edge (a package that
re-exports its submodules would otherwise be in a cycle with each of them).

A third rule keeps distributions in their packages: outside
``reprobuild/archives/<distribution>/`` no code compares a value with a
format or distribution name (``== "deb"``, ``in ("alpm", ...)``): such code
asks the snapshot's ``PackageFormat`` instead (docs/adding-a-distribution.md).

A fourth rule keeps the stages apart (ARCHITECTURE.md, "What may import
what"): :data:`LAYERS` says, for a few packages, the only parts of reprobuild
they may import (``only``) or the parts they must not (``never``). The
language knows no archive or store, the store no recipe or distribution, a
distribution no build driver, diff nothing but trees; and only ``__main__``
imports the CLI, which parses and prints.

Modules still over the limit are listed in `scripts/architecture-allowlist.txt`
with a ceiling; the list only shrinks: a listed module may not pass its
ceiling, one that fell under the limit must be removed from it, and a module
not listed may not pass the limit.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

MAX_LINES = 700
ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "reprobuild"
ALLOWLIST = ROOT / "scripts" / "architecture-allowlist.txt"


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(src: Path) -> dict[str, Path]:
    """Every module of the package (symlinked data directories are not code)."""
    found: dict[str, Path] = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        if any(p.is_symlink() for p in path.relative_to(src).parents if str(p) != "."):
            continue
        found[module_name(path, src)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """ast.walk, leaving out the bodies of `if TYPE_CHECKING:`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield other
                yield from _walk(other)
            continue
        yield child
        yield from _walk(child)


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of `known` that module `name` (at `path`) imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in _walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = alias.name
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target:
                    out.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = name.split(".") if is_pkg else name.split(".")[:-1]
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in known:
                    out.add(full)
                elif base in known:
                    out.add(base)
    out.discard(name)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def cycle_path(graph: dict[str, set[str]], comp: list[str]) -> list[str]:
    """One shortest loop through a component's first module, to name in the message."""
    members = set(comp)
    start = comp[0]
    prev: dict[str, str] = {start: start}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & members):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(prev[path[-1]])
                return [*reversed(path), start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return comp


DISTRIBUTION_NAMES = ("deb", "alpm", "debian", "ubuntu", "archlinux")


def _is_name(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return node.value in DISTRIBUTION_NAMES
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_is_name(e) for e in node.elts)
    return False


def distribution_branches(path: Path) -> list[int]:
    """Lines comparing something with a format or distribution name."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return sorted(
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Compare)
        and any(_is_name(x) for x in (node.left, *node.comparators))
    )


def _in_distribution_package(rel: Path) -> bool:
    parts = rel.parts
    return len(parts) > 3 and parts[:2] == (PACKAGE, "archives")


# package -> ("only" | "never", prefixes): what its modules may import of reprobuild.
LAYERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "reprobuild.lang": (
        "only",
        ("reprobuild.lang", "reprobuild.canonical", "reprobuild.errors", "reprobuild.stepspec"),
    ),
    "reprobuild.diff": (
        "only",
        ("reprobuild.diff", "reprobuild.canonical", "reprobuild.errors", "reprobuild.tree"),
    ),
    "reprobuild.store": (
        "never",
        (
            "reprobuild.lang",
            "reprobuild.plan",
            "reprobuild.archives",
            "reprobuild.steps",
            "reprobuild.execute",
            "reprobuild.api",
            "reprobuild.cli",
        ),
    ),
    "reprobuild.archives": (
        "never",
        (
            "reprobuild.lang",
            "reprobuild.store",
            "reprobuild.execute",
            "reprobuild.buildgraph",
            "reprobuild.api",
            "reprobuild.cli",
            "reprobuild.diff",
            "reprobuild.verify",
        ),
    ),
    "reprobuild": ("never", ("reprobuild.cli",)),  # everything but __main__ (below)
}
LAYER_EXEMPT = frozenset({"reprobuild.__main__", "reprobuild.cli"})


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports :data:`LAYERS` forbids, most specific package's rule first."""
    problems = []
    for mod in sorted(graph):
        if mod in LAYER_EXEMPT:
            continue
        rules = [p for p in LAYERS if _under(mod, p)]
        for target in sorted(graph[mod]):
            for pkg in sorted(rules, key=len, reverse=True):
                kind, prefixes = LAYERS[pkg]
                hit = any(_under(target, p) for p in prefixes)
                if (kind == "only" and not hit) or (kind == "never" and hit):
                    problems.append(
                        f"{mod} imports {target}: {pkg} "
                        + ("may import only " if kind == "only" else "must not import ")
                        + ", ".join(prefixes)
                        + " (ARCHITECTURE.md, What may import what)"
                    )
                    break
    return problems


def read_allowlist(path: Path) -> dict[str, int]:
    allowed: dict[str, int] = {}
    if not path.exists():
        return allowed
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, count = line.partition(" ")
            allowed[name] = int(count)
    return allowed


def check(src: Path = ROOT, allowlist: Path = ALLOWLIST) -> list[str]:
    """Every violation, as a message naming the file and what to do."""
    mods = modules(src)
    known = set(mods)
    graph = {name: imports(name, path, known) for name, path in mods.items()}
    problems = []
    for comp in cycles(graph):
        loop = " -> ".join(cycle_path(graph, comp))
        problems.append(f"import cycle among {', '.join(comp)}: {loop}")
    problems.extend(layer_violations(graph))
    for path in sorted(mods.values()):
        rel = path.relative_to(src)
        if not _in_distribution_package(rel):
            for line in distribution_branches(path):
                problems.append(
                    f"{rel}:{line}: compares with a distribution or format name: ask the "
                    "snapshot's PackageFormat (reprobuild/archives/formats.py) instead"
                )
    allowed = read_allowlist(allowlist)
    listed = str(allowlist.relative_to(src)) if allowlist.is_relative_to(src) else str(allowlist)
    for path in sorted(mods.values()):
        rel = str(path.relative_to(src))
        lines = len(path.read_text(encoding="utf-8").splitlines())
        limit = allowed.pop(rel, None)
        if lines > MAX_LINES and limit is None:
            problems.append(f"{rel}: {lines} lines, over {MAX_LINES}: split it by responsibility")
        elif limit is not None and lines > limit:
            problems.append(
                f"{rel}: {lines} lines, over its allowance of {limit} in "
                f"{listed}: the allowlist only shrinks"
            )
        elif limit is not None and lines <= MAX_LINES:
            problems.append(f"{rel}: {lines} lines, under {MAX_LINES} now: remove it from {listed}")
    for rel in sorted(allowed):
        problems.append(f"{listed} lists {rel}, which does not exist")
    return problems


def main() -> int:
    problems = check()
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
