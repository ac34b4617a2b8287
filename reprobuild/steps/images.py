"""Image outputs of trees: ``oci_image`` (and, as exporters land, ISO and disks).

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
from reprobuild.export.disk import DiskFormat, export_disk
from reprobuild.export.iso import export_iso
from reprobuild.export.oci import (
    ImageConfig,
    OciImage,
    write_image_index,
    write_oci_archive,
    write_oci_layout,
)
from reprobuild.export.squashfs import SquashfsCompression, export_squashfs
from reprobuild.export.tar import Compression
from reprobuild.store import Output

if TYPE_CHECKING:
    from reprobuild.buildgraph import BuildStep
    from reprobuild.execute import StepContext

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_ARCHIVE = "application/vnd.oci.image.layout.v1+tar"


def _tree_path(ctx: StepContext, ref: dict[str, Any], stack: contextlib.ExitStack) -> Path:
    """The input tree's canonical tar as a file while ``stack`` is open (no copy when
    the store keeps it whole; a verified temp copy when it keeps it as chunks)."""
    return stack.enter_context(ctx.store.materialized(ctx.input(ref["step"]).outputs[0].sha256))


def run_oci_image(step: BuildStep, ctx: StepContext) -> tuple[Output, ...]:
    with contextlib.ExitStack() as stack:
        return _oci_image(step, ctx, stack)


def _oci_image(
    step: BuildStep, ctx: StepContext, stack: contextlib.ExitStack
) -> tuple[Output, ...]:
    p = step.data["params"]
    refs = p.get("layers") or [p["root"]]
    layers = [_tree_path(ctx, r, stack) for r in refs]
    # An explicit architecture is taken as written; else the root's packages say.
    architecture, variant = "amd64", None
    if p.get("architecture"):
        architecture = p["architecture"]
    elif step.package_format and step.architecture:
        packages = package_format(step.package_format)
        architecture, variant = packages.platform(step.architecture)
    config = ImageConfig(
        entrypoint=p.get("entrypoint"),
        cmd=p.get("cmd"),
        env=p.get("env") or {},
        workdir=p.get("workdir"),
        user=p.get("user"),
        labels=p.get("labels") or {},
        exposed_ports=tuple(p.get("exposed_ports") or ()),
        architecture=architecture,
        variant=variant,
        tag=p.get("tag"),
        annotations=step.data.get("annotations") or {},
    )
    layout = ctx.workdir / "layout"
    ctx.log(f"writing {len(layers)} layer(s), {p.get('compression') or 'gzip'}")
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


def run_image_index(step: BuildStep, ctx: StepContext) -> tuple[Output, ...]:
    import tarfile

    p = step.data["params"]
    images = []
    for i, ref in enumerate(p["images"]):
        layout = ctx.workdir / f"image-{i}"
        archive = ctx.input(ref["step"]).output("oci.tar")
        with ctx.store.open_blob(archive.sha256) as f, tarfile.open(fileobj=f, mode="r|") as t:
            t.extractall(layout, filter="data")
        images.append(load_layout(layout))
    dest = ctx.workdir / "index"
    index = write_image_index(images, dest, tag=p.get("tag"), epoch=ctx.epoch)
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
    step: BuildStep, ctx: StepContext, name: str, media: str, make: Callable[[Path, Path], None]
) -> tuple[Output, ...]:
    dest = ctx.workdir / name
    with contextlib.ExitStack() as stack:
        make(_tree_path(ctx, step.data["params"]["root"], stack), dest)
    blob = ctx.store.put_file(dest)
    return (Output(name, blob.sha256, blob.size, media),)


def run_iso9660(step: BuildStep, ctx: StepContext) -> tuple[Output, ...]:
    p = step.data["params"]
    volume_id = p.get("volume_id") or "REPROBUILD"
    ctx.log("writing the ISO image (xorriso)")
    return _one_file(
        step,
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
                boot=p.get("boot"),
                **_boot_files(p),
            )
        ),
    )


def run_disk_image(step: BuildStep, ctx: StepContext) -> tuple[Output, ...]:
    p = step.data["params"]
    fmt: DiskFormat = p.get("format") or "raw"
    ctx.log("partitioning and making the file system")
    return _one_file(
        step,
        ctx,
        f"disk.{'qcow2' if fmt == 'qcow2' else 'raw'}",
        "application/x-qemu-disk" if fmt == "qcow2" else "application/octet-stream",
        lambda src, dest: _discard(
            export_disk(
                src,
                dest,
                epoch=ctx.epoch,
                seed=step.key,
                size=p.get("size") or "2G",
                **_boot_files(p),
                filesystem=p.get("filesystem") or "ext4",
                partition_table=p.get("partition_table") or "gpt",
                format=fmt,
                boot=p.get("boot"),
                grow_root=bool(p.get("grow_root")),
            )
        ),
    )


CPIO_SUFFIX = {"none": "", "gzip": ".gz", "zstd": ".zst", "xz": ".xz"}


def run_cpio(step: BuildStep, ctx: StepContext) -> tuple[Output, ...]:
    compression: Compression = step.data["params"].get("compression") or "none"
    return _one_file(
        step,
        ctx,
        f"initramfs.cpio{CPIO_SUFFIX[compression]}",
        "application/x-cpio",
        lambda src, dest: _discard(
            export_cpio(src, dest, epoch=ctx.epoch, compression=compression)
        ),
    )


def run_squashfs(step: BuildStep, ctx: StepContext) -> tuple[Output, ...]:
    compression: SquashfsCompression = step.data["params"].get("compression") or "zstd"
    return _one_file(
        step,
        ctx,
        "rootfs.squashfs",
        "application/vnd.squashfs",
        lambda src, dest: _discard(
            export_squashfs(src, dest, epoch=ctx.epoch, compression=compression)
        ),
    )


def _boot_files(p: dict[str, Any]) -> dict[str, Any]:
    """kernel/initrd/cmdline only when a boot is asked for (the exporters refuse
    them otherwise)."""
    if not p.get("boot"):
        return {}
    return {k: p.get(k) for k in ("kernel", "initrd", "cmdline")}


def _discard(_: object) -> None:
    """The exporters return a description; the step keeps only the file."""
