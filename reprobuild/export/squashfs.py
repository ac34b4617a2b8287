"""Standalone squashfs images of a canonical tree, identical on every run.

mksquashfs already sorts directory entries and, with ``-reproducible``,
writes fragments and inodes in a fixed order whatever the thread count. What
is left to pin: the superblock's creation time (``-mkfs-time EPOCH``), the
compressor and its level, the block size, and the environment (no
``SOURCE_DATE_EPOCH``: 4.5.1 refuses it next to ``-mkfs-time``). File mtimes
are the tree's own (already clamped to the epoch by the canonical tar), not
``-all-time``, so the image says the same as the ISO and ext4 exports; owners
are the tar's numeric ids (no ``-all-root``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from reprobuild.export.tar import ExportError
from reprobuild.export.tools import (
    extracted,
    run_tool,
    sha256_file,
    staged_output,
    tool_version,
)

__all__ = ["SquashfsCompression", "SquashfsImage", "build_squashfs", "export_squashfs"]

SquashfsCompression = Literal["zstd", "xz", "gzip"]

BLOCK_SIZE: Final = 131072
_LEVELS: Final[dict[str, list[str]]] = {
    "zstd": ["-Xcompression-level", "15"],
    "gzip": ["-Xcompression-level", "9"],
    "xz": [],
}


@dataclass(frozen=True)
class SquashfsImage:
    """A written squashfs image."""

    path: Path
    sha256: str
    size: int
    compression: str
    tool: str


def build_squashfs(
    tree: Path, image: Path, *, epoch: int, compression: SquashfsCompression = "zstd"
) -> None:
    """Write the squashfs of the extracted *tree* to the new file *image*."""
    if compression not in _LEVELS:
        raise ExportError(f"unknown squashfs compression {compression!r} (zstd, xz or gzip)")
    if epoch < 0:
        raise ExportError(f"epoch must not be negative (got {epoch})")
    run_tool(
        [
            "mksquashfs",
            str(tree),
            str(image),
            "-noappend",
            "-reproducible",
            "-mkfs-time",
            str(epoch),
            "-b",
            str(BLOCK_SIZE),
            "-comp",
            compression,
            *_LEVELS[compression],
            "-quiet",
            "-no-progress",
        ],
        what=f"writing squashfs {image.name}",
    )


def export_squashfs(
    canonical_tar: Path,
    dest: Path,
    *,
    epoch: int,
    compression: SquashfsCompression = "zstd",
) -> SquashfsImage:
    """Write *canonical_tar* as a squashfs image at *dest* (atomically)."""
    with staged_output(dest) as (work, out), extracted(canonical_tar, work) as tree:
        build_squashfs(tree.root, out, epoch=epoch, compression=compression)
    return SquashfsImage(
        path=dest,
        sha256=sha256_file(dest),
        size=dest.stat().st_size,
        compression=compression,
        tool=tool_version("mksquashfs"),
    )
