"""Archive outputs of a tree: ``tarball`` (and, later, ``cpio``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprobuild.export.gnutar import export_canonical_excluding, export_gnu_tar, export_posix_tar
from reprobuild.export.tar import Compression, export_tarball
from reprobuild.store import Output

if TYPE_CHECKING:
    from reprobuild.buildgraph import BuildStep
    from reprobuild.execute import StepContext

SUFFIX = {"none": ".tar", "gzip": ".tar.gz", "zstd": ".tar.zst", "xz": ".tar.xz"}
MEDIA = {
    "none": "application/x-tar",
    "gzip": "application/gzip",
    "zstd": "application/zstd",
    "xz": "application/x-xz",
}


def run_tarball(step: BuildStep, ctx: StepContext) -> tuple[Output, ...]:
    params = step.data["params"]
    compression: Compression = params.get("compression") or "none"
    tree = ctx.input(params["root"]["step"]).outputs[0]
    exclude = params.get("exclude") or []
    if params.get("format") in ("gnu", "posix") or exclude:
        with ctx.store.materialized(tree.sha256) as canonical:
            return _written_tarball(ctx, canonical, params, compression)
    if compression == "none":
        # Trees travel as canonical tars: an uncompressed tarball is the very
        # same bytes, already in the store. No copy, no second hash.
        return (Output(f"rootfs{SUFFIX['none']}", tree.sha256, tree.size, MEDIA["none"]),)
    dest = ctx.workdir / f"rootfs{SUFFIX[compression]}"
    ctx.log(f"compressing ({compression})")
    with ctx.store.materialized(tree.sha256) as src:
        export_tarball(src, dest, compression)
    blob = ctx.store.put_file(dest)
    return (Output(dest.name, blob.sha256, blob.size, MEDIA[compression]),)


def _written_tarball(
    ctx: StepContext, canonical: Path, params: dict[str, Any], compression: Compression
) -> tuple[Output, ...]:
    """A tarball in GNU tar's format, or with members excluded."""
    exclude = params.get("exclude") or []
    tar = ctx.workdir / "rootfs.tar"
    if params.get("format") == "gnu":
        export_gnu_tar(canonical, tar, exclude=exclude)
    elif params.get("format") == "posix":
        export_posix_tar(canonical, tar, epoch=ctx.epoch, exclude=exclude)
    else:
        export_canonical_excluding(canonical, tar, exclude=exclude)
    if compression == "none":
        blob = ctx.store.put_file(tar)
        return (Output(tar.name, blob.sha256, blob.size, MEDIA["none"]),)
    dest = ctx.workdir / f"rootfs{SUFFIX[compression]}"
    export_tarball(tar, dest, compression)
    blob = ctx.store.put_file(dest)
    return (Output(dest.name, blob.sha256, blob.size, MEDIA[compression]),)
