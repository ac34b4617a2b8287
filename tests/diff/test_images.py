"""ISO 9660, GPT disk images (ext4, squashfs) and cpio archives made by the exporters."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import pytest

from reprobuild.diff import Difference, compare, render_text
from reprobuild.export.cpio import export_cpio
from reprobuild.export.disk import export_disk
from reprobuild.export.iso import export_iso
from tests.diff.conftest import EPOCH, canonical_tar, make_tree, need


@pytest.fixture
def tars(tmp_path: Path) -> tuple[Path, Path]:
    """Two canonical tars differing in one file's content (and nothing else)."""
    common: dict[str, bytes | str] = {
        "etc/hostname": b"box\n",
        "usr/share/doc/readme": b"same\n",
        "bin": "usr/bin",
    }
    a = make_tree(tmp_path / "ta", {**common, "etc/motd": b"built by reprobuild\n"})
    b = make_tree(tmp_path / "tb", {**common, "etc/motd": b"built by somebody else\n"})
    return canonical_tar(a, tmp_path / "a.tar"), canonical_tar(b, tmp_path / "b.tar")


def _lines(diff: Difference | None) -> list[str]:
    assert diff is not None
    return render_text(diff).splitlines()


def test_iso_images_differing_in_one_file(tars: tuple[Path, Path], tmp_path: Path) -> None:
    need("xorriso")
    isos = [
        export_iso(t, tmp_path / f"{n}.iso", epoch=EPOCH, seed="s", volume_id="TEST").path
        for n, t in zip("ab", tars, strict=True)
    ]
    diff = compare(*isos)
    assert diff is not None and diff.kind == "iso9660"
    lines = _lines(diff)
    assert "etc/motd: content differs (text), size 20 vs 23" in lines
    assert "    -built by reprobuild" in lines
    assert not any("hostname" in line or "readme" in line for line in lines)
    assert compare(isos[0], isos[0]) is None


def test_iso_without_xorriso_is_a_comment(
    tars: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need("xorriso")
    isos = [
        export_iso(t, tmp_path / f"{n}.iso", epoch=EPOCH + i, seed="s", volume_id="TEST").path
        for i, (n, t) in enumerate(zip("ab", tars, strict=True))
    ]
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    diff = compare(*isos)
    assert diff is not None
    assert any(
        c.startswith("xorriso is not installed") and "apt-get install xorriso" in c
        for c in diff.comments
    )
    # What needs no tool is still compared: the volume descriptor's dates.
    fields = {d.source for d in diff.children}
    assert "volume descriptor: creation date" in fields
    assert "note: xorriso is not installed" in render_text(diff)


@pytest.mark.parametrize("filesystem", ["ext4", "squashfs"])
def test_disk_images_differing_in_one_file(
    tars: tuple[Path, Path], tmp_path: Path, filesystem: Literal["ext4", "squashfs"]
) -> None:
    need("sfdisk", "mkfs.ext4", "debugfs")
    if filesystem == "squashfs":
        need("mksquashfs", "unsquashfs")
    if os.geteuid() != 0:
        pytest.skip("debugfs rdump restores owners only as root")
    disks = [
        export_disk(
            t, tmp_path / f"{n}.raw", epoch=EPOCH, seed="seed", size="16M", filesystem=filesystem
        ).path
        for n, t in zip("ab", tars, strict=True)
    ]
    diff = compare(*disks)
    assert diff is not None and diff.kind == "disk"
    lines = _lines(diff)
    assert "partition 1 (root-x86-64): etc/motd: content differs (text), size 20 vs 23" in lines
    assert not any("partition table" in line for line in lines)
    assert not any("hostname" in line for line in lines)


def test_disk_partition_table_differences(tars: tuple[Path, Path], tmp_path: Path) -> None:
    need("sfdisk", "mkfs.ext4", "debugfs")
    a = export_disk(tars[0], tmp_path / "a.raw", epoch=EPOCH, seed="one", size="16M").path
    b = export_disk(tars[0], tmp_path / "b.raw", epoch=EPOCH, seed="two", size="16M").path
    diff = compare(a, b)
    assert diff is not None
    table = {d.source: d for d in diff.children}["partition table"]
    assert {c.source for c in table.children} == {"disk guid", "partitions[0].uuid"}
    assert table.unified_diff is not None and "label-id:" in table.unified_diff
    fields = {d.source for d in diff.walk()}
    assert "superblock: uuid" in fields and "superblock: hash seed" in fields


def test_cpio_archives(tars: tuple[Path, Path], tmp_path: Path) -> None:
    archives = [
        export_cpio(t, tmp_path / f"{n}.cpio.gz", epoch=EPOCH, compression="gzip").path
        for n, t in zip("ab", tars, strict=True)
    ]
    diff = compare(*archives)
    assert diff is not None and diff.kind == "cpio"
    assert _lines(diff)[0] == "etc/motd: content differs (text), size 20 vs 23"
    assert compare(archives[0], archives[0]) is None
