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


def _tree_blob(step: BuildStep, ctx: StepContext) -> str:
    root = step.data["params"]["root"]
    record = ctx.input(root["step"])
    return record.outputs[0].sha256


def run_tarball(step: BuildStep, ctx: StepContext) -> tuple[Output, ...]:
    compression: Compression = step.data["params"].get("compression") or "none"
    src = ctx.store.path_of(_tree_blob(step, ctx))
    dest = ctx.workdir / f"rootfs{SUFFIX[compression]}"
    export_tarball(src, dest, compression)
    blob = ctx.store.put_file(dest)
    return (Output(dest.name, blob.sha256, blob.size, MEDIA[compression]),)
