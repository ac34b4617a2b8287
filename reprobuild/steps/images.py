"""Image outputs of trees: OCI images and indexes, ISO 9660, disks, cpio, squashfs.

An OCI image step stores two things: the manifest (its sha256 *is* the
manifest digest a registry serves, so it is the output's digest) and the
``oci-archive`` tar of the whole layout, from which ``build`` writes both
``out/NAME/`` (the layout) and ``out/NAME.tar``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprobuild.archives.formats import package_format
from reprobuild.export.cpio import export_cpio
from reprobuild.export.disk import export_disk
from reprobuild.export.iso import export_iso
from reprobuild.export.oci import (
    ImageConfig,
    OciImage,
    write_image_index,
    write_oci_archive,
    write_oci_layout,
)
from reprobuild.export.squashfs import export_squashfs
from reprobuild.stepparams import (
    CpioParams,
    DiskImageParams,
    ImageIndexParams,
    Iso9660Params,
    OciImageParams,
    SquashfsParams,
    StepRef,
)
from reprobuild.store import Output

if TYPE_CHECKING:
    from reprobuild.buildgraph import BuildStep
    from reprobuild.execute import StepContext

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_ARCHIVE = "application/vnd.oci.image.layout.v1+tar"


def _tree_path(ctx: StepContext, ref: StepRef, stack: contextlib.ExitStack) -> Path:
    """The input tree's canonical tar as a file while ``stack`` is open (no copy when
    the store keeps it whole; a verified temp copy when it keeps it as chunks)."""
    return stack.enter_context(ctx.store.materialized(ctx.input(ref.key).outputs[0].sha256))


def run_oci_image(step: BuildStep, p: OciImageParams, ctx: StepContext) -> tuple[Output, ...]:
    with contextlib.ExitStack() as stack:
        return _oci_image(step, p, ctx, stack)


def image_config(step: BuildStep, p: OciImageParams) -> ImageConfig:
    """The image configuration of an oci_image step. An explicit architecture is
    taken as written; else the root's packages say (an arm64 root: arm64/v8)."""
    architecture, variant = "amd64", None
    if p.architecture:
        architecture = p.architecture
    elif step.package_format and step.architecture:
        packages = package_format(step.package_format)
        architecture, variant = packages.platform(step.architecture)
    return ImageConfig(
        entrypoint=p.entrypoint and list(p.entrypoint),
        cmd=p.cmd and list(p.cmd),
        env=dict(p.env),
        workdir=p.workdir,
        user=p.user,
        labels=dict(p.labels),
        exposed_ports=p.exposed_ports,
        architecture=architecture,
        variant=variant,
        tag=p.tag,
        annotations=step.image_annotations,
    )


def _oci_image(
    step: BuildStep, p: OciImageParams, ctx: StepContext, stack: contextlib.ExitStack
) -> tuple[Output, ...]:
    layers = [_tree_path(ctx, r, stack) for r in p.trees]
    config = image_config(step, p)
    layout = ctx.workdir / "layout"
    compression = p.compression
    ctx.log(f"writing {len(layers)} layer(s), {compression}")
    image = write_oci_layout(layers, config, layout, compression=compression, epoch=ctx.epoch)
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


INDEX = "application/vnd.oci.image.index.v1+json"


def load_layout(layout: Path) -> OciImage:
    """Describe an image layout written by :func:`write_oci_layout` (read back
    from its archive in the store), so it can join an image index."""
    import json

    def blob(digest: str) -> Any:
        return json.loads(
            (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_text()
        )

    index = json.loads((layout / "index.json").read_text())
    desc = index["manifests"][0]
    manifest = blob(desc["digest"])
    config = blob(manifest["config"]["digest"])
    return OciImage(
        layout=layout,
        manifest_digest=desc["digest"],
        manifest_size=int(desc["size"]),
        config_digest=manifest["config"]["digest"],
        layer_digests=tuple(layer["digest"] for layer in manifest["layers"]),
        diff_ids=tuple(config["rootfs"]["diff_ids"]),
        index_digest="",
        architecture=config["architecture"],
        os=config["os"],
        variant=config.get("variant"),
        tag=(desc.get("annotations") or {}).get("org.opencontainers.image.ref.name"),
    )


def run_image_index(step: BuildStep, p: ImageIndexParams, ctx: StepContext) -> tuple[Output, ...]:
    import tarfile

    images = []
    for i, ref in enumerate(p.images):
        layout = ctx.workdir / f"image-{i}"
        archive = ctx.input(ref.key).output("oci.tar")
        with ctx.store.open_blob(archive.sha256) as f, tarfile.open(fileobj=f, mode="r|") as t:
            from reprobuild.tarextract import extract_all

            extract_all(t, layout)
        images.append(load_layout(layout))
    dest = ctx.workdir / "index"
    index = write_image_index(images, dest, tag=p.tag, epoch=ctx.epoch)
    archive_path = ctx.workdir / "oci.tar"
    write_oci_archive(dest, archive_path, epoch=ctx.epoch)
    digest = index.digest.removeprefix("sha256:")
    i_blob = ctx.store.put_file(dest / "blobs" / "sha256" / digest, expected_sha256=digest)
    a_blob = ctx.store.put_file(archive_path)
    return (
        Output("index.json", i_blob.sha256, i_blob.size, INDEX),
        Output("oci.tar", a_blob.sha256, a_blob.size, OCI_ARCHIVE),
    )


def _one_file(
    root: StepRef, ctx: StepContext, name: str, media: str, make: Callable[[Path, Path], None]
) -> tuple[Output, ...]:
    dest = ctx.workdir / name
    with contextlib.ExitStack() as stack:
        make(_tree_path(ctx, root, stack), dest)
    blob = ctx.store.put_file(dest)
    return (Output(name, blob.sha256, blob.size, media),)


def run_iso9660(step: BuildStep, p: Iso9660Params, ctx: StepContext) -> tuple[Output, ...]:
    volume_id = p.volume_id or "REPROBUILD"
    kernel, initrd, cmdline = p.boot_files()
    ctx.log("writing the ISO image (xorriso)")
    return _one_file(
        p.root,
        ctx,
        "image.iso",
        "application/x-iso9660-image",
        lambda src, dest: _discard(
            export_iso(
                src,
                dest,
                epoch=ctx.epoch,
                seed=step.key,
                volume_id=volume_id,
                boot=p.boot,
                kernel=kernel,
                initrd=initrd,
                cmdline=cmdline,
            )
        ),
    )


def run_disk_image(step: BuildStep, p: DiskImageParams, ctx: StepContext) -> tuple[Output, ...]:
    fmt = p.format
    kernel, initrd, cmdline = p.boot_files()
    ctx.log("partitioning and making the file system")
    return _one_file(
        p.root,
        ctx,
        f"disk.{'qcow2' if fmt == 'qcow2' else 'raw'}",
        "application/x-qemu-disk" if fmt == "qcow2" else "application/octet-stream",
        lambda src, dest: _discard(
            export_disk(
                src,
                dest,
                epoch=ctx.epoch,
                seed=step.key,
                size=p.size,
                kernel=kernel,
                initrd=initrd,
                cmdline=cmdline,
                filesystem=p.filesystem,
                partition_table=p.partition_table,
                format=fmt,
                boot=p.boot,
                grow_root=p.grow_root,
            )
        ),
    )


CPIO_SUFFIX = {"none": "", "gzip": ".gz", "zstd": ".zst", "xz": ".xz"}


def run_cpio(step: BuildStep, p: CpioParams, ctx: StepContext) -> tuple[Output, ...]:
    compression = p.compression
    return _one_file(
        p.root,
        ctx,
        f"initramfs.cpio{CPIO_SUFFIX[compression]}",
        "application/x-cpio",
        lambda src, dest: _discard(
            export_cpio(src, dest, epoch=ctx.epoch, compression=compression)
        ),
    )


def run_squashfs(step: BuildStep, p: SquashfsParams, ctx: StepContext) -> tuple[Output, ...]:
    compression = p.compression
    return _one_file(
        p.root,
        ctx,
        "rootfs.squashfs",
        "application/vnd.squashfs",
        lambda src, dest: _discard(
            export_squashfs(src, dest, epoch=ctx.epoch, compression=compression)
        ),
    )


def _discard(_: object) -> None:
    """The exporters return a description; the step keeps only the file."""
