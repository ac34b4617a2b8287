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

Arch Linux databases are not signed upstream: each package is, and the
lockfile pins its signature and signing key. :data:`VERIFIERS` is the hook a
format registers its own check in: for ``alpm``, every pinned signature must
name the key the lockfile pins, a key of the archive's keyring
(:func:`reprobuild.archives.arch.trust.check_locked_signers`), before
anything is fetched; each package's bytes are then verified against its
signature whenever they are used (fetched, or taken from the store). A
format without a verifier is accepted as the lockfile says, which
SECURITY.md states.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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


Verifier = Callable[[SnapshotLock, tuple[LockedPackage, ...], TrustContext], list[SignedFile]]
VERIFIERS: MutableMapping[str, Verifier] = {}
"""Per archive format (``SnapshotLock.format``): checks a snapshot's packages."""


def verify_lock(lock: Lockfile, ctx: TrustContext) -> list[SignedFile]:
    """Refuse *lock* unless every package it pins is in a signed index of its snapshot.

    Returns the signed files read (for the build record).
    """
    used: list[SignedFile] = []
    by_snapshot: dict[str, list[LockedPackage]] = {}
    for p in lock.packages:
        by_snapshot.setdefault(p.snapshot, []).append(p)
    for snap in lock.snapshots:
        archive = _archive(snap)
        if snap.url != archive.snapshot_url(snap.timestamp):
            raise LockfileError(
                f"snapshot {snap.name!r}: field 'url' {snap.url!r} is not the canonical URL "
                f"of archive {snap.archive!r} at {snap.timestamp} "
                f"({archive.snapshot_url(snap.timestamp)})",
                hint="a mirror is chosen with --mirror, never in the lockfile",
            )
        packages = tuple(by_snapshot.get(snap.name, ()))
        verifier = VERIFIERS.get(snap.format)
        if verifier is not None:
            used += verifier(snap, packages, ctx)
    return used


def _archive(snap: SnapshotLock) -> ArchiveDef:
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


def _signed_bytes(ctx: TrustContext, sha256: str, url: str, what: str, limit: int) -> bytes:
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


def _index_bytes(
    ctx: TrustContext, release: Any, base: str, suite: str, path: str
) -> tuple[str, bytes]:
    """A Packages index the lockfile records as ``path`` (its uncompressed name):
    whichever form the signed Release lists (``.xz``, ``.gz``, plain) the store
    holds, else the first this mirror serves. Returns (the form's path, its bytes)."""
    from reprobuild.fetch import NotFound

    base_path = path.removesuffix(".xz").removesuffix(".gz")
    forms = [path] if base_path != path else [f"{path}.xz", f"{path}.gz", path]
    listed = [(f, e) for f in forms if (e := release.entry(f)) is not None]
    from reprobuild.steps.fetching import input_store

    other = input_store()
    for form, entry in listed:
        if ctx.store.has(entry.sha256) or (other is not None and other.has(entry.sha256)):
            return form, _signed_bytes(ctx, entry.sha256, "", form, entry.size)
    last: FetchError | None = None
    for form, entry in listed:
        url = f"{base}dists/{suite}/{form}"
        try:
            data = ctx.fetcher.get(url, max_size=entry.size).data
        except NotFound as exc:
            last = exc
            continue
        except FetchError as exc:
            raise FetchError(
                f"{url} (sha256 {entry.sha256}) is not in the store and cannot be fetched: "
                f"{exc.message}",
                hint="pull a store that has it, or point --mirror at a mirror of this snapshot",
            ) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != entry.sha256:
            raise IntegrityError(
                f"{url}: sha256 {actual} is not the {entry.sha256} the signed Release lists",
                hint="the mirror serves another snapshot, or a damaged file",
            )
        ctx.store.put_bytes(data)
        return form, data
    raise FetchError(
        f"{base}dists/{suite}/: none of {', '.join(f for f, _ in listed)} is in the store "
        f"or served by the mirror ({last.message if last else 'none is listed'})",
        hint="pull a store that has it, or point --mirror at a mirror of this snapshot",
    )


def verify_debian(
    snap: SnapshotLock, packages: tuple[LockedPackage, ...], ctx: TrustContext
) -> list[SignedFile]:
    """Steps 1 to 3 of the module docstring for one Debian snapshot."""
    from reprobuild.archives.debian.index import check_index, verify_inrelease
    from reprobuild.locking import _parsed_index, _recorded_index

    archive = _archive(snap)
    if not snap.signed:
        if not ctx.sources.insecure:
            raise LockfileError(
                f"snapshot {snap.name!r} was locked with signature checks disabled; "
                "nothing vouches for its packages",
                hint="lock it again with signatures, or pass --insecure-allow-unsigned",
            )
        return []
    base = ctx.sources.base_url(archive, snap.timestamp)
    keyring = ctx.sources.keyring(archive)
    listed: dict[tuple[str, str, str], tuple[str, int, str]] = {}
    used: list[SignedFile] = []
    memo = _Memo(snap, packages)
    remembered = memo.load(ctx)
    for suite in snap.suites:
        what = f"{archive.name}/{snap.timestamp}/dists/{suite.suite}/InRelease"
        data = _signed_bytes(
            ctx, suite.inrelease_sha256, f"{base}dists/{suite.suite}/InRelease", what, 64 << 20
        )
        used.append(SignedFile(what, suite.inrelease_sha256, len(data)))
        if remembered is not None:
            suite_dir = what.rsplit("/", 1)[0] + "/"
            used += [f for f in remembered if f.name.startswith(suite_dir)]
        verified = verify_inrelease(data, keyring, what=what)
        signers = {s.primary_fingerprint.upper() for s in verified.signers}
        if suite.fingerprint is not None and suite.fingerprint.upper() not in signers:
            raise LockfileError(
                f"{what}: signed by {', '.join(sorted(signers))}, not by the key the "
                f"lockfile names ({suite.fingerprint})"
            )
        for path, digest in sorted(suite.indexes.items()):
            entry = verified.release.entry(path)
            if entry is None or entry.sha256 != digest:
                raise LockfileError(
                    f"{what}: the signed Release does not list {path} with sha256 {digest}",
                    hint="the lockfile was edited, or made from another snapshot",
                )
            if remembered is not None:
                continue  # the memo's files for this suite were added above
            served, index = _index_bytes(ctx, verified.release, base, suite.suite, path)
            served_entry = verified.release.entry(served)
            assert served_entry is not None
            check_index(verified.release, served, index, what=f"{base}dists/{suite.suite}/{served}")
            used.append(
                SignedFile(what.rsplit("/", 1)[0] + "/" + served, served_entry.sha256, len(index))
            )
            _, uncompressed = _recorded_index(verified.release, served, index)
            for pkg in _parsed_index(index, served, uncompressed):
                listed.setdefault(
                    (pkg.name, pkg.version, pkg.architecture), (pkg.filename, pkg.size, pkg.sha256)
                )
    if remembered is not None:
        return used
    for p in packages:
        found = listed.get((p.name, p.version, p.architecture))
        if found is None:
            raise UnlistedPackage(
                f"{p.name} {p.version} ({p.architecture}) is pinned by the lockfile but "
                f"the signed index of snapshot {snap.name!r} does not list it",
                hint="the lockfile was edited or comes from elsewhere; lock the recipe anew",
            )
        if found != (p.filename, p.size, p.sha256):
            filename, size, sha256 = found
            raise UnlistedPackage(
                f"{p.name} {p.version} ({p.architecture}): the lockfile pins {p.filename} "
                f"({p.size} bytes, sha256 {p.sha256}) but the signed index lists {filename} "
                f"({size} bytes, sha256 {sha256})",
                hint="the lockfile was edited or comes from elsewhere; lock the recipe anew",
            )
    memo.save([f for f in used if not f.name.endswith("/InRelease")])
    return used


class _Memo:
    """That the indexes a set of signed InReleases lists include these exact packages.

    Checking it means reading and parsing the whole index (63,000 stanzas for
    bookworm main): most of an unchanged build's time. The answer is a pure
    function of the InReleases' bytes (which name the indexes' sha256) and of
    the packages, so it is kept, keyed by both, beside the parsed-index cache
    that the same check already trusts (locking.cache_dir). The signatures
    are still verified on every use (a keyring may have changed), and a memo
    is used only while the store still holds every index it names.
    """

    def __init__(self, snap: SnapshotLock, packages: tuple[LockedPackage, ...]) -> None:
        from reprobuild.canonical import canonical_json
        from reprobuild.plan import sha256_hex

        material = {
            "v": 1,
            "inreleases": [
                [s.suite, s.inrelease_sha256, sorted(s.indexes.items())] for s in snap.suites
            ],
            "packages": sorted(
                [p.name, p.version, p.architecture, p.filename, p.size, p.sha256] for p in packages
            ),
        }
        self.key = sha256_hex(canonical_json(material).encode())

    def _path(self) -> Any:
        from reprobuild.locking import cache_dir

        return cache_dir() / f"verified-{self.key}.json"

    def load(self, ctx: TrustContext) -> list[SignedFile] | None:
        import contextlib
        import json

        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            files = [
                SignedFile(str(f["name"]), str(f["sha256"]), int(f["size"]))
                for f in json.loads(self._path().read_text())
            ]
            if all(ctx.store.has(f.sha256) for f in files):
                return files
        return None

    def save(self, files: list[SignedFile]) -> None:
        import contextlib
        import json
        import os

        path = self._path()
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}")
            tmp.write_text(json.dumps([vars(f) for f in files], sort_keys=True))
            os.replace(tmp, path)


VERIFIERS["deb"] = verify_debian


def verify_arch(
    snap: SnapshotLock, packages: tuple[LockedPackage, ...], ctx: TrustContext
) -> list[SignedFile]:
    """Arch packages carry their own signatures: check the lockfile's are usable."""
    from reprobuild.archives.arch.trust import check_locked_signers

    archive = _archive(snap)
    check_locked_signers(
        packages,
        lambda: ctx.sources.keyring(archive),
        insecure=ctx.sources.insecure,
        allow_revoked=ctx.sources.allow_expired,
    )
    return []


VERIFIERS["alpm"] = verify_arch
