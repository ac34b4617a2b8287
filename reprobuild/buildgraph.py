"""Plan + lockfile -> the graph the executor runs.

The plan's keys depend only on the recipe; what a step makes also depends on
what the lockfile pinned (which packages, with which sha256) and on the
epoch. The build graph therefore gives every step an *effective* key: the
sha256 of its plan key, its inputs' effective keys, the locked data it uses
and the epoch. Locked packages become fetch steps keyed by their own sha256,
so a package is fetched and stored once whatever uses it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import networkx as nx

from reprobuild.archives.formats import package_format
from reprobuild.canonical import canonical_json
from reprobuild.errors import LockfileError
from reprobuild.lockfile import LockedPackage, Lockfile, SnapshotLock
from reprobuild.locking import rootfs_requests, snapshot_names
from reprobuild.plan import Plan, sha256_hex
from reprobuild.stepparams import PackagePin, SnapshotPin, StepParams, step_params

P = TypeVar("P", bound=StepParams)


@dataclass(frozen=True)
class BuildStep:
    """One unit of work. ``data`` is the step's parameters with every input
    replaced by its effective key, plus what the lockfile pinned for it: the
    JSON the effective key hashes. Executors read the typed views (``params``,
    the ``pinned_*`` properties), never ``data``."""

    key: str
    kind: str
    name: str
    inputs: tuple[str, ...]
    data: Mapping[str, Any] = field(default_factory=dict)
    plan_key: str | None = None
    # The architecture and package format of the packages the step's tree holds
    # (its snapshot's, or its first input tree's): not part of the key, a
    # function of the inputs.
    architecture: str | None = None
    package_format: str | None = None

    @functools.cached_property
    def params(self) -> StepParams:
        """The step's parameters as its kind's frozen dataclass (reprobuild.stepparams)."""
        return step_params(self.kind, self.data)

    def params_as(self, cls: type[P]) -> P:
        """:attr:`params`, which must be of *cls* (a runner of one kind asks for its own)."""
        p = self.params
        if not isinstance(p, cls):
            raise TypeError(f"step {self.name}: {type(p).__name__}, not {cls.__name__}")
        return p

    @property
    def pinned_snapshot(self) -> SnapshotPin:
        """A snapshot or fetch step's snapshot, as the lockfile pinned it."""
        return SnapshotPin.from_json(self.data["snapshot"])

    @property
    def pinned_packages(self) -> tuple[PackagePin, ...]:
        """A rootfs step's packages, as the lockfile pinned them."""
        return tuple(PackagePin.from_json(p) for p in self.data.get("packages", ()))

    @property
    def image_annotations(self) -> Mapping[str, str]:
        """What an ``oci_image`` says of what made it (export/referrers.py)."""
        return dict(self.data.get("annotations") or {})

    @property
    def system_sources(self) -> tuple[Mapping[str, Any], ...]:
        """What a rootfs's package manager is pointed at (apt's sources.list)."""
        return tuple(self.data.get("apt_sources") or ())


@dataclass(frozen=True)
class BuildGraph:
    steps: Mapping[str, BuildStep]
    outputs: tuple[tuple[str, str], ...]  # output name -> effective key
    graph: nx.DiGraph = field(compare=False, repr=False)
    epoch: int = 0

    def order(self) -> list[BuildStep]:
        keys = nx.lexicographical_topological_sort(
            self.graph, key=lambda k: f"{self.steps[k].name}\0{k}"
        )
        return [self.steps[k] for k in keys]


def snapshot_epoch(lock: Lockfile) -> int:
    """SOURCE_DATE_EPOCH by default: the newest snapshot's timestamp."""
    import calendar
    import time

    stamps = [s.timestamp for s in lock.snapshots]
    if not stamps:
        return 0
    return calendar.timegm(time.strptime(max(stamps), "%Y%m%dT%H%M%SZ"))


def _key(material: Mapping[str, Any]) -> str:
    return sha256_hex(canonical_json(material).encode())


def expand(plan: Plan, lock: Lockfile, epoch: int) -> BuildGraph:
    """The build graph of a locked plan."""
    steps: dict[str, BuildStep] = {}
    g = nx.DiGraph()
    effective: dict[str, str] = {}  # plan key -> effective key

    snap_by_step: dict[str, SnapshotLock] = {}
    for plan_key, name in snapshot_names(plan).items():
        snap = lock.snapshot_for(plan_key)
        if snap is None:
            raise LockfileError(
                f"the lockfile has no entry for snapshot '{name}'",
                hint="run 'reprobuild lock' (or build without --locked)",
            )
        wanted = plan.steps[plan_key].param_data().get("archive")
        if snap.archive != wanted:
            raise LockfileError(
                f"snapshot '{name}': the lockfile says archive {snap.archive!r} but the recipe "
                f"says {wanted!r} (a lockfile never chooses where packages come from)",
                hint="lock the recipe anew",
            )
        snap_by_step[plan_key] = snap
    rootfs_locks = {}
    for name, step, _, rkey in rootfs_requests(plan):
        rl = lock.rootfs_for(rkey)
        if rl is None:
            raise LockfileError(
                f"the lockfile has no resolved package set for rootfs '{name}'",
                hint="run 'reprobuild lock' (or build without --locked)",
            )
        rootfs_locks[step.key] = rl
    snapshots_by_name = {s.name: s for s in lock.snapshots}

    def add(step: BuildStep) -> None:
        if step.key not in steps:
            steps[step.key] = step
            g.add_node(step.key)
        for k in step.inputs:
            g.add_edge(k, step.key)

    output_names: dict[str, str] = {}
    for out_name, out_key in sorted(plan.outputs, reverse=True):
        output_names[out_key] = out_name  # the first name, where a step has several
    # plan key -> the architecture and package format of its tree (not keyed: both
    # follow from its inputs)
    architecture: dict[str, str | None] = {}
    formats: dict[str, str | None] = {}
    for pstep in plan.order():
        params = pstep.param_data()
        data: dict[str, Any] = {"params": _replace_steps(params, effective)}
        inputs = [effective[k] for k in pstep.inputs]
        if pstep.kind == "oci_image":
            from reprobuild.export.referrers import image_annotations

            # The image names what made it (reprobuild/export/referrers.py).
            name = output_names.get(pstep.key, pstep.name)
            data["annotations"] = image_annotations(lock, name, epoch)
        architecture[pstep.key] = _first_input(params, architecture)
        formats[pstep.key] = _first_input(params, formats)
        if pstep.kind == "snapshot":
            snap = snap_by_step[pstep.key]
            data["snapshot"] = _snapshot_json(snap)
            architecture[pstep.key] = snap.architecture
            formats[pstep.key] = snap.format
        elif pstep.kind == "rootfs":
            rl = rootfs_locks[pstep.key]
            pkgs = [lock.package(ident) for ident in rl.packages]
            fetch_keys = []
            for p in pkgs:
                snap = snapshots_by_name[p.snapshot]
                fkey = p.sha256
                add(
                    BuildStep(
                        key=fkey,
                        kind="fetch",
                        name=f"{p.name}_{p.version}_{p.architecture}",
                        inputs=(),
                        data={
                            "package": _package_json(p, snap),
                            "snapshot": _snapshot_json(snap),
                        },
                    )
                )
                fetch_keys.append(fkey)
            data["packages"] = [_package_json(p, snapshots_by_name[p.snapshot]) for p in pkgs]
            first = snapshots_by_name[rl.snapshots[0]]
            data["format"] = first.format
            architecture[pstep.key] = first.architecture
            formats[pstep.key] = first.format
            sources = package_format(first.format).system_sources(
                params, pkgs, [snapshots_by_name[n] for n in rl.snapshots]
            )
            if sources:
                data["apt_sources"] = sources
            inputs += fetch_keys
            extra, files = package_format(first.format).rootfs_inputs(params, first)
            data.update(extra)
            for f in files:
                index_step = BuildStep(
                    key=f.sha256,
                    kind="index",
                    name=f.path.rsplit("/", 1)[-1],
                    inputs=(),
                    data={
                        "file": {"path": f.path, "sha256": f.sha256},
                        "snapshot": _snapshot_json(first),
                    },
                )
                add(index_step)
                inputs.append(index_step.key)
        ekey = _key({"plan": pstep.key, "inputs": sorted(inputs), "data": data, "epoch": epoch})
        effective[pstep.key] = ekey
        add(
            BuildStep(
                key=ekey,
                kind=pstep.kind,
                name=pstep.name,
                inputs=tuple(sorted(set(inputs))),
                data=data,
                plan_key=pstep.key,
                architecture=architecture[pstep.key],
                package_format=formats[pstep.key],
            )
        )
    return BuildGraph(
        steps=steps,
        outputs=tuple((name, effective[k]) for name, k in plan.outputs),
        graph=g,
        epoch=epoch,
    )


def _first_input(params: Mapping[str, Any], known: Mapping[str, str | None]) -> str | None:
    """What *known* says of the first input tree (``root``, else the first of
    ``layers``, ``images``, ``snapshot``, ``base``)."""
    for name in ("root", "layers", "images", "snapshot", "base"):
        ref = params.get(name)
        ref = ref[0] if isinstance(ref, list) and ref else ref
        if isinstance(ref, dict) and isinstance(ref.get("step"), str):
            return known.get(ref["step"])
    return None


def _replace_steps(x: Any, effective: Mapping[str, str]) -> Any:
    if isinstance(x, dict):
        if set(x) == {"step"} and isinstance(x["step"], str):
            return {"step": effective[x["step"]]}
        return {k: _replace_steps(v, effective) for k, v in x.items()}
    if isinstance(x, list):
        return [_replace_steps(v, effective) for v in x]
    return x


def _package_json(p: LockedPackage, snap: SnapshotLock) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": p.name,
        "version": p.version,
        "architecture": p.architecture,
        "filename": p.filename,
        "size": p.size,
        "sha256": p.sha256,
        "snapshot": p.snapshot,
    }
    data.update(package_format(snap.format).locked_fields(p))  # a pinned signature
    return data


def _snapshot_json(s: SnapshotLock) -> dict[str, Any]:
    return {
        "name": s.name,
        "archive": s.archive,
        "format": s.format,
        "timestamp": s.timestamp,
        "url": s.url,
        "architecture": s.architecture,
    }
