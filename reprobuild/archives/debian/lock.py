"""Locking Debian snapshots and roots: signed InRelease, Packages indexes, apt's choice.

For each snapshot: find the snapshot at or before the recipe's date, fetch
and verify its signed ``InRelease``, fetch the ``Packages`` indexes it
vouches for, and parse them (cached by sha256). For each rootfs: resolve its
request over the combined indexes of its snapshots, as apt would
(:mod:`reprobuild.archives.debian.resolve`); the answer is cached by the
indexes' sha256.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import pickle
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reprobuild.archives import ArchiveDef, snapshot_timestamp
from reprobuild.archives.debian.index import (
    BinaryPackage,
    VerifiedRelease,
    check_dates,
    check_index,
    decompress_index,
    packages_index_candidates,
    parse_packages,
    parse_release,
    verify_inrelease,
)
from reprobuild.canonical import canonical_json
from reprobuild.errors import (
    ArchiveError,
    FetchError,
    IntegrityError,
    ReprobuildError,
    ResolveError,
    UsageError,
)
from reprobuild.fetch import Fetcher, NotFound
from reprobuild.lockfile import LockedPackage, SnapshotLock, SuiteLock
from reprobuild.locking import Sources, cache_dir
from reprobuild.plan import Step, sha256_hex

__all__ = ["DebianSnapshots", "SnapshotIndex", "lock_rootfs"]

TIMESTAMP_RE = re.compile(r"(\d{8}T\d{6}Z)")
INDEX_CACHE_VERSION = 2  # bump when BinaryPackage changes


@dataclass(frozen=True)
class SnapshotIndex:
    """A verified Debian snapshot and its ``Packages`` indexes (checked, parsed
    only when a resolution needs them)."""

    lock: SnapshotLock
    # (recorded path, its sha256 as the Release lists it, the file served, its verified bytes)
    indexes: tuple[tuple[str, str, str, bytes], ...] = ()

    def packages(self) -> tuple[BinaryPackage, ...]:
        out: list[BinaryPackage] = []
        for _, sha256, served, data in self.indexes:
            out.extend(_parsed_index(data, served, sha256))
        return tuple(out)


def _parsed_index(data: bytes, path: str, sha256: str) -> tuple[BinaryPackage, ...]:
    """Parse a Packages index served as ``path`` (compressed or not) whose
    uncompressed bytes have ``sha256``, reusing an earlier parse of the same
    index from any mirror. The uncompressed bytes are checked against it."""
    cached = cache_dir() / f"{sha256}.v{INDEX_CACHE_VERSION}.pickle"
    with contextlib.suppress(OSError, pickle.UnpicklingError, EOFError, AttributeError):
        data_ = cached.read_bytes()
        # 60,000 new objects and no garbage: the cyclic collector's passes
        # over them would cost about as much as the unpickling itself.
        enabled = gc.isenabled()
        gc.disable()
        try:
            packages = pickle.loads(data_)
        finally:
            if enabled:
                gc.enable()
        if isinstance(packages, tuple):
            return packages
    text = decompress_index(path, data)
    actual = hashlib.sha256(text).hexdigest()
    if actual != sha256:
        raise IntegrityError(
            f"{path}: decompressed, its sha256 is {actual}, not the {sha256} the signed "
            "Release lists for the uncompressed index",
            hint="the mirror served a damaged or different file; fetch it again",
        )
    packages = parse_packages(text, what=path)
    with contextlib.suppress(OSError):
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}")
        with tmp.open("wb") as f:
            pickle.dump(packages, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, cached)
    return packages


def _unsigned_text(data: bytes) -> bytes:
    """The message of a clearsigned file, for --insecure-allow-unsigned only."""
    text = data.decode("utf-8", errors="replace")
    if text.startswith("-----BEGIN PGP SIGNED MESSAGE-----"):
        body = text.split("\n\n", 1)[1]
        body = body.split("\n-----BEGIN PGP SIGNATURE-----", 1)[0]
        lines = [ln[2:] if ln.startswith("- ") else ln for ln in body.split("\n")]
        text = "\n".join(lines) + "\n"
    return text.encode()


class DebianSnapshots:
    """Fetches and verifies Debian-format snapshots."""

    def __init__(self, fetcher: Fetcher, sources: Sources) -> None:
        self.fetcher = fetcher
        self.sources = sources

    def find_timestamp(self, archive: ArchiveDef, requested: str, suite: str) -> tuple[str, bytes]:
        """The newest snapshot at or before ``requested`` and its InRelease."""
        ts = snapshot_timestamp(requested)
        base = self.sources.base_url(archive, ts)
        url = f"{base}dists/{suite}/InRelease"
        try:
            got = self.fetcher.get(url, max_size=64 << 20)
        except NotFound:
            older = self._newest_listed(archive, ts)
            if older is None:
                raise ArchiveError(
                    f"{archive.name}: no snapshot at or before {ts} ({url} not found)",
                    hint="check the date and the mirror (--mirror NAME=URL)",
                ) from None
            ts = older
            url = f"{self.sources.base_url(archive, ts)}dists/{suite}/InRelease"
            got = self.fetcher.get(url, max_size=64 << 20)
        # A snapshot service that redirects reveals the real timestamp.
        found = TIMESTAMP_RE.findall(got.url)
        if found and found[-1] <= ts:
            ts = found[-1]
        return ts, got.data

    def _newest_listed(self, archive: ArchiveDef, ts: str) -> str | None:
        prefix = self.sources.base_url(archive, ts).split(ts, 1)[0]
        try:
            if prefix.startswith("file://"):
                names = os.listdir(prefix[len("file://") :])
            else:
                names = TIMESTAMP_RE.findall(self.fetcher.get(prefix).data.decode(errors="replace"))
        except (OSError, FetchError):
            return None
        found = sorted({n for n in names if TIMESTAMP_RE.fullmatch(n) and n <= ts})
        return found[-1] if found else None

    def acquire(self, name: str, step: Step, archive: ArchiveDef) -> SnapshotIndex:
        p = step.param_data()
        suites = p.get("suites") or []
        if not suites:
            raise UsageError(f"snapshot '{name}' names no suites (e.g. suites = [ \"bookworm\" ];)")
        components = tuple(p.get("components") or archive.components or ("main",))
        arch = p.get("arch") or archive.arch or "amd64"
        keyring = None if self.sources.insecure else self.sources.keyring(archive)
        ts, first = self.find_timestamp(archive, p["date"], suites[0])
        base = self.sources.base_url(archive, ts)
        suite_locks: list[SuiteLock] = []
        raw: list[tuple[str, str, str, bytes]] = []
        for i, suite in enumerate(suites):
            data = first if i == 0 else self.fetcher.get(f"{base}dists/{suite}/InRelease").data
            what = f"{archive.name}/{ts}/dists/{suite}/InRelease"
            verified = self._verify(data, keyring, what)
            release = verified.release
            check_dates(
                release,
                now=datetime.now(UTC),
                taken=datetime.strptime(ts, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC),
                allow_expired=self.sources.allow_expired,
                what=what,
            )
            indexes: dict[str, str] = {}
            for comp in components:
                data_, served, _ = self._packages(base, suite, release, comp, arch, what)
                path, digest = _recorded_index(release, served, data_)
                indexes[path] = digest
                raw.append((f"{suite}/{path}", digest, served, data_))
            suite_locks.append(
                SuiteLock(
                    suite=suite,
                    inrelease_sha256=verified.file_sha256,
                    fingerprint=verified.fingerprint if verified.signers else None,
                    date=release.date.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    indexes=indexes,
                )
            )
        lock = SnapshotLock(
            name=name,
            step=step.key,
            archive=archive.name,
            format=archive.format,
            requested=p["date"],
            timestamp=ts,
            url=archive.snapshot_url(ts),
            architecture=arch,
            components=components,
            suites=tuple(suite_locks),
            signed=not self.sources.insecure,
        )
        return SnapshotIndex(lock, indexes=tuple(raw))

    def _verify(self, data: bytes, keyring: Path | None, what: str) -> VerifiedRelease:
        if keyring is not None:
            return verify_inrelease(data, keyring, what=what)
        text = _unsigned_text(data)
        return VerifiedRelease(
            release=parse_release(text.decode("utf-8", errors="replace"), what=what),
            signers=(),
            file_sha256=hashlib.sha256(data).hexdigest(),
            signed_text=text,
        )

    def _packages(
        self, base: str, suite: str, release: Any, comp: str, arch: str, what: str
    ) -> tuple[bytes, str, str]:
        last: Exception | None = None
        for entry in packages_index_candidates(release, comp, arch):
            url = f"{base}dists/{suite}/{entry.path}"
            try:
                data = self.fetcher.get(url, max_size=entry.size).data
            except NotFound as exc:
                last = exc
                continue
            check_index(release, entry.path, data, what=url)
            return data, entry.path, entry.sha256
        raise ArchiveError(
            f"{what}: no Packages index for {comp}/binary-{arch} could be fetched ({last})",
            hint="the mirror is missing files the signed Release lists",
        )


def _recorded_index(release: Any, served: str, data: bytes) -> tuple[str, str]:
    """How a lockfile records a Packages index: by the uncompressed name the
    Release gives it and the sha256 the Release lists for that name, whatever
    compression this mirror served, so that every mirror of a snapshot gives
    the same lockfile. A Release listing only compressed files gets the
    sha256 of the decompressed bytes (the served file was checked first)."""
    base = served
    for suffix in (".xz", ".gz"):
        base = base.removesuffix(suffix)
    entry = release.entry(base)
    if entry is not None:
        return base, str(entry.sha256)
    if base == served:
        return base, hashlib.sha256(data).hexdigest()
    return base, hashlib.sha256(decompress_index(served, data)).hexdigest()



def _refuse_unconfigurable(
    step: Step, request: Any, members: Sequence[LockedPackage], snaps: Sequence[SnapshotIndex]
) -> None:
    """``variant = "none"`` with dpkg in the set runs maintainer scripts (and
    reprobuild's own configure script) under /bin/sh with coreutils: without a
    shell or coreutils, dpkg would fail with "rm: not found". Refused at lock,
    naming those and the other Essential packages (Debian Policy 3.8) missing."""
    params = step.param_data()
    names = {m.name for m in members}
    configure = params.get("configure")
    if request.variant != "none" or configure is False or not (configure or "dpkg" in names):
        return
    needed = [] if "coreutils" in names else ["coreutils"]
    if not names & {"dash", "bash"}:
        needed.append("dash")
    if not needed:
        return
    essential = sorted({p.name for s in snaps for p in s.packages() if p.essential} - names)
    others = [e for e in essential if e not in needed]
    err = ResolveError(
        f'variant = "none" with dpkg in the package set runs the maintainer scripts under '
        f"/bin/sh with coreutils; missing: {', '.join(needed)}"
        + (
            f" (other Essential packages scripts may assume: {', '.join(others)})" if others else ""
        ),
        hint=f'use variant = "essential", add {" and ".join(needed)} to packages, or set '
        "configure = false to unpack without running scripts",
    )
    err.where = (step.key, "variant", None)
    raise err


RESOLUTION_CACHE_VERSION = 1  # bump when resolve.py can choose differently


def _lock_deb(request: Any, snaps: Sequence[SnapshotIndex]) -> list[LockedPackage]:
    """Resolve a Debian request; the answer is cached by the verified indexes'
    sha256 (resolution is a pure function of them), so locking again needs
    neither parsing nor resolving."""
    from reprobuild.archives.debian.resolve import DebianUniverse, resolve

    key_material = {
        "v": RESOLUTION_CACHE_VERSION,
        "indexes": [[s.lock.name, [[p, h] for p, h, _, _ in s.indexes]] for s in snaps],
        "request": [list(request.packages), request.variant, request.architecture],
    }
    cache = cache_dir() / f"resolve-{sha256_hex(canonical_json(key_material).encode())}.json"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return [LockedPackage(**entry) for entry in json.loads(cache.read_text())]
    origin: dict[int, str] = {}
    pool: list[BinaryPackage] = []
    for snap in snaps:
        for pkg in snap.packages():
            origin[id(pkg)] = snap.lock.name
            pool.append(pkg)
    universe = DebianUniverse.from_packages(pool, architecture=request.architecture)
    resolution = resolve(universe, request)
    members = [
        LockedPackage(
            name=pkg.name,
            version=pkg.version,
            architecture=pkg.architecture,
            filename=pkg.filename,
            size=pkg.size,
            sha256=pkg.sha256,
            snapshot=origin.get(id(pkg), snaps[0].lock.name),
        )
        for pkg in resolution.packages
    ]
    with contextlib.suppress(OSError):
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
        tmp.write_text(canonical_json([vars(m) for m in members]))
        os.replace(tmp, cache)
    return members


def lock_rootfs(step: Step, snaps: Sequence[SnapshotIndex]) -> list[LockedPackage]:
    """Resolve one rootfs step over its snapshots as apt would (errors point at
    the step's argument they concern)."""
    from reprobuild.archives.debian.resolve import Request

    p = step.param_data()
    if p.get("installer") == "debootstrap":
        from reprobuild.archives.debian.debootstrap_resolve import lock_debootstrap

        if len(snaps) != 1:
            raise UsageError(f"rootfs '{step.name}': installer \"debootstrap\" takes one snapshot")
        return lock_debootstrap(p, snaps[0])
    arch = snaps[0].lock.architecture
    request = Request(tuple(p.get("packages") or ()), p.get("variant") or "none", arch)
    try:
        members = _lock_deb(request, snaps)
    except ReprobuildError as exc:
        requested = getattr(exc, "request", None)
        exc.where = exc.where or (step.key, "packages" if requested else "", requested)
        raise
    _refuse_unconfigurable(step, request, members, snaps)
    return members
