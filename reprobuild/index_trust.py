"""Trust in a lockfile comes from the signed index, every time it is used.

A lockfile travels between organisations: whoever sends one could pin a
package that the archive never published (the right name and version, other
bytes, placed in a mirror's pool). So before ``build`` (with ``--locked`` or
a lockfile it did not just write), ``replay`` and ``check`` use one, this
module checks it against what the archive signed:

1. the InRelease of every suite is taken from the store by the sha256 the
   lockfile records, or fetched from the snapshot (``--mirror`` and
   ``snapshots/*.toml`` decide where, never the lockfile) and must hash to
   that sha256; its signature is verified with the archive's keyring and
   must come from the key the lockfile names;
2. every index the lockfile records must be listed in that signed Release
   with the same sha256 (taken from the store or fetched, then checked);
3. every locked package must appear in those indexes with the same name,
   version, architecture, file name, size and sha256. A package the signed
   indexes do not list is refused, naming it, before anything is fetched.

InRelease files and indexes are kept in the store (by sha256), so a later
build or replay works from the store alone, as the packages do.

Each distribution's class does the checking
(:meth:`reprobuild.archives.formats.PackageFormat.verify_index`): Debian's
(:mod:`reprobuild.archives.debian.trust`) the three steps above. Arch Linux
databases are not signed upstream: each package is, and the lockfile pins its
signature and signing key; every pinned signature must name the key the
lockfile pins, a key of the archive's keyring
(:func:`reprobuild.archives.arch.trust.check_locked_signers`), before
anything is fetched; each package's bytes are then verified against its
signature whenever they are used (fetched, or taken from the store).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reprobuild.archives.formats import for_archive
from reprobuild.errors import FetchError, IntegrityError, LockfileError, ReprobuildError
from reprobuild.lockfile import LockedPackage, Lockfile, SnapshotLock

if TYPE_CHECKING:
    from reprobuild.archives import ArchiveDef
    from reprobuild.fetch import Fetcher
    from reprobuild.locking import Sources


class UnlistedPackage(LockfileError):
    """A locked package is not what the archive's signed index lists."""


@dataclass(frozen=True)
class TrustContext:
    """Where verified indexes come from and go to."""

    sources: Sources
    fetcher: Fetcher
    store: Any  # reprobuild.store.Store (typed loosely: the store is being reworked)


SIGNED_INDEX = "application/x-reprobuild-signed-index"  # media type in build records


@dataclass(frozen=True)
class SignedFile:
    """An InRelease or index a verification read: kept in the build record so
    that ``store push``/``pull`` carry it and a replay elsewhere needs no mirror."""

    name: str  # ARCHIVE/TIMESTAMP/dists/SUITE/PATH
    sha256: str
    size: int


def verify_lock(lock: Lockfile, ctx: TrustContext) -> list[SignedFile]:
    """Refuse *lock* unless every package it pins is in a signed index of its snapshot.

    Returns the signed files read (for the build record).
    """
    used: list[SignedFile] = []
    by_snapshot: dict[str, list[LockedPackage]] = {}
    for p in lock.packages:
        by_snapshot.setdefault(p.snapshot, []).append(p)
    for snap in lock.snapshots:
        archive = snapshot_archive(snap)
        if snap.url != archive.snapshot_url(snap.timestamp):
            raise LockfileError(
                f"snapshot {snap.name!r}: field 'url' {snap.url!r} is not the canonical URL "
                f"of archive {snap.archive!r} at {snap.timestamp} "
                f"({archive.snapshot_url(snap.timestamp)})",
                hint="a mirror is chosen with --mirror, never in the lockfile",
            )
        packages = tuple(by_snapshot.get(snap.name, ()))
        used += for_archive(archive).verify_index(snap, packages, ctx)
    return used


def snapshot_archive(snap: SnapshotLock) -> ArchiveDef:
    """The definition of a locked snapshot's archive, of the format it records."""
    from reprobuild.archives import load_archive

    try:
        archive = load_archive(snap.archive)
    except ReprobuildError as exc:
        raise LockfileError(
            f"snapshot {snap.name!r} names archive {snap.archive!r}, which is not defined "
            f"here: {exc.message}"
        ) from None
    if archive.format != snap.format:
        raise LockfileError(
            f"snapshot {snap.name!r}: format {snap.format!r} is not that of archive "
            f"{snap.archive!r} ({archive.format})"
        )
    return archive


def signed_bytes(ctx: TrustContext, sha256: str, url: str, what: str, limit: int) -> bytes:
    """The bytes with this sha256: from the store, else fetched from *url* and stored."""
    if ctx.store.has(sha256):
        with ctx.store.open_blob(sha256) as handle:  # re-hashed while read
            data: bytes = handle.read()
        return data
    from reprobuild.steps.fetching import read_input_store

    seeded = read_input_store(sha256, limit)  # another store (check's builds), hash-checked
    if seeded is not None:
        ctx.store.put_bytes(seeded)
        return seeded
    try:
        data = ctx.fetcher.get(url, max_size=limit).data
    except FetchError as exc:
        raise FetchError(
            f"{what} (sha256 {sha256}) is not in the store and cannot be fetched: {exc.message}",
            hint="pull a store that has it, or point --mirror at a mirror of this snapshot",
        ) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise IntegrityError(
            f"{what}: {url} is not the file the lockfile names (sha256 {actual}, "
            f"the lockfile says {sha256})",
            hint="the mirror serves another snapshot, or the lockfile was edited",
        )
    ctx.store.put_bytes(data)
    return data
