"""Standalone squashfs export: owners and modes as in the tar, identical bytes everywhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reprobuild.export.squashfs import export_squashfs
from reprobuild.export.tar import ExportError
from tests.export_images.conftest import Need, export_elsewhere
from tests.export_images.helpers import EPOCH, assert_no_leaks, run, snapshot
from tests.export_images.trees import LONG_NAME


@pytest.mark.parametrize("compression", ["zstd", "xz", "gzip"])
def test_listing_and_identical_elsewhere(
    tree_tar: Path, tmp_path: Path, need: Need, compression: str
) -> None:
    need("mksquashfs", "unsquashfs")
    image = export_squashfs(
        tree_tar, tmp_path / "a" / "t.sqfs", epoch=EPOCH, compression=compression
    )  # type: ignore[arg-type]
    listing = run("unsquashfs", "-lln", str(image.path))
    assert re.search(r"-rwsr-xr-x 0/0 +2400 2023-11-13 22:13 squashfs-root/usr/bin/su\n", listing)
    assert re.search(r"-rwxr-sr-x 0/5 +7 .* squashfs-root/usr/bin/wall\n", listing)
    assert re.search(r"drwx------ 1000/1000 .* squashfs-root/home/user\n", listing)
    assert re.search(r"drwxrwxrwt 0/0 .* squashfs-root/tmp\n", listing)
    assert re.search(r"brw-r----- 0/6 +8, +0 .* squashfs-root/dev/sda\n", listing)
    assert "squashfs-root/bin -> usr/bin" in listing
    assert f"squashfs-root/usr/share/doc/{LONG_NAME}" in listing
    superblock = run("unsquashfs", "-s", str(image.path))
    assert compression in superblock and "Tue Nov 14 22:13:20 2023" in superblock
    second = export_elsewhere(
        tmp_path / "b",
        "reprobuild.export.squashfs",
        "export_squashfs",
        tree_tar,
        "t.sqfs",
        epoch=EPOCH,
        compression=compression,
    )
    data = image.path.read_bytes()
    assert data == second.read_bytes()
    assert_no_leaks(data, tmp_path)


def test_round_trip(tree_tar: Path, tmp_path: Path, need: Need) -> None:
    need("mksquashfs", "unsquashfs")
    image = export_squashfs(tree_tar, tmp_path / "t.sqfs", epoch=EPOCH)
    out = tmp_path / "out"
    run("unsquashfs", "-q", "-n", "-d", str(out), str(image.path))
    from reprobuild.export.tools import extracted_tree

    extracted_tree(tree_tar, tmp_path / "ref")
    assert snapshot(out) == snapshot(tmp_path / "ref")
    assert (out / "usr/bin/big").stat().st_ino == (out / "usr/bin/big-hardlink").stat().st_ino


def test_realistic_tree(deb_tar: Path, tmp_path: Path, need: Need) -> None:
    need("mksquashfs")
    a = export_squashfs(deb_tar, tmp_path / "a.sqfs", epoch=EPOCH)
    b = export_squashfs(deb_tar, tmp_path / "x" / "b.sqfs", epoch=EPOCH)
    assert a.sha256 == b.sha256


def test_bad_compression(tree_tar: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="compression"):
        export_squashfs(tree_tar, tmp_path / "t.sqfs", epoch=EPOCH, compression="lz77")  # type: ignore[arg-type]
