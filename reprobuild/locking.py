"""``reprobuild lock``: snapshot steps and rootfs steps -> a lockfile.

For each snapshot: find the snapshot at or before the recipe's date, fetch
and verify its signed ``InRelease``, fetch the ``Packages`` indexes it
vouches for, and parse them (cached by sha256). For each rootfs: resolve its
request over the combined indexes of its snapshots, as apt would.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import pickle
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reprobuild.archives import ArchiveDef, load_archive, snapshot_timestamp
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
    SignatureError,
    UsageError,
)
from reprobuild.fetch import Fetcher, NotFound
from reprobuild.lockfile import LockedPackage, Lockfile, RootfsLock, SnapshotLock, SuiteLock
from reprobuild.plan import Plan, Step, sha256_hex

TIMESTAMP_RE = re.compile(r"(\d{8}T\d{6}Z)")
INDEX_CACHE_VERSION = 2  # bump when BinaryPackage changes


@dataclass(frozen=True)
class Sources:
    """Where archives are read from this time: overrides of the canonical places."""

    mirrors: Mapping[str, str] = field(default_factory=dict)  # archive -> base URL
    keyrings: Mapping[str, Path] = field(default_factory=dict)
    insecure: bool = False
    # Accept a Release whose Valid-Until passed after the snapshot was taken.
    allow_expired: bool = False

    @classmethod
    def from_env(
        cls,
        mirrors: Sequence[str] = (),
        keyrings: Sequence[str] = (),
        insecure: bool = False,
        environ: Mapping[str, str] | None = None,
        allow_expired: bool = False,
    ) -> Sources:
        """Merge ``REPROBUILD_MIRROR_<NAME>``/``REPROBUILD_KEYRING_<NAME>`` with flags
        (flags win). NAME in a variable is upper case with ``-`` as ``_``.
        ``REPROBUILD_ALLOW_EXPIRED=1`` is the same as ``allow_expired``."""
        env = os.environ if environ is None else environ
        allow_expired = allow_expired or env.get("REPROBUILD_ALLOW_EXPIRED", "") not in ("", "0")
        m: dict[str, str] = {}
        k: dict[str, Path] = {}
        for var, value in sorted(env.items()):
            if var.startswith("REPROBUILD_MIRROR_") and value:
                m[var[len("REPROBUILD_MIRROR_") :].lower().replace("_", "-")] = value
            elif var.startswith("REPROBUILD_KEYRING_") and value:
                k[var[len("REPROBUILD_KEYRING_") :].lower().replace("_", "-")] = Path(value)
        for spec in mirrors:
            name, url = _pair(spec, "--mirror", "debian=http://127.0.0.1:8000/archive/debian/")
            m[name] = url
        for spec in keyrings:
            name, path = _pair(spec, "--keyring", "debian=/path/to/keyring.gpg")
            k[name] = Path(path)
        return cls(m, k, insecure, allow_expired)

    def base_url(self, archive: ArchiveDef, timestamp: str) -> str:
        canonical = archive.snapshot_url(timestamp)
        mirror = self.mirrors.get(archive.name)
        if not mirror:
            return canonical
        # The mirror replaces everything before the first placeholder.
        prefix = archive.url.split("{", 1)[0]
        if not mirror.endswith("/"):
            mirror += "/"
        return mirror + canonical[len(prefix) :]

    def base_urls(self, archive: ArchiveDef, timestamp: str) -> list[str]:
        """Where a snapshot may be: the mirror as given, then under each of the
        archive's ``mirror_subdirs`` (a mirror named by its root)."""
        first = self.base_url(archive, timestamp)
        mirror = self.mirrors.get(archive.name)
        if not mirror:
            return [first]
        mirror = mirror if mirror.endswith("/") else mirror + "/"
        rest = first[len(mirror) :]
        return [first, *(mirror + sub + rest for sub in archive.mirror_subdirs)]

    def keyring(self, archive: ArchiveDef) -> Path:
        override = self.keyrings.get(archive.name)
        if override is not None:
            if not override.is_file():
                raise UsageError(f"keyring for {archive.name}: {override} does not exist")
            return override
        return archive.require_keyring()


def _pair(spec: str, flag: str, example: str) -> tuple[str, str]:
    name, sep, value = spec.partition("=")
    if not sep or not name or not value:
        raise UsageError(f"{flag} expects NAME=VALUE, e.g. {flag} {example}; got {spec!r}")
    return name, value


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


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "reprobuild" / "index"


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

    def acquire(self, name: str, step: Step) -> SnapshotIndex:
        p = step.param_data()
        archive = load_archive(p["archive"])
        if archive.format != "deb":
            raise ArchiveError(
                f"snapshot '{name}': locking {archive.format} archives ({archive.name}) "
                "is not implemented yet",
                hint="Debian-format archives (debian, debian-security, ubuntu) can be locked",
            )
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


def resolution_key(snapshot_keys: Sequence[str], params: Mapping[str, Any], arch: str) -> str:
    """What decides a rootfs's package set, and nothing else."""
    material: dict[str, Any] = {
        "snapshots": list(snapshot_keys),
        "variant": params.get("variant"),
        "packages": list(params.get("packages") or []),
        "architecture": arch,
    }
    if params.get("installer") == "debootstrap":
        # debootstrap chooses differently (and adds ca-certificates for https).
        material["installer"] = "debootstrap"
        material["mirror"] = params.get("mirror")
    return sha256_hex(canonical_json(material).encode())


def snapshot_names(plan: Plan) -> dict[str, str]:
    """Step key -> unique display name for the snapshot steps of a plan."""
    return _unique_names([s for s in plan.order() if s.kind == "snapshot"])


def _unique_names(steps: Sequence[Step]) -> dict[str, str]:
    out: dict[str, str] = {}
    used: set[str] = set()
    for s in steps:
        name = s.name
        n = 2
        while name in used:
            name = f"{s.name}-{n}"
            n += 1
        used.add(name)
        out[s.key] = name
    return out


def rootfs_requests(plan: Plan) -> list[tuple[str, Step, list[str], str]]:
    """(name, step, snapshot step keys, resolution key) for every rootfs step."""
    names = _unique_names([s for s in plan.order() if s.kind == "rootfs"])
    out = []
    for s in plan.order():
        if s.kind != "rootfs":
            continue
        p = s.param_data()
        snap = p["snapshot"]
        snap_keys = [x["step"] for x in (snap if isinstance(snap, list) else [snap])]
        arch = plan.steps[snap_keys[0]].param_data().get("arch") or "amd64"
        out.append((names[s.key], s, snap_keys, resolution_key(snap_keys, p, arch)))
    return out


def build_lock(
    plan: Plan,
    *,
    recipe_sha256: str,
    sources_map: Mapping[str, str],
    fetcher: Fetcher,
    sources: Sources,
    date: str | None = None,
    warn: Callable[[str], None] | None = None,
) -> Lockfile:
    """Resolve every snapshot and rootfs of a plan into a lockfile.

    ``warn`` receives what the resolvers warn about (pacman's "removing 'x'
    from target list because it conflicts with 'y'").
    """
    from reprobuild.archives.arch.lock import ArchSnapshot, ArchSnapshots, lock_rootfs

    debian = DebianSnapshots(fetcher, sources)
    arch_linux = ArchSnapshots(fetcher, sources, cache_dir())
    indexes: dict[str, SnapshotIndex | ArchSnapshot] = {}
    for key, name in snapshot_names(plan).items():
        step = plan.steps[key]
        if date is not None:
            step = _with_date(step, date)
        params = step.param_data()
        with _pointing_at(step.key, "archive"):
            fmt = load_archive(params["archive"]).format
        if date is None:
            with _pointing_at(step.key, "date"):
                refuse_future(params["date"])
        else:
            refuse_future(date)
        if fmt == "alpm":
            indexes[key] = arch_linux.acquire(name, params, step.key)
        else:
            indexes[key] = debian.acquire(name, step)
    locked: dict[tuple[str, str, str], LockedPackage] = {}
    roots: list[RootfsLock] = []
    for name, step, snap_keys, rkey in rootfs_requests(plan):
        p = step.param_data()
        formats = {indexes[k].lock.format for k in snap_keys}
        if len(formats) > 1:
            raise UsageError(f"rootfs '{name}' mixes Debian and Arch Linux snapshots")
        if formats == {"alpm"}:
            arch_snaps = [i for k in snap_keys if isinstance(i := indexes[k], ArchSnapshot)]
            members = lock_rootfs(p, arch_snaps, fetcher=fetcher, sources=sources, warn=warn)
            for lp in members:
                locked[(lp.name, lp.version, lp.architecture)] = lp
            roots.append(
                RootfsLock(
                    name=name,
                    key=rkey,
                    snapshots=tuple(indexes[k].lock.name for k in snap_keys),
                    variant=p.get("variant") or "none",
                    request=tuple(p.get("packages") or ()),
                    packages=tuple(sorted(lp.ident for lp in members)),
                )
            )
            continue
        from reprobuild.archives.debian.resolve import Request

        arch = indexes[snap_keys[0]].lock.architecture
        request = Request(tuple(p.get("packages") or ()), p.get("variant") or "none", arch)
        deb_snaps = [i for k in snap_keys if isinstance(i := indexes[k], SnapshotIndex)]
        if p.get("installer") == "debootstrap":
            from reprobuild.resolve_debootstrap import lock_debootstrap

            if len(deb_snaps) != 1:
                raise UsageError(f"rootfs '{name}': installer \"debootstrap\" takes one snapshot")
            members = lock_debootstrap(p, deb_snaps[0])
        else:
            try:
                members = _lock_deb(request, deb_snaps)
            except ReprobuildError as exc:
                requested = getattr(exc, "request", None)
                exc.where = exc.where or (step.key, "packages" if requested else "", requested)
                raise
            _refuse_unconfigurable(step, request, members, deb_snaps)
        idents = []
        for lp in members:
            locked[(lp.name, lp.version, lp.architecture)] = lp
            idents.append(lp.ident)
        roots.append(
            RootfsLock(
                name=name,
                key=rkey,
                snapshots=tuple(indexes[k].lock.name for k in snap_keys),
                variant=request.variant,
                request=request.packages,
                packages=tuple(sorted(idents)),
            )
        )
    return Lockfile(
        recipe=recipe_sha256,
        sources=dict(sources_map),
        snapshots=tuple(sorted((i.lock for i in indexes.values()), key=lambda s: s.name)),
        packages=tuple(sorted(locked.values())),
        rootfs=tuple(sorted(roots, key=lambda r: r.name)),
        insecure=sources.insecure,
    )


@contextlib.contextmanager
def _pointing_at(step_key: str, arg: str, needle: str | None = None) -> Iterator[None]:
    """Errors in the body point at argument ``arg`` of the step (see ReprobuildError.where)."""
    try:
        yield
    except ReprobuildError as exc:
        exc.where = exc.where or (step_key, arg, needle)
        raise


def refuse_future(date: str) -> None:
    """A snapshot date later than now would lock today to the newest snapshot and
    tomorrow to a newer one: the same recipe would not mean the same bytes."""
    ts = snapshot_timestamp(date)
    now = datetime.now(UTC)
    when = datetime.strptime(ts, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if when > now:
        raise UsageError(
            f"the snapshot date {when:%Y-%m-%dT%H:%M:%SZ} is in the future (now "
            f"{now:%Y-%m-%dT%H:%M:%SZ}): locking now and later would pick different snapshots",
            hint="use a date in the past, e.g. today's; the newest snapshot at or before it "
            "is used",
        )


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


def _with_date(step: Step, date: str) -> Step:
    params = step.param_data()
    params["date"] = date
    from dataclasses import replace

    return replace(step, params=canonical_json(params))


__all__ = [
    "DebianSnapshots",
    "SignatureError",
    "SnapshotIndex",
    "Sources",
    "build_lock",
    "resolution_key",
    "rootfs_requests",
    "snapshot_names",
]
