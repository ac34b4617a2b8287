"""The lockfile: what organizations share so that anyone can rebuild the same bytes.

Canonical JSON (sorted keys, two-space indent, trailing newline): the same
recipe, date and index give the same file on every machine, and a diff of two
lockfiles reads as a change log. It records canonical snapshot URLs, never the
mirror a build happened to use.

A lockfile comes from someone else, so reading one checks what the rest of
reprobuild trusts it for (:func:`validate`), and refuses with an error naming
the package and the field: a package's ``filename`` is a plain path relative
to its snapshot (no scheme or host, no ``..``, not absolute, no query), so
the URL it is fetched from stays on the snapshot's (or the mirror's) host; a
snapshot's ``url`` is on the host of its archive's definition; every sha256
is 64 lowercase hex digits; sizes are non-negative integers; names,
versions and architectures hold no separators; rootfs members and package
snapshots refer to entries of the same lockfile.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprobuild.archives.formats import package_format
from reprobuild.canonical import canonical_json
from reprobuild.errors import LockfileError

LOCK_VERSION = 1

_SHA256 = re.compile(r"[0-9a-f]{64}")
_FINGERPRINT = re.compile(r"[0-9A-Fa-f]{40}|[0-9A-Fa-f]{64}")
# Debian and Arch package names, versions and architectures (a superset of both).
_NAME = re.compile(r"[A-Za-z0-9@_+][A-Za-z0-9@._+-]*")
_VERSION = re.compile(r"[A-Za-z0-9.+~:_-]+")
_ARCH = re.compile(r"[A-Za-z0-9_-]+")
# A path in an archive: printable ASCII without '%', '?', '#', '\\' or white space.
_ARCHIVE_PATH = re.compile(r"[A-Za-z0-9._+~@=,:/-]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_MAX_SIGNATURE = 1 << 16


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
    # Arch Linux packages carry their own signature: the primary fingerprint of
    # the key that signed it and the signature itself (base64, as %PGPSIG%).
    # Both None for an Arch package locked with --insecure-allow-unsigned;
    # never set (nor written) for Debian packages, which the signed index vouches for.
    fingerprint: str | None = None
    pgpsig: str | None = None

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
    @staticmethod
    def _package_json(p: LockedPackage, formats: Mapping[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": p.name,
            "version": p.version,
            "architecture": p.architecture,
            "filename": p.filename,
            "size": p.size,
            "sha256": p.sha256,
            "snapshot": p.snapshot,
        }
        fmt = formats.get(p.snapshot)
        if fmt is not None and _pins_signatures(fmt):
            out.update(package_format(fmt).locked_fields(p))
        return out

    def to_json(self) -> dict[str, Any]:
        formats = {s.name: s.format for s in self.snapshots}
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
            "packages": [self._package_json(p, formats) for p in sorted(self.packages)],
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
        return canonical_json(self.to_json(), document=True)

    @classmethod
    def from_json(cls, data: Any, *, what: str = "lockfile") -> Lockfile:
        try:
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            version = data["version"]
            if type(version) is not int or version != LOCK_VERSION:
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
            for raw in data["packages"]:
                _check_size(raw, what)
            formats = {s.name: s.format for s in snapshots}
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
                        **_signature_fields(p, formats),
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
            lock = cls(
                recipe=data["recipe"],
                sources=dict(data["sources"]),
                snapshots=snapshots,
                packages=packages,
                rootfs=rootfs,
                outputs={
                    str(k): dict(v) if isinstance(v, dict) else v
                    for k, v in dict(data.get("outputs", {})).items()
                },
                insecure="insecure" in data,
                version=version,
                embedded={str(k): str(v) for k, v in data.get("embedded", {}).items()},
            )
            validate(lock, what=what)  # inside: a field of the wrong type is refused, too
        except LockfileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise LockfileError(
                f"{what}: malformed lockfile ({type(exc).__name__}: {exc})",
                hint="regenerate it with 'reprobuild lock --update'",
            ) from None
        return lock


_REFUSED = (
    "regenerate it with 'reprobuild lock --update' from the recipe, or ask where it came from"
)


def _refuse(what: str, message: str) -> LockfileError:
    return LockfileError(f"{what}: {message}", hint=_REFUSED)


def _check_size(raw: Any, what: str) -> None:
    """Before ``int()`` makes ``"12"`` or ``1.5`` look like a size."""
    size = raw.get("size") if isinstance(raw, dict) else None
    if type(size) is not int or size < 0:
        name = raw.get("name") if isinstance(raw, dict) else None
        raise _refuse(
            what, f"package {name!r}: field 'size' must be a non-negative integer, not {size!r}"
        )


def _archive_path(value: object) -> str | None:
    """Why *value* is not a plain relative path inside an archive (None if it is)."""
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    if "://" in value or value.startswith("//"):
        return "is a URL, not a path relative to the snapshot (it would leave its host)"
    if value.startswith("/"):
        return "is absolute; it must be relative to the snapshot"
    if not _ARCHIVE_PATH.fullmatch(value):
        return "contains characters outside a plain path ('%', '?', '#', white space, ...)"
    if any(part in ("", ".", "..") for part in value.split("/")):
        return "has an empty, '.' or '..' component"
    return None


def _host(url: str) -> str | None:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "file"):
        return None
    return parts.hostname or ""


_TIMESTAMP = re.compile(r"\d{8}T\d{6}Z")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def _strings(value: object) -> bool:
    return isinstance(value, tuple | list) and all(isinstance(v, str) for v in value)


def _check_types(lock: Lockfile, what: str) -> None:
    """Every field has the type the code reading it expects: a hostile lockfile
    gets an error naming the field, never a crash further on."""
    for snap in lock.snapshots:
        where = f"snapshot {snap.name!r}"
        for name in ("step", "archive", "format", "requested", "timestamp", "architecture"):
            value = getattr(snap, name)
            if not isinstance(value, str):
                raise _refuse(what, f"{where}: field {name!r} is not a string: {value!r}")
            if not _WORD.fullmatch(value.replace(":", "")):
                raise _refuse(what, f"{where}: field {name!r} is not a plain word: {value!r}")
        if not _TIMESTAMP.fullmatch(snap.timestamp):
            raise _refuse(
                what, f"{where}: field 'timestamp' is not YYYYMMDDTHHMMSSZ: {snap.timestamp!r}"
            )
        if not _strings(snap.components):
            raise _refuse(what, f"{where}: field 'components' is not a list of names")
        for su in snap.suites:
            if not isinstance(su.date, str) or not isinstance(su.indexes, Mapping):
                raise _refuse(what, f"{where}, suite {su.suite!r}: malformed 'date' or 'indexes'")
    for p in lock.packages:
        if not isinstance(p.snapshot, str):
            raise _refuse(
                what, f"malformed lockfile: package {p.name!r}: field 'snapshot' is not a name"
            )
    for r in lock.rootfs:
        for name in ("snapshots", "request", "packages"):
            if not _strings(getattr(r, name)):
                raise _refuse(what, f"rootfs {r.name!r}: field {name!r} is not a list of strings")
        if not r.snapshots:
            raise _refuse(what, f"rootfs {r.name!r}: field 'snapshots' is empty")
        if not isinstance(r.key, str) or not isinstance(r.variant, str):
            raise _refuse(what, f"rootfs {r.name!r}: fields 'key' and 'variant' must be strings")


def _check_outputs(lock: Lockfile, what: str) -> None:
    """Recorded outputs are what replay and build --locked compare with."""
    for name, output in lock.outputs.items():
        recorded = output.get("sha256") if isinstance(output, Mapping) else None
        if not isinstance(recorded, str) or not _SHA256.fullmatch(recorded):
            raise _refuse(what, f"outputs: {name!r} has no valid sha256")


def validate(lock: Lockfile, *, what: str = "lockfile") -> None:
    """Refuse a lockfile that would make reprobuild fetch or trust the wrong thing."""
    _check_types(lock, what)
    _check_outputs(lock, what)
    if not _SHA256.fullmatch(str(lock.recipe)):
        raise _refuse(
            what, f"field 'recipe' is not a sha256 (64 lowercase hex digits): {lock.recipe!r}"
        )
    for rel, digest in lock.sources.items():
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise _refuse(what, f"sources: {rel!r} has no valid sha256: {digest!r}")
    for rel in lock.embedded:
        if rel.startswith("/") or ".." in rel.split("/") or "\0" in rel:
            raise _refuse(what, f"embedded: {rel!r} leaves the recipe tree")
        if any(part in ("", ".") for part in rel.split("/")):
            raise _refuse(what, f"embedded: {rel!r} is not a plain path of a recipe file")
    parents = {rel.rsplit("/", 1)[0] for rel in lock.embedded if "/" in rel}
    for rel in sorted(lock.embedded):
        if rel in parents or any(p.startswith(rel + "/") for p in parents):
            raise _refuse(what, f"embedded: {rel!r} is both a file and a directory")
    snapshots = {s.name: s for s in lock.snapshots}
    for snap in lock.snapshots:
        where = f"snapshot {snap.name!r}"
        host = _host(snap.url) if isinstance(snap.url, str) else None
        if host is None or not snap.url.endswith("/"):
            raise _refuse(
                what,
                f"{where}: field 'url' is not an http(s) or file URL ending in '/': {snap.url!r}",
            )
        expected = _archive_host(snap.archive)
        if expected is not None and host != expected:
            raise _refuse(
                what,
                f"{where}: field 'url' is on host {host!r}, but archive {snap.archive!r} "
                f"is on {expected!r} (a mirror is chosen with --mirror, never in the lockfile)",
            )
        for su in snap.suites:
            if not isinstance(su.inrelease_sha256, str) or not _SHA256.fullmatch(
                su.inrelease_sha256
            ):
                raise _refuse(
                    what, f"{where}, suite {su.suite!r}: field 'inrelease_sha256' is not a sha256"
                )
            if su.fingerprint is not None and not (
                isinstance(su.fingerprint, str) and _FINGERPRINT.fullmatch(su.fingerprint)
            ):
                raise _refuse(
                    what,
                    f"{where}, suite {su.suite!r}: field 'fingerprint' is not a key fingerprint",
                )
            for index, digest in su.indexes.items():
                problem = _archive_path(index)
                if problem is not None:
                    raise _refuse(what, f"{where}, suite {su.suite!r}: index {index!r} {problem}")
                if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
                    raise _refuse(
                        what, f"{where}, suite {su.suite!r}: index {index!r} has no valid sha256"
                    )
    idents = set()
    for p in lock.packages:
        where = f"package {p.name!r}"
        for name, value, pattern in (
            ("name", p.name, _NAME),
            ("version", p.version, _VERSION),
            ("architecture", p.architecture, _ARCH),
        ):
            if not isinstance(value, str) or not pattern.fullmatch(value):
                raise _refuse(what, f"{where}: field {name!r} is not a valid {name}: {value!r}")
        where = f"package {p.ident}"
        problem = _archive_path(p.filename)
        if problem is not None:
            raise _refuse(what, f"{where}: field 'filename' {problem}: {p.filename!r}")
        if not isinstance(p.sha256, str) or not _SHA256.fullmatch(p.sha256):
            raise _refuse(
                what,
                f"{where}: field 'sha256' must be 64 lowercase hex digits, not {p.sha256!r} "
                f"({len(p.sha256) if isinstance(p.sha256, str) else 'no'} characters)",
            )
        if p.snapshot not in snapshots:
            raise _refuse(
                what, f"{where}: field 'snapshot' names no snapshot of the lockfile: {p.snapshot!r}"
            )
        if _pins_signatures(snapshots[p.snapshot].format):
            _check_package_signature(p, lock.insecure, what, where)
        idents.add(p.ident)
    for r in lock.rootfs:
        missing = sorted(set(r.packages) - idents)
        if missing:
            raise _refuse(
                what, f"rootfs {r.name!r} lists {missing[0]}, which the lockfile does not"
            )
        unknown = sorted(set(r.snapshots) - set(snapshots))
        if unknown:
            raise _refuse(
                what,
                f"rootfs {r.name!r} names snapshot {unknown[0]!r}, which the lockfile does not",
            )


def _signature_fields(raw: Mapping[str, Any], formats: Mapping[str, str]) -> dict[str, Any]:
    """The signature fields of a package of a format that pins them (checked by
    :func:`validate`)."""
    fmt = formats.get(raw["snapshot"])
    if fmt is None or not _pins_signatures(fmt):
        return {}
    return {"fingerprint": raw.get("fingerprint"), "pgpsig": raw.get("pgpsig")}


def _pins_signatures(fmt: str) -> bool:
    """Whether packages of format *fmt* pin their signature (unknown formats: no;
    a lockfile naming one is refused where its archive is looked up)."""
    from reprobuild.errors import ArchiveError

    try:
        return package_format(fmt).signed_packages
    except ArchiveError:
        return False


def _check_package_signature(p: LockedPackage, insecure: bool, what: str, where: str) -> None:
    """An Arch package pins its signer and signature, unless the lock is insecure."""
    if p.fingerprint is None and p.pgpsig is None and insecure:
        return
    if not isinstance(p.fingerprint, str) or not _FINGERPRINT.fullmatch(p.fingerprint):
        raise _refuse(
            what,
            f"{where}: field 'fingerprint' is not a key fingerprint: {p.fingerprint!r} "
            "(an Arch package is pinned to the key that signed it)",
        )
    if (
        not isinstance(p.pgpsig, str)
        or not 0 < len(p.pgpsig) <= _MAX_SIGNATURE
        or not _BASE64.fullmatch(p.pgpsig)
    ):
        raise _refuse(
            what,
            f"{where}: field 'pgpsig' is not a base64 signature (an Arch package carries "
            "the signature it is verified against)",
        )


def _archive_host(name: str) -> str | None:
    """The host of an archive's canonical URL, if its definition is known here."""
    from reprobuild.archives import load_archive
    from reprobuild.errors import ReprobuildError

    try:
        archive = load_archive(name)
    except ReprobuildError:
        return None
    return _host(archive.url.split("{", 1)[0] or archive.url)


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
    except UnicodeDecodeError as exc:
        raise LockfileError(f"{path}: not a lockfile (not UTF-8 text: {exc.reason})") from None
    except OSError as exc:
        raise LockfileError(f"{path}: cannot read the lockfile: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LockfileError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    return Lockfile.from_json(data, what=str(path))


def write(path: Path, lock: Lockfile) -> None:
    """Atomically replace the lockfile: readers see the old or the new one, whole."""
    from reprobuild.store._fs import remove_dead_writers

    remove_dead_writers(path.parent, f".{path.name}.", ".tmp")  # a killed writer's temp
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            f.write(lock.dumps())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # e.g. a full disk: no half-written temp left behind
        raise


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
