"""Locking Arch Linux snapshots and roots: databases of a day, pacman's choice, signatures.

An Arch Linux Archive day is ``repos/YYYY/MM/DD/REPO/os/ARCH/REPO.db`` for
each repository. The databases are unsigned upstream (a ``.db.sig`` beside
one is verified when present); their sha256 is recorded in the lockfile, and
their parse is cached by that sha256. A root's request is resolved as pacman
resolves it (:mod:`reprobuild.archives.arch.resolve`), and each chosen package's
signature (``%PGPSIG%``, or the ``.sig`` beside the package) must name a key
of the archive's keyring (:mod:`reprobuild.archives.arch.trust`); the
lockfile pins the signature and the key's fingerprint, and every later use
of the package verifies its bytes against them.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import gc
import hashlib
import marshal
import os
import re
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from reprobuild.archives import ArchiveDef, load_archive, snapshot_timestamp
from reprobuild.archives.arch.sync_db import SyncDb, SyncPackage, read_sync_db_index
from reprobuild.archives.arch.trust import ArchKeyring, load_keyring, signer_of
from reprobuild.errors import ArchiveError, SignatureError, UsageError
from reprobuild.fetch import Fetcher, NotFound
from reprobuild.lockfile import LockedPackage, SnapshotLock, SuiteLock

__all__ = ["ArchSnapshot", "ArchSnapshots", "lock_rootfs"]

_SHA256 = re.compile(r"[0-9a-f]{64}")
DB_CACHE_VERSION = 2  # bump when SyncDb's rows change shape


class _Sources(Protocol):
    """What locking needs of :class:`reprobuild.locking.Sources`."""

    @property
    def insecure(self) -> bool: ...

    @property
    def allow_expired(self) -> bool: ...

    def base_urls(self, archive: ArchiveDef, timestamp: str) -> list[str]: ...

    def keyring(self, archive: ArchiveDef) -> Path: ...


@dataclass(frozen=True)
class ArchRepo:
    name: str
    url: str  # the directory holding REPO.db and the packages (on the mirror used)
    db: SyncDb


@dataclass(frozen=True)
class ArchSnapshot:
    """A locked day and its parsed repositories, in pacman's search order."""

    lock: SnapshotLock
    repos: tuple[ArchRepo, ...]
    archive: ArchiveDef


def _cached_db(data: bytes, digest: str, cache: Path | None, what: str) -> SyncDb:
    """Parse a database, reusing an earlier parse of the same bytes (sha256-checked)."""
    # marshal's format may change with the interpreter: the cache is per Python version.
    tag = f"v{DB_CACHE_VERSION}.py{sys.version_info[0]}{sys.version_info[1]}"
    path = cache / f"alpm-{digest}.{tag}.marshal" if cache else None
    if path is not None:
        with contextlib.suppress(OSError, ValueError, EOFError, TypeError):
            blob = path.read_bytes()
            if hashlib.sha256(blob[32:]).digest() == blob[:32]:
                enabled = gc.isenabled()
                gc.disable()  # many new objects, no garbage: skip the collector's passes
                try:
                    return SyncDb.from_plain(marshal.loads(blob[32:]))
                finally:
                    if enabled:
                        gc.enable()
    db = read_sync_db_index(data, what=what)
    if path is not None:
        with contextlib.suppress(OSError, ValueError):
            path.parent.mkdir(parents=True, exist_ok=True)
            payload = marshal.dumps(db.to_plain())
            tmp = path.with_name(f".{path.name}.{os.getpid()}")
            tmp.write_bytes(hashlib.sha256(payload).digest() + payload)
            os.replace(tmp, path)
    return db


class ArchSnapshots:
    """Fetches Arch Linux Archive days: ``REPO.db`` per repository."""

    MAX_DAYS_BACK = 7

    def __init__(self, fetcher: Fetcher, sources: _Sources, cache: Path | None = None) -> None:
        self.fetcher = fetcher
        self.sources = sources
        self.cache = cache

    def acquire(self, name: str, params: Mapping[str, Any], step_key: str) -> ArchSnapshot:
        archive = load_archive(params["archive"])
        repos = tuple(params.get("repos") or params.get("suites") or archive.repos)
        if not repos:
            raise UsageError(f"snapshot '{name}' names no repositories (repos = [ \"core\" ];)")
        arch = params.get("arch") or archive.arch or "x86_64"
        layout = archive.layout or "{repo}/os/{arch}/"
        first = layout.format(repo=repos[0], arch=arch) + f"{repos[0]}.db"
        day = dt.datetime.strptime(snapshot_timestamp(params["date"])[:8], "%Y%m%d")
        tried: list[str] = []
        for back in range(self.MAX_DAYS_BACK + 1):
            ts = (day - dt.timedelta(days=back)).strftime("%Y%m%dT000000Z")
            for base in self.sources.base_urls(archive, ts):
                try:
                    data = self.fetcher.get(base + first).data
                except NotFound:
                    tried.append(base + first)
                    continue
                return self._day(name, step_key, archive, ts, base, repos, arch, params, data)
        shown = tried[: len(tried) // (self.MAX_DAYS_BACK + 1)]
        raise ArchiveError(
            f"{archive.name}: no snapshot at or within {self.MAX_DAYS_BACK} days before "
            f"{params['date']}: not found: {', '.join(shown)} (nor the same for the "
            f"{self.MAX_DAYS_BACK} days before)",
            hint="expected the Arch Linux Archive's layout, ROOT/repos/YYYY/MM/DD/"
            f"{layout.format(repo='REPO', arch=arch)}REPO.db for each REPO of the snapshot "
            f"({', '.join(repos)}); --mirror {archive.name}=URL takes the archive's root "
            "or its repos/ directory",
        )

    def _day(
        self,
        name: str,
        step_key: str,
        archive: ArchiveDef,
        ts: str,
        base: str,
        repos: tuple[str, ...],
        arch: str,
        params: Mapping[str, Any],
        first_data: bytes,
    ) -> ArchSnapshot:
        layout = archive.layout or "{repo}/os/{arch}/"
        suites: list[SuiteLock] = []
        parsed: list[ArchRepo] = []
        signed_all = True
        for i, repo in enumerate(repos):
            repo_url = base + layout.format(repo=repo, arch=arch)
            url = repo_url + f"{repo}.db"
            if i == 0:
                data = first_data
            else:
                try:
                    data = self.fetcher.get(url).data
                except NotFound:
                    raise ArchiveError(
                        f"{archive.name}: the snapshot of {ts[:8]} has {repos[0]}.db but "
                        f"not {repo}.db ({url} not found)",
                        hint="check the snapshot's repos (repository names change: "
                        "'community' was merged into 'extra' in 2023)",
                    ) from None
            digest = hashlib.sha256(data).hexdigest()
            fingerprint = None if self.sources.insecure else self._db_signature(archive, url, data)
            if fingerprint is None:
                signed_all = False
            parsed.append(ArchRepo(repo, repo_url, _cached_db(data, digest, self.cache, url)))
            suites.append(
                SuiteLock(
                    suite=repo,
                    inrelease_sha256=digest,
                    fingerprint=fingerprint,
                    date=f"{ts[:4]}-{ts[4:6]}-{ts[6:8]}T00:00:00Z",
                    indexes={f"{repo}.db": digest},
                )
            )
        lock = SnapshotLock(
            name=name,
            step=step_key,
            archive=archive.name,
            format=archive.format,
            requested=params["date"],
            timestamp=ts,
            url=archive.snapshot_url(ts),
            architecture=arch,
            components=repos,
            suites=tuple(suites),
            signed=signed_all,
        )
        return ArchSnapshot(lock, tuple(parsed), archive)

    def _db_signature(self, archive: ArchiveDef, url: str, data: bytes) -> str | None:
        """Arch Linux leaves databases unsigned; a ``.db.sig`` present is verified."""
        from reprobuild.archives.arch.package import verify_signature

        try:
            sig = self.fetcher.get(url + ".sig", max_size=1 << 20).data
        except NotFound:
            return None
        with tempfile.TemporaryDirectory(prefix="reprobuild-db-") as tmp:
            db = Path(tmp) / "repo.db"
            db.write_bytes(data)
            (Path(tmp) / "repo.db.sig").write_bytes(sig)
            signers = verify_signature(db, self.sources.keyring(archive))
        return signers[0].fingerprint


def _package_signature(pkg: SyncPackage, repo: ArchRepo, fetcher: Fetcher, what: str) -> str:
    """The package's signature as pacman finds it: ``%PGPSIG%``, else the ``.sig`` beside it."""
    if pkg.pgpsig:
        return pkg.pgpsig
    url = f"{repo.url}{pkg.filename}.sig"
    try:
        raw = fetcher.get(url, max_size=1 << 16).data
    except NotFound:
        raise SignatureError(
            f"{what}: no signature (its database entry has no %PGPSIG% and {url} does not exist)",
            hint="Arch Linux signs every package and pacman refuses unsigned ones; "
            "--insecure-allow-unsigned accepts them (and says so in the lockfile)",
        ) from None
    if raw.lstrip().startswith(b"-----BEGIN PGP"):
        from reprobuild.archives.signature import dearmor

        raw = dearmor(raw)
    return base64.b64encode(raw).decode("ascii")


def lock_rootfs(
    params: Mapping[str, Any],
    snaps: Sequence[ArchSnapshot],
    *,
    fetcher: Fetcher,
    sources: _Sources,
    warn: Callable[[str], None] | None = None,
) -> list[LockedPackage]:
    """Resolve one Arch root as pacman would and pin each package with its signature."""
    from reprobuild.archives.arch.resolve import ArchRequest, ArchUniverse, resolve_arch

    if (params.get("variant") or "none") not in ("none", "essential"):
        raise UsageError('Arch Linux roots take variant "none" (request "base" for a base system)')
    owner: dict[str, tuple[ArchSnapshot, ArchRepo]] = {}
    for snap in snaps:
        for repo in snap.repos:
            owner.setdefault(repo.name, (snap, repo))
    universe = ArchUniverse([(r.name, r.db) for s in snaps for r in s.repos])
    resolution = resolve_arch(universe, ArchRequest(tuple(params.get("packages") or ())))
    for message in resolution.warnings:
        if warn is not None:
            warn(message)
    keyrings: dict[str, ArchKeyring] = {}
    out = []
    for choice in resolution.packages:
        pkg = choice.package
        snap, repo = owner[choice.repo]
        what = f"package {pkg.name} {pkg.version} ({choice.repo})"
        layout = snap.archive.layout or "{repo}/os/{arch}/"
        if pkg.sha256 is None or pkg.csize is None or not pkg.filename:
            raise ArchiveError(
                f"{what}: the database gives no %FILENAME%, %SHA256SUM% or %CSIZE%; "
                "it cannot be pinned"
            )
        if not _SHA256.fullmatch(pkg.sha256):
            raise ArchiveError(f"{what}: %SHA256SUM% is not a sha256: {pkg.sha256[:80]!r}")
        fingerprint = pgpsig = None
        if not sources.insecure:
            pgpsig = _package_signature(pkg, repo, fetcher, what)
            keyring = keyrings.get(snap.archive.name)
            if keyring is None:
                keyring = keyrings[snap.archive.name] = load_keyring(sources.keyring(snap.archive))
            signer = signer_of(pgpsig, keyring, what=what, allow_revoked=sources.allow_expired)
            fingerprint = signer.fingerprint
        out.append(
            LockedPackage(
                name=pkg.name,
                version=pkg.version,
                architecture=pkg.arch,
                filename=layout.format(repo=choice.repo, arch=snap.lock.architecture)
                + pkg.filename,
                size=pkg.csize,
                sha256=pkg.sha256,
                snapshot=snap.lock.name,
                fingerprint=fingerprint,
                pgpsig=pgpsig,
            )
        )
    return out
