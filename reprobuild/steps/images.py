"""Image outputs of trees: ``oci_image`` (and, as exporters land, ISO and disks).

An OCI image step stores two things: the manifest (its sha256 *is* the
manifest digest a registry serves, so it is the output's digest) and the
``oci-archive`` tar of the whole layout, from which ``build`` writes both
``out/NAME/`` (the layout) and ``out/NAME.tar``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprobuild.export.oci import ImageConfig, write_oci_archive, write_oci_layout
from reprobuild.store import Output

if TYPE_CHECKING:
    from reprobuild.buildgraph import BuildStep
    from reprobuild.execute import StepContext

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_ARCHIVE = "application/vnd.oci.image.layout.v1+tar"


def _tree_path(ctx: StepContext, ref: dict[str, Any]) -> Path:
    return ctx.store.path_of(ctx.input(ref["step"]).outputs[0].sha256)


def run_oci_image(step: BuildStep, ctx: StepContext) -> tuple[Output, ...]:
    p = step.data["params"]
    refs = p.get("layers") or [p["root"]]
    layers = [_tree_path(ctx, r) for r in refs]
    config = ImageConfig(
        entrypoint=p.get("entrypoint"),
        cmd=p.get("cmd"),
        env=p.get("env") or {},
        workdir=p.get("workdir"),
        user=p.get("user"),
        labels=p.get("labels") or {},
        exposed_ports=tuple(p.get("exposed_ports") or ()),
        architecture=p.get("architecture") or step.data.get("architecture") or "amd64",
        tag=p.get("tag"),
    )
    layout = ctx.workdir / "layout"
    image = write_oci_layout(
        layers, config, layout, compression=p.get("compression") or "gzip", epoch=ctx.epoch
    )
    archive = ctx.workdir / "oci.tar"
    write_oci_archive(layout, archive, epoch=ctx.epoch)
    digest = image.manifest_digest.removeprefix("sha256:")
    manifest = layout / "blobs" / "sha256" / digest
    m_blob = ctx.store.put_file(manifest, expected_sha256=digest)
    a_blob = ctx.store.put_file(archive)
    return (
        Output("manifest.json", m_blob.sha256, m_blob.size, MANIFEST),
        Output("oci.tar", a_blob.sha256, a_blob.size, OCI_ARCHIVE),
    )
