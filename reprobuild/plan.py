"""Evaluated recipe -> a DAG of content-addressed steps.

A step's key is the sha256 of the canonical JSON of its kind, its checked
parameters (inputs replaced by their keys, files by their content hash) and
the versions that shape its bytes. Two steps with the same key produce the
same bytes, so a key found in the store is never run again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from reprobuild import FORMAT_VERSION
from reprobuild.canonical import canonical_json
from reprobuild.errors import PlanError, SourceSpan
from reprobuild.lang.builtins import step_args
from reprobuild.lang.evaluate import Evaluator
from reprobuild.lang.values import AttrsValue, PathValue, StepValue, Value


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Step:
    """One node of the plan. ``params`` is canonical JSON (inputs as keys)."""

    key: str
    kind: str
    name: str
    params: str
    inputs: tuple[str, ...]
    location: str
    # Where each argument was written (for errors found after evaluation).
    spans: Mapping[str, SourceSpan] = field(default_factory=dict, compare=False, hash=False)

    @property
    def short(self) -> str:
        return self.key[:12]

    def param_data(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.params)
        return data


@dataclass(frozen=True)
class Plan:
    """The step graph: edges run from an input step to the step that uses it."""

    recipe: str
    steps: Mapping[str, Step]
    outputs: tuple[tuple[str, str], ...]  # (output name, step key), sorted by name
    graph: nx.DiGraph = field(compare=False, repr=False)

    def order(self) -> list[Step]:
        """Steps in a deterministic topological order (inputs first)."""
        keys = nx.lexicographical_topological_sort(self.graph, key=self._sort_key)
        return [self.steps[k] for k in keys]

    def _sort_key(self, key: str) -> str:
        s = self.steps[key]
        return f"{s.name}\0{key}"


# Steps whose bytes come from reprobuild's own gzip (export/gzipblocks.py);
# an oci_image's layers are gzip unless it says otherwise.
_GZIP_DEFAULT = {"tarball": None, "cpio": None, "oci_image": "gzip"}


def shaping_versions(kind: str, params: Mapping[str, Any]) -> dict[str, str]:
    """Versions of libraries whose output bytes a step depends on."""
    versions = {"reprobuild-format": str(FORMAT_VERSION)}
    compression = params.get("compression")
    if compression == "zstd":
        import zstandard

        versions["zstd"] = str(zstandard.ZSTD_VERSION)
    if kind in _GZIP_DEFAULT and (compression or _GZIP_DEFAULT[kind]) == "gzip":
        from reprobuild.export.gzipblocks import SCHEME

        versions["compressor"] = SCHEME
    return versions


def file_digest(path: PathValue) -> dict[str, str]:
    """A recipe file's identity: where it is in the recipe tree and its content."""
    p = Path(path.absolute)
    if p.is_file():
        return {"path": path.display(), "sha256": _hash_file(p)}
    if p.is_dir():
        return {"path": path.display(), "tree-sha256": _hash_tree(p)}
    raise PlanError(f"{path.display()}: no such file or directory (named by the recipe)")


def _hash_file(p: Path) -> str:
    from reprobuild.safecopy import open_regular

    h = hashlib.sha256()
    with open_regular(p, "a recipe's file input") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _hash_tree(root: Path) -> str:
    """Sorted listing of relative path, type, executable bit and content hash."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(
            filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        ):
            full = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if os.path.islink(full):
                entry = f"l {rel} {os.readlink(full)}"
            elif os.path.isdir(full):
                continue  # a link to a directory was handled above; a directory is walked
            else:  # a regular file; a device node, FIFO or socket is refused unread
                mode = "x" if os.access(full, os.X_OK) else "-"
                entry = f"f {rel} {mode} {_hash_file(Path(full))}"
            h.update(entry.encode() + b"\n")
        h.update(f"d {rel_dir}\n".encode())
    return h.hexdigest()


class _Planner:
    def __init__(self, ev: Evaluator) -> None:
        self.ev = ev
        self.args: dict[int, dict[str, Any]] = {}
        self.values: dict[int, StepValue] = {}
        self.names: dict[int, str] = {}
        self.graph = nx.DiGraph()

    def visit(self, root: StepValue, name: str) -> None:
        """Collect every step reachable from ``root``, breadth first, naming each."""
        queue: list[tuple[StepValue, str]] = [(root, name)]
        while queue:
            step, sname = queue.pop(0)
            sid = id(step)
            if sid in self.values:
                continue
            self.values[sid] = step
            explicit = step.args.attrs.get("name")
            self.names[sid] = step.hint if step.hint and "." in sname else sname
            self.graph.add_node(sid)
            args = step_args(self.ev, step)
            if explicit is not None and isinstance(args.get("name"), str):
                self.names[sid] = args["name"]
            self.args[sid] = args
            for arg_name, child in _child_steps(args):
                self.graph.add_edge(id(child), sid)
                queue.append((child, f"{self.names[sid]}.{arg_name}"))

    def check_acyclic(self) -> None:
        # find_cycle restarts an edge DFS from every node (quadratic on long
        # chains); the linear test first, find_cycle only to name a cycle.
        if nx.is_directed_acyclic_graph(self.graph):
            return
        try:
            cycle = nx.find_cycle(self.graph)
        except nx.NetworkXNoCycle:
            return
        parts = [
            f"{self.values[a].kind} '{self.names[a]}' ({self.values[a].span})" for a, _ in cycle
        ]
        parts.append(parts[0])
        raise PlanError(
            "the step graph has a cycle: " + " -> ".join(parts),
            hint="a step cannot use its own result, directly or through other steps",
        )

    def keyed(self) -> dict[int, Step]:
        out: dict[int, Step] = {}
        for sid in nx.topological_sort(self.graph):
            step = self.values[sid]
            args = self.args[sid]
            params = _params_json(args, out)
            inputs = tuple(sorted({out[id(c)].key for _, c in _child_steps(args)}))
            identity = {
                "kind": step.kind,
                "params": params,
                "versions": shaping_versions(step.kind, args),
            }
            key = sha256_hex(canonical_json(identity).encode())
            out[sid] = Step(
                key=key,
                kind=step.kind,
                name=self.names[sid],
                params=canonical_json(params),
                inputs=inputs,
                location=str(step.span),
                spans={"": step.span, **step.args.spans},
            )
        return out


def _child_steps(args: Mapping[str, Any]) -> Iterator[tuple[str, StepValue]]:
    def walk(label: str, x: Any) -> Iterator[tuple[str, StepValue]]:
        if isinstance(x, StepValue):
            yield label, x
        elif isinstance(x, list):
            for i, y in enumerate(x):
                yield from walk(f"{label}.{i}" if len(x) > 1 else label, y)
        elif isinstance(x, dict):
            for k in sorted(x):
                yield from walk(f"{label}.{k}", x[k])

    for name in sorted(args):
        yield from walk(name, args[name])


def _params_json(args: Mapping[str, Any], keyed: Mapping[int, Step]) -> dict[str, Any]:
    def conv(x: Any) -> Any:
        if isinstance(x, StepValue):
            return {"step": keyed[id(x)].key}
        if isinstance(x, PathValue):
            return file_digest(x)
        if isinstance(x, list):
            return [conv(y) for y in x]
        if isinstance(x, dict):
            return {k: conv(x[k]) for k in sorted(x)}
        return x

    # The display name is not part of what a step makes.
    return {k: conv(v) for k, v in sorted(args.items()) if k != "name"}


def top_level_steps(ev: Evaluator, value: Value) -> list[tuple[str, StepValue]]:
    """The recipe's outputs: steps at the top of its attribute set (nested sets
    give dotted names); a recipe that is a single step has the output 'default'."""
    if isinstance(value, StepValue):
        return [("default", value)]
    found: list[tuple[str, StepValue]] = []

    def walk(prefix: str, v: AttrsValue) -> None:
        for name in sorted(v.attrs):
            with ev.frame(f"evaluating the output '{prefix}{name}'"):
                x = ev.force(v.attrs[name])
            if isinstance(x, StepValue):
                found.append((prefix + name, x))
            elif isinstance(x, AttrsValue):
                walk(f"{prefix}{name}.", x)

    if isinstance(value, AttrsValue):
        walk("", value)
    return found


def plan(ev: Evaluator, value: Value, recipe: str) -> Plan:
    """Build the step graph of an evaluated recipe."""
    outputs = top_level_steps(ev, value)
    planner = _Planner(ev)
    for name, step in outputs:
        planner.visit(step, name)
    planner.check_acyclic()
    keyed = planner.keyed()
    graph = nx.DiGraph()
    for keyed_step in keyed.values():
        graph.add_node(keyed_step.key)
    for a, b in planner.graph.edges:
        graph.add_edge(keyed[a].key, keyed[b].key)
    steps = {s.key: s for s in keyed.values()}
    return Plan(
        recipe=recipe,
        steps=steps,
        outputs=tuple(sorted((name, keyed[id(s)].key) for name, s in outputs)),
        graph=graph,
    )


def render_text(p: Plan) -> str:
    """One line per step, inputs first: key, kind, name, and what it uses."""
    lines = [f"{len(p.steps)} steps, {len(p.outputs)} outputs ({p.recipe})"]
    for s in p.order():
        uses = ", ".join(p.steps[k].name for k in sorted(s.inputs, key=lambda k: p.steps[k].name))
        line = f"{s.short}  {s.kind:<11} {s.name}"
        if uses:
            line += f"  <- {uses}"
        lines.append(line)
    if p.outputs:
        lines.append("outputs:")
        lines.extend(f"  {name}: {key[:12]}" for name, key in p.outputs)
    return "\n".join(lines)


def render_dot(p: Plan) -> str:
    """Graphviz, with stable node order so the text itself is reproducible."""
    lines = ["digraph steps {", "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
    for s in p.order():
        label = f"{s.kind}\\n{s.name}\\n{s.short}"
        lines.append(f'  "{s.short}" [label="{label}"];')
    for a, b in sorted(p.graph.edges, key=lambda e: (p.steps[e[0]].name, p.steps[e[1]].name)):
        lines.append(f'  "{a[:12]}" -> "{b[:12]}";')
    lines.append("}")
    return "\n".join(lines)


def render_json(p: Plan) -> dict[str, Any]:
    return {
        "recipe": p.recipe,
        "outputs": dict(p.outputs),
        "steps": [
            {
                "key": s.key,
                "kind": s.kind,
                "name": s.name,
                "inputs": list(s.inputs),
                "params": s.param_data(),
                "location": s.location,
            }
            for s in p.order()
        ],
    }
