"""``reprobuild lock``: snapshot steps and rootfs steps -> a lockfile.

For each snapshot: its distribution's class (:mod:`reprobuild.archives.formats`)
finds the snapshot at or before the recipe's date and fetches and verifies its
signed indexes. For each rootfs: the class resolves its request over the
indexes of its snapshots, as the distribution's own package manager would.
Here: where archives are read from (:class:`Sources`), the step names, and
the lockfile assembled from what the classes found.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reprobuild.archives import ArchiveDef, load_archive, snapshot_timestamp
from reprobuild.archives.formats import AcquiredSnapshot, for_archive, package_format
from reprobuild.canonical import canonical_json
from reprobuild.errors import ReprobuildError, SignatureError, UsageError
from reprobuild.fetch import Fetcher
from reprobuild.lockfile import LockedPackage, Lockfile, RootfsLock
from reprobuild.plan import Plan, Step, sha256_hex


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


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "reprobuild" / "index"


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
    acquired: dict[str, AcquiredSnapshot] = {}
    for key, name in snapshot_names(plan).items():
        step = plan.steps[key]
        if date is not None:
            step = _with_date(step, date)
        params = step.param_data()
        with _pointing_at(step.key, "archive"):
            archive = load_archive(params["archive"])
        if date is None:
            with _pointing_at(step.key, "date"):
                refuse_future(params["date"])
        else:
            refuse_future(date)
        acquired[key] = for_archive(archive).acquire(name, step, archive, fetcher, sources)
    locked: dict[tuple[str, str, str], LockedPackage] = {}
    roots: list[RootfsLock] = []
    for name, step, snap_keys, rkey in rootfs_requests(plan):
        snaps = [acquired[k] for k in snap_keys]
        formats = sorted({s.lock.format for s in snaps})
        if len(formats) > 1:
            raise UsageError(
                f"rootfs '{name}' mixes snapshots of different package formats "
                f"({', '.join(formats)})"
            )
        members, variant = package_format(formats[0]).lock_rootfs(
            step, snaps, fetcher=fetcher, sources=sources, warn=warn
        )
        for lp in members:
            locked[(lp.name, lp.version, lp.architecture)] = lp
        roots.append(
            RootfsLock(
                name=name,
                key=rkey,
                snapshots=tuple(s.lock.name for s in snaps),
                variant=variant,
                request=tuple(step.param_data().get("packages") or ()),
                packages=tuple(sorted(lp.ident for lp in members)),
            )
        )
    return Lockfile(
        recipe=recipe_sha256,
        sources=dict(sources_map),
        snapshots=tuple(sorted((a.lock for a in acquired.values()), key=lambda s: s.name)),
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


def _with_date(step: Step, date: str) -> Step:
    params = step.param_data()
    params["date"] = date
    from dataclasses import replace

    return replace(step, params=canonical_json(params))


__all__ = [
    "SignatureError",
    "Sources",
    "build_lock",
    "resolution_key",
    "rootfs_requests",
    "snapshot_names",
]
