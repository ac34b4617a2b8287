"""Steps that bring bytes in: locked packages, pinned URLs, recipe files, snapshots.

Every byte is checked against the hash that vouches for it before the store
accepts it (the store verifies again as it writes), and nothing is fetched
that the store already has: a package fetched for one build serves every
later build and replay, with or without the mirror.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from reprobuild.archives import load_archive
from reprobuild.archives.formats import package_format
from reprobuild.canonical import canonical_json
from reprobuild.errors import FetchError, IntegrityError, UsageError
from reprobuild.fetch import NotFound
from reprobuild.store import Output

if TYPE_CHECKING:
    from reprobuild.buildgraph import BuildStep
    from reprobuild.execute import StepContext
    from reprobuild.locking import Sources
    from reprobuild.stepparams import (
        FetchParams,
        FetchurlParams,
        FileParams,
        IndexParams,
        PackagePin,
        SnapshotParams,
    )

# reprobuild.execute finds these through its RUNNERS table.
__all__ = [
    "check_package_signature",
    "run_fetch",
    "run_fetchurl",
    "run_file",
    "run_index",
    "run_snapshot",
]

# Which of Sources.base_urls held the last package of an archive (a mirror given
# as the archive's root): later packages try it first instead of a 404 each.
_MIRROR_LAYOUT: dict[str, int] = {}


def run_fetch(step: BuildStep, params: FetchParams, ctx: StepContext) -> tuple[Output, ...]:
    """A locked package: from the store if present, else from the snapshot."""
    pkg, snap = params.package, params.snapshot
    assert pkg is not None and snap is not None
    name = PurePosixPath(pkg.filename).name
    media = package_format(snap.format).package_media_type
    if ctx.store.has(pkg.sha256):
        if _intact(ctx, pkg.sha256):
            check_package_signature(params, ctx.store.path_of(pkg.sha256), ctx.sources)
            return (Output(name, pkg.sha256, pkg.size, media),)
        ctx.log(f"{name}: the stored copy is damaged; fetching it again")
    seeded = _from_input_store(ctx, pkg)
    if seeded is not None:
        check_package_signature(params, ctx.store.path_of(pkg.sha256), ctx.sources)
        return (Output(name, seeded, pkg.size, media),)
    archive = load_archive(snap.archive)
    dest = ctx.workdir / name
    candidates = ctx.sources.base_urls(archive, snap.timestamp)
    last = min(_MIRROR_LAYOUT.get(archive.name, 0), len(candidates) - 1)
    bases = [candidates[last], *(b for i, b in enumerate(candidates) if i != last)]
    tried: list[str] = []
    for base in bases:
        url = base + pkg.filename
        tried.append(url)
        try:
            ctx.fetcher.download(url, dest, sha256=pkg.sha256, size=pkg.size)
            _MIRROR_LAYOUT[archive.name] = candidates.index(base)
            break
        except NotFound:
            if len(tried) < len(bases):
                continue
            cause = "does not exist"
        except FetchError as exc:
            cause = f"failed: {exc.message}"
        where = " nor ".join(tried)
        raise FetchError(
            f"{pkg.name} {pkg.version} ({pkg.architecture}, sha256 {pkg.sha256}) "
            f"is not in the store ({ctx.store.path}) and {where} {cause}",
            hint="pull a store that has it ('reprobuild store pull REMOTE') or point "
            f"--mirror {archive.name}=URL at a mirror that keeps this snapshot",
        ) from None
    try:
        check_package_signature(params, dest, ctx.sources)
    except BaseException:
        dest.unlink(missing_ok=True)  # never stored: a refused package is not kept
        raise
    blob = ctx.store.put_file(dest, expected_sha256=pkg.sha256, expected_size=pkg.size, whole=True)
    dest.unlink()
    return (Output(name, blob.sha256, blob.size, media),)


def run_index(step: BuildStep, p: IndexParams, ctx: StepContext) -> tuple[Output, ...]:
    """A signed Release or an index the lockfile pinned by sha256 (for steps that
    need the archive's own text, such as installer "debootstrap").

    An index pinned by its uncompressed name (``.../Packages``, as lockfiles
    record it) is fetched in whichever form the mirror serves (``.xz``,
    ``.gz``, plain), decompressed, and kept if the result has the pinned sha256.
    """
    from reprobuild.archives.debian.index import decompress_index

    snap = p.snapshot
    assert snap is not None
    path, sha256 = p.path, p.sha256
    name = PurePosixPath(path).name
    if ctx.store.has(sha256) and _intact(ctx, sha256):
        return (Output(name, sha256, ctx.store.size(sha256)),)
    archive = load_archive(snap.archive)
    base = ctx.sources.base_url(archive, snap.timestamp)
    plain = not path.endswith((".xz", ".gz")) and PurePosixPath(path).name == "Packages"
    forms = [f"{path}.xz", f"{path}.gz", path] if plain else [path]
    failures = []
    for form in forms:
        url = base + form
        try:
            data = ctx.fetcher.get(url, max_size=1 << 31).data
        except NotFound as exc:
            failures.append(exc.message)
            continue
        except FetchError as exc:
            raise FetchError(
                f"{path} (sha256 {sha256}) is not in the store and {url} failed: "
                f"{exc.message}",
                hint=f"point --mirror {archive.name}=URL at a mirror that keeps this snapshot",
            ) from None
        content = decompress_index(form, data) if form != path else data
        if hashlib.sha256(content).hexdigest() != sha256:
            raise IntegrityError(
                f"{url}: its content is not the {path} the lockfile pins (sha256 {sha256})",
                hint="the mirror serves another snapshot, or a damaged file",
            )
        blob = ctx.store.put_bytes(content)
        return (Output(name, blob.sha256, blob.size),)
    raise FetchError(
        f"{path} (sha256 {sha256}) is not in the store and the mirror has none of "
        f"{', '.join(forms)} ({'; '.join(failures)})",
        hint=f"point --mirror {archive.name}=URL at a mirror that keeps this snapshot",
    )


def check_package_signature(params: FetchParams, path: Path, sources: Sources) -> None:
    """A package that carries its own signature (Arch Linux) is verified against the
    one the lockfile pins before anything uses it, fetched or from the store (a
    Debian package: its signed index vouched for its sha256 at lock)."""
    pkg, snap = params.package, params.snapshot
    assert pkg is not None and snap is not None
    package_format(snap.format).check_package(
        pkg.to_json(), path, sources, load_archive(snap.archive)
    )


INPUT_STORE = "REPROBUILD_INPUT_STORE"
_input_stores: dict[str, Any] = {}


def input_store() -> Any:
    """The store ``REPROBUILD_INPUT_STORE`` names, opened once (None: none)."""
    import os

    from reprobuild.errors import ReprobuildError

    where = os.environ.get(INPUT_STORE)
    if not where:
        return None
    if where not in _input_stores:
        from reprobuild.store import Store

        try:
            _input_stores[where] = Store.open_store(where, create=False)
        except ReprobuildError:
            _input_stores[where] = None
    return _input_stores[where]


def read_input_store(sha256: str, limit: int) -> bytes | None:
    """Small signed files (InRelease, indexes) from the input store, hash-checked."""
    import hashlib

    other = input_store()
    if other is None or not other.has(sha256) or other.size(sha256) > limit:
        return None
    data: bytes = other.read_bytes(sha256)
    return data if hashlib.sha256(data).hexdigest() == sha256 else None


def _from_input_store(ctx: StepContext, pkg: PackagePin) -> str | None:
    """A package from another store named by ``REPROBUILD_INPUT_STORE`` (read
    only; ``check`` points its fresh stores at the user's, so packages are not
    fetched again). Copied in by sha256 and size, checked while copied; None
    when that store lacks it (or holds a damaged copy)."""
    from reprobuild.errors import IntegrityError

    other = input_store()
    if other is None or not other.has(pkg.sha256):
        return None
    try:
        blob = ctx.store.put_file(
            other.path_of(pkg.sha256), expected_sha256=pkg.sha256, expected_size=pkg.size
        )
    except (IntegrityError, OSError):
        return None
    return str(blob.sha256)


def _intact(ctx: StepContext, sha256: str) -> bool:
    """Inputs are re-hashed before use: a damaged store object is removed (so
    it can be fetched again) rather than built into an image."""
    from reprobuild.fetch import sha256_file

    if not ctx.store.is_whole(sha256):
        return ctx.store.intact(sha256)  # chunked (a migrated store): chunk by chunk
    path = ctx.store.path_of(sha256)
    if sha256_file(path)[0] == sha256:
        return True
    ctx.store.content.remove(sha256)
    return False


FETCHURL_MAX_SIZE = ("REPROBUILD_FETCHURL_MAX_SIZE", 1 << 30)


def fetchurl_limit() -> int:
    """Largest download a fetchurl without ``size`` may bring (the setting, 1 GiB)."""
    import os

    var, default = FETCHURL_MAX_SIZE
    value = os.environ.get(var, "")
    if not value:
        return default
    if not value.isdigit() or int(value) <= 0:
        raise UsageError(f"{var}={value!r} is not a positive byte count")
    return int(value)


def run_fetchurl(step: BuildStep, p: FetchurlParams, ctx: StepContext) -> tuple[Output, ...]:
    """A file from the network: http(s) only (a host file is the file step's job),
    at most its declared size (else :func:`fetchurl_limit`), verified before use."""
    from urllib.parse import urlsplit

    url = p.url
    if urlsplit(url).scheme not in ("http", "https"):
        raise UsageError(f"fetchurl takes http or https URLs only, not {url.split(':', 1)[0]!r}")
    # (a step's display name is not one of its parameters: the URL names the output)
    name = PurePosixPath(url.split("?", 1)[0]).name or "download"
    if ctx.store.has(p.sha256):
        return (Output(name, p.sha256, ctx.store.size(p.sha256)),)
    dest = ctx.workdir / "download"
    try:
        ctx.fetcher.download(
            url, dest, sha256=p.sha256, size=p.size, max_size=p.size or fetchurl_limit()
        )
    finally:  # a failed download leaves nothing behind
        dest.with_name(dest.name + ".part").unlink(missing_ok=True)
    blob = ctx.store.put_file(dest, expected_sha256=p.sha256)
    return (Output(name, blob.sha256, blob.size),)


def run_file(step: BuildStep, p: FileParams, ctx: StepContext) -> tuple[Output, ...]:
    if p.text is not None:
        blob = ctx.store.put_bytes(p.text.encode("utf-8"))
        return (Output("file", blob.sha256, blob.size, "text/plain"),)
    ref = p.path
    if ref is None:
        raise UsageError("file step: give path or text")
    if ref.sha256 is None:
        raise UsageError(f"file step: {ref.path} is a directory; name a file")
    blob = ctx.store.put_file(ctx.recipe_dir / ref.path, expected_sha256=ref.sha256)
    return (Output(PurePosixPath(ref.path).name, blob.sha256, blob.size),)


def run_snapshot(step: BuildStep, p: SnapshotParams, ctx: StepContext) -> tuple[Output, ...]:
    """The snapshot as locked: a small JSON record other steps and replays read."""
    data = canonical_json(step.pinned_snapshot.to_json()).encode()
    blob = ctx.store.put_bytes(data)
    return (Output("snapshot.json", blob.sha256, blob.size, "application/json"),)
