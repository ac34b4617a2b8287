"""Steps that bring bytes in: locked packages, pinned URLs, recipe files, snapshots.

Every byte is checked against the hash that vouches for it before the store
accepts it (the store verifies again as it writes), and nothing is fetched
that the store already has: a package fetched for one build serves every
later build and replay, with or without the mirror.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from reprobuild.archives import load_archive
from reprobuild.errors import FetchError, UsageError
from reprobuild.fetch import NotFound
from reprobuild.plan import canonical_json
from reprobuild.store import Output

if TYPE_CHECKING:
    from reprobuild.buildgraph import BuildStep
    from reprobuild.execute import StepContext

# reprobuild.execute finds these through its RUNNERS table.
__all__ = ["run_fetch", "run_fetchurl", "run_file", "run_index", "run_snapshot"]

DEB = "application/vnd.debian.binary-package"
ALPM = "application/x-alpm-package"


def run_fetch(step: BuildStep, ctx: StepContext) -> tuple[Output, ...]:
    """A locked package: from the store if present, else from the snapshot."""
    pkg = step.data["package"]
    snap = step.data["snapshot"]
    name = PurePosixPath(pkg["filename"]).name
    media = ALPM if snap["format"] == "alpm" else DEB
    if ctx.store.has(pkg["sha256"]):
        if _intact(ctx, pkg["sha256"]):
            return (Output(name, pkg["sha256"], pkg["size"], media),)
        ctx.log(f"{name}: the stored copy is damaged; fetching it again")
    archive = load_archive(snap["archive"])
    base = ctx.sources.base_url(archive, snap["timestamp"])
    url = base + pkg["filename"]
    dest = ctx.workdir / name
    try:
        ctx.fetcher.download(url, dest, sha256=pkg["sha256"], size=pkg["size"])
    except FetchError as exc:
        cause = "does not exist" if isinstance(exc, NotFound) else f"failed: {exc.message}"
        raise FetchError(
            f"{pkg['name']} {pkg['version']} ({pkg['architecture']}, sha256 {pkg['sha256']}) "
            f"is not in the store ({ctx.store.path}) and {url} {cause}",
            hint="pull a store that has it ('reprobuild store pull REMOTE') or point "
            f"--mirror {archive.name}=URL at a mirror that keeps this snapshot",
        ) from None
    blob = ctx.store.put_file(dest, expected_sha256=pkg["sha256"], expected_size=pkg["size"])
    dest.unlink()
    return (Output(name, blob.sha256, blob.size, media),)


def run_index(step: BuildStep, ctx: StepContext) -> tuple[Output, ...]:
    """A signed Release or an index the lockfile pinned by sha256 (for steps that
    need the archive's own text, such as installer "debootstrap")."""
    f = step.data["file"]
    snap = step.data["snapshot"]
    name = PurePosixPath(f["path"]).name
    if ctx.store.has(f["sha256"]) and _intact(ctx, f["sha256"]):
        return (Output(name, f["sha256"], ctx.store.size(f["sha256"])),)
    archive = load_archive(snap["archive"])
    url = ctx.sources.base_url(archive, snap["timestamp"]) + f["path"]
    dest = ctx.workdir / name
    try:
        ctx.fetcher.download(url, dest, sha256=f["sha256"])
    except FetchError as exc:
        raise FetchError(
            f"{f['path']} (sha256 {f['sha256']}) is not in the store and {url} failed: "
            f"{exc.message}",
            hint=f"point --mirror {archive.name}=URL at a mirror that keeps this snapshot",
        ) from None
    blob = ctx.store.put_file(dest, expected_sha256=f["sha256"])
    dest.unlink()
    return (Output(name, blob.sha256, blob.size),)


def _intact(ctx: StepContext, sha256: str) -> bool:
    """Inputs are re-hashed before use: a damaged store object is removed (so
    it can be fetched again) rather than built into an image."""
    from reprobuild.fetch import sha256_file

    path = ctx.store.path_of(sha256)
    if sha256_file(path)[0] == sha256:
        return True
    ctx.store.content.remove(sha256)
    return False


def run_fetchurl(step: BuildStep, ctx: StepContext) -> tuple[Output, ...]:
    p = step.data["params"]
    name = p.get("name") or PurePosixPath(p["url"].split("?", 1)[0]).name or "download"
    if ctx.store.has(p["sha256"]):
        return (Output(name, p["sha256"], ctx.store.size(p["sha256"])),)
    dest = ctx.workdir / "download"
    ctx.fetcher.download(p["url"], dest, sha256=p["sha256"], size=p.get("size"))
    blob = ctx.store.put_file(dest, expected_sha256=p["sha256"])
    return (Output(name, blob.sha256, blob.size),)


def run_file(step: BuildStep, ctx: StepContext) -> tuple[Output, ...]:
    p = step.data["params"]
    if p.get("text") is not None:
        blob = ctx.store.put_bytes(p["text"].encode("utf-8"))
        return (Output(p.get("name") or "file", blob.sha256, blob.size, "text/plain"),)
    ref = p["path"]
    src = ctx.recipe_dir / ref["path"]
    if "sha256" not in ref:
        raise UsageError(f"file step: {ref['path']} is a directory; name a file")
    blob = ctx.store.put_file(Path(src), expected_sha256=ref["sha256"])
    return (Output(p.get("name") or PurePosixPath(ref["path"]).name, blob.sha256, blob.size),)


def run_snapshot(step: BuildStep, ctx: StepContext) -> tuple[Output, ...]:
    """The snapshot as locked: a small JSON record other steps and replays read."""
    data = canonical_json(step.data["snapshot"]).encode()
    blob = ctx.store.put_bytes(data)
    return (Output("snapshot.json", blob.sha256, blob.size, "application/json"),)
