"""The lockfile: what organizations share so that anyone can rebuild the same bytes.

Canonical JSON (sorted keys, two-space indent, trailing newline): the same
recipe, date and index give the same file on every machine, and a diff of two
lockfiles reads as a change log. It records canonical snapshot URLs, never the
mirror a build happened to use.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprobuild.errors import LockfileError

LOCK_VERSION = 1


@dataclass(frozen=True)
class SuiteLock:
    """One signed Release file of a snapshot and the indexes read through it."""

    suite: str
    inrelease_sha256: str
    fingerprint: str | None  # None only for an explicitly insecure lock
    date: str
    indexes: Mapping[str, str] = field(default_factory=dict)  # path -> sha256


@dataclass(frozen=True)
class SnapshotLock:
    name: str
    step: str  # the snapshot step's key
    archive: str
    format: str
    requested: str
    timestamp: str
    url: str  # canonical, with the resolved timestamp
    architecture: str
    components: tuple[str, ...]
    suites: tuple[SuiteLock, ...]
    signed: bool = True


@dataclass(frozen=True, order=True)
class LockedPackage:
    name: str
    version: str
    architecture: str
    filename: str
    size: int
    sha256: str
    snapshot: str

    @property
    def ident(self) -> str:
        return f"{self.name}={self.version}:{self.architecture}"


@dataclass(frozen=True)
class RootfsLock:
    """A resolved package set. ``key`` hashes only what decides the set (the
    snapshots, variant, request and architecture), so editing a rootfs's
    ``files`` does not make its lock stale."""

    name: str
    key: str
    snapshots: tuple[str, ...]
    variant: str
    request: tuple[str, ...]
    packages: tuple[str, ...]  # LockedPackage.ident of each member, sorted


@dataclass(frozen=True)
class Lockfile:
    recipe: str  # sha256 of the top-level recipe file
    sources: Mapping[str, str]  # every recipe file read (relative path -> sha256)
    snapshots: tuple[SnapshotLock, ...]
    packages: tuple[LockedPackage, ...]
    rootfs: tuple[RootfsLock, ...]
    outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    insecure: bool = False
    version: int = LOCK_VERSION
    embedded: Mapping[str, str] = field(default_factory=dict)  # relpath -> recipe text

    def package(self, ident: str) -> LockedPackage:
        for p in self.packages:
            if p.ident == ident:
                return p
        raise LockfileError(f"lockfile names {ident} in a rootfs but does not list it")

    def rootfs_for(self, key: str) -> RootfsLock | None:
        return next((r for r in self.rootfs if r.key == key), None)

    def snapshot_for(self, step: str) -> SnapshotLock | None:
        return next((s for s in self.snapshots if s.step == step), None)

    def identity(self) -> str:
        """sha256 of the lockfile without its recorded outputs: what a build was
        made from, stable while builds record their digests into the file."""
        import hashlib
        from dataclasses import replace

        return hashlib.sha256(replace(self, outputs={}).dumps().encode()).hexdigest()

    # -- serialisation ---------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "version": self.version,
            "recipe": self.recipe,
            "sources": dict(sorted(self.sources.items())),
            "snapshots": {
                s.name: {
                    "step": s.step,
                    "archive": s.archive,
                    "format": s.format,
                    "requested": s.requested,
                    "timestamp": s.timestamp,
                    "url": s.url,
                    "architecture": s.architecture,
                    "components": list(s.components),
                    "signed": s.signed,
                    "suites": {
                        su.suite: {
                            "inrelease_sha256": su.inrelease_sha256,
                            "fingerprint": su.fingerprint,
                            "date": su.date,
                            "indexes": dict(sorted(su.indexes.items())),
                        }
                        for su in s.suites
                    },
                }
                for s in self.snapshots
            },
            "packages": [
                {
                    "name": p.name,
                    "version": p.version,
                    "architecture": p.architecture,
                    "filename": p.filename,
                    "size": p.size,
                    "sha256": p.sha256,
                    "snapshot": p.snapshot,
                }
                for p in sorted(self.packages)
            ],
            "rootfs": {
                r.name: {
                    "key": r.key,
                    "snapshots": list(r.snapshots),
                    "variant": r.variant,
                    "request": list(r.request),
                    "packages": sorted(r.packages),
                }
                for r in self.rootfs
            },
        }
        if self.outputs:
            data["outputs"] = {k: dict(v) for k, v in sorted(self.outputs.items())}
        if self.insecure:
            data["insecure"] = "signature checks were disabled with --insecure-allow-unsigned"
        if self.embedded:
            data["embedded"] = dict(sorted(self.embedded.items()))
        return data

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, data: Any, *, what: str = "lockfile") -> Lockfile:
        try:
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            version = data["version"]
            if version != LOCK_VERSION:
                raise LockfileError(
                    f"{what}: format version {version} is not supported (this reprobuild "
                    f"reads version {LOCK_VERSION})",
                    hint="run 'reprobuild lock --update' with this version to rewrite it",
                )
            snapshots = tuple(
                SnapshotLock(
                    name=name,
                    step=s["step"],
                    archive=s["archive"],
                    format=s["format"],
                    requested=s["requested"],
                    timestamp=s["timestamp"],
                    url=s["url"],
                    architecture=s["architecture"],
                    components=tuple(s["components"]),
                    signed=bool(s["signed"]),
                    suites=tuple(
                        SuiteLock(
                            suite=su_name,
                            inrelease_sha256=su["inrelease_sha256"],
                            fingerprint=su["fingerprint"],
                            date=su["date"],
                            indexes=dict(su["indexes"]),
                        )
                        for su_name, su in sorted(s["suites"].items())
                    ),
                )
                for name, s in sorted(data["snapshots"].items())
            )
            packages = tuple(
                sorted(
                    LockedPackage(
                        name=p["name"],
                        version=p["version"],
                        architecture=p["architecture"],
                        filename=p["filename"],
                        size=int(p["size"]),
                        sha256=p["sha256"],
                        snapshot=p["snapshot"],
                    )
                    for p in data["packages"]
                )
            )
            rootfs = tuple(
                RootfsLock(
                    name=name,
                    key=r["key"],
                    snapshots=tuple(r["snapshots"]),
                    variant=r["variant"],
                    request=tuple(r["request"]),
                    packages=tuple(sorted(r["packages"])),
                )
                for name, r in sorted(data["rootfs"].items())
            )
            return cls(
                recipe=data["recipe"],
                sources=dict(data["sources"]),
                snapshots=snapshots,
                packages=packages,
                rootfs=rootfs,
                outputs=dict(data.get("outputs", {})),
                insecure="insecure" in data,
                version=version,
                embedded={str(k): str(v) for k, v in data.get("embedded", {}).items()},
            )
        except LockfileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise LockfileError(
                f"{what}: malformed lockfile ({type(exc).__name__}: {exc})",
                hint="regenerate it with 'reprobuild lock --update'",
            ) from None


def lock_path(recipe: Path) -> Path:
    """``RECIPE.lock`` beside the recipe."""
    return recipe.with_name(recipe.name + ".lock")


def load(path: Path) -> Lockfile:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LockfileError(
            f"{path}: no lockfile", hint=f"run 'reprobuild lock {path.name[:-5]}' first"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LockfileError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    return Lockfile.from_json(data, what=str(path))


def write(path: Path, lock: Lockfile) -> None:
    """Atomically replace the lockfile: readers see the old or the new one, whole."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(lock.dumps())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class Staleness:
    """Why a lockfile no longer matches its recipe (empty: it does)."""

    reasons: tuple[str, ...]

    @property
    def stale(self) -> bool:
        return bool(self.reasons)


def staleness(
    lock: Lockfile,
    recipe_sha256: str,
    sources: Mapping[str, str],
    snapshot_steps: Mapping[str, str],
    rootfs_steps: Mapping[str, str],
) -> Staleness:
    """Compare a lockfile with the recipe as it is now.

    ``snapshot_steps`` maps snapshot step keys, ``rootfs_steps`` rootfs
    resolution keys, to display names.
    """
    reasons: list[str] = []
    if lock.recipe != recipe_sha256:
        changed = sorted(
            p for p in set(sources) | set(lock.sources) if sources.get(p) != lock.sources.get(p)
        )
        reasons.append("recipe changed: " + ", ".join(changed or ["(top-level file)"]))
    locked_snaps = {s.step for s in lock.snapshots}
    for key, name in sorted(snapshot_steps.items(), key=lambda kv: kv[1]):
        if key not in locked_snaps:
            reasons.append(f"snapshot '{name}' is new or its parameters changed")
    locked_roots = {r.key for r in lock.rootfs}
    for key, name in sorted(rootfs_steps.items(), key=lambda kv: kv[1]):
        if key not in locked_roots:
            reasons.append(f"rootfs '{name}' is new or its parameters changed")
    return Staleness(tuple(reasons))
