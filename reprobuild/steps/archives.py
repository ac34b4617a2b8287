"""Archive outputs of a tree: ``tarball`` (and, later, ``cpio``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from reprobuild.export.gnutar import export_canonical_excluding, export_gnu_tar, export_posix_tar
from reprobuild.export.tar import export_tarball
from reprobuild.stepparams import TarballParams
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


def run_tarball(step: BuildStep, p: TarballParams, ctx: StepContext) -> tuple[Output, ...]:
    compression = p.compression
    tree = ctx.input(p.root.key).outputs[0]
    if p.format in ("gnu", "posix") or p.exclude:
        with ctx.store.materialized(tree.sha256) as canonical:
            return _written_tarball(ctx, canonical, p)
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


def _written_tarball(ctx: StepContext, canonical: Path, p: TarballParams) -> tuple[Output, ...]:
    """A tarball in GNU tar's format, or with members excluded."""
    exclude = list(p.exclude or ())
    compression = p.compression
    tar = ctx.workdir / "rootfs.tar"
    if p.format == "gnu":
        export_gnu_tar(canonical, tar, exclude=exclude)
    elif p.format == "posix":
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
