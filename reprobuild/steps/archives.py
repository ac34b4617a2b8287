"""Archive outputs of a tree: ``tarball`` (and, later, ``cpio``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    compression: Compression = step.data["params"].get("compression") or "none"
    tree = ctx.input(step.data["params"]["root"]["step"]).outputs[0]
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
