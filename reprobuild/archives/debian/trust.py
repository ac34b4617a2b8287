"""A Debian lockfile checked against the archive's signed indexes, at every use.

The three steps of :mod:`reprobuild.index_trust`: each suite's InRelease (from
the store by the sha256 the lockfile records, else fetched) verified with the
archive's keyring and signed by the key the lockfile names; each index listed
in that Release with the sha256 recorded; each locked package listed in
those indexes exactly as pinned.
"""

from __future__ import annotations

import hashlib
from typing import Any

from reprobuild.archives.debian.index import check_index, verify_inrelease
from reprobuild.archives.debian.lock import _parsed_index, _recorded_index
from reprobuild.errors import FetchError, IntegrityError, LockfileError
from reprobuild.index_trust import (
    SignedFile,
    TrustContext,
    UnlistedPackage,
    signed_bytes,
    snapshot_archive,
)
from reprobuild.lockfile import LockedPackage, SnapshotLock

__all__ = ["verify_debian"]


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
            return form, signed_bytes(ctx, entry.sha256, "", form, entry.size)
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
    """Steps 1 to 3 of :mod:`reprobuild.index_trust` for one Debian snapshot."""
    archive = snapshot_archive(snap)
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
        data = signed_bytes(
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

        material = {
            "v": 1,
            "inreleases": [
                [s.suite, s.inrelease_sha256, sorted(s.indexes.items())] for s in snap.suites
            ],
            "packages": sorted(
                [p.name, p.version, p.architecture, p.filename, p.size, p.sha256] for p in packages
            ),
        }
        self.key = hashlib.sha256(canonical_json(material).encode()).hexdigest()

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
