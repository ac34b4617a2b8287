"""GPT disk export: fixed identifiers, checkable file systems, identical bytes everywhere."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from reprobuild.export.disk import ROOT_X86_64, export_disk
from reprobuild.export.tar import ExportError
from tests.export_images.conftest import Need, export_elsewhere
from tests.export_images.helpers import EPOCH, assert_no_leaks, run
from tests.export_images.trees import LONG_NAME

FS_TOOLS = {
    "ext4": ("mkfs.ext4", "debugfs", "e2fsck"),
    "squashfs": ("mksquashfs", "unsquashfs"),
    "erofs": ("mkfs.erofs", "fsck.erofs", "dump.erofs"),
}


def _partition(disk: Path, offset: int, size: int, out: Path) -> Path:
    with open(disk, "rb") as src, open(out, "wb") as dst:
        src.seek(offset)
        left = size
        while left:
            chunk = src.read(min(left, 1 << 22))
            dst.write(chunk)
            left -= len(chunk)
    return out


def _debugfs(image: Path, request: str) -> str:
    return run("debugfs", "-R", request, str(image))


def test_gpt_and_ext4(tree_tar: Path, tmp_path: Path, need: Need) -> None:
    need("sfdisk", *FS_TOOLS["ext4"])
    disk = export_disk(tree_tar, tmp_path / "d.raw", epoch=EPOCH, seed="seed-1", size="64M")
    assert disk.size == 64 << 20 == disk.path.stat().st_size
    assert disk.partition_offset == 1 << 20 and disk.partition_size % (1 << 20) == 0
    dump = run("sfdisk", "--dump", str(disk.path))
    assert f"label-id: {disk.disk_guid}" in dump
    assert f"type={ROOT_X86_64}, uuid={disk.partition_guid}" in dump
    assert "start=        2048" in dump
    part = _partition(disk.path, disk.partition_offset, disk.partition_size, tmp_path / "p.ext4")
    run("e2fsck", "-fn", str(part))
    header = run("dumpe2fs", "-h", str(part))
    assert disk.filesystem_uuid in header
    stat_su = _debugfs(part, "stat /usr/bin/su")
    assert "Mode:  04755" in stat_su and "User:     0   Group:     0" in stat_su
    # every timestamp is the tar's mtime (a day before the epoch), nanoseconds zero
    times = re.findall(r"(\w*time): (0x[0-9a-f]+):([0-9a-f]+)", stat_su)
    assert {name for name, _, _ in times} == {"ctime", "atime", "mtime", "crtime"}
    assert {(int(sec, 16), int(ns, 16)) for _, sec, ns in times} == {(EPOCH - 86400, 0)}
    assert "Mode:  02755" in _debugfs(part, "stat /usr/bin/wall") and "Group:     5" in _debugfs(
        part, "stat /usr/bin/wall"
    )
    assert "User:  1000   Group:  1000" in _debugfs(part, "stat /home/user/notes")
    assert "Mode:  01777" in _debugfs(part, "stat /tmp")
    null = _debugfs(part, "stat /dev/null")
    assert "Type: character special" in null and "Device major/minor number: 01:03" in null
    assert 'Fast link dest: "usr/bin"' in _debugfs(part, "stat /bin")
    assert "Type: FIFO" in _debugfs(part, "stat /dev/initctl")
    listing = _debugfs(part, "ls -l /usr/bin")
    inodes = {line.split()[-1]: line.split()[0] for line in listing.splitlines() if line.strip()}
    assert inodes["big"] == inodes["big-hardlink"]
    assert "Links: 2" in _debugfs(part, "stat /usr/bin/big")
    assert LONG_NAME in _debugfs(part, "ls /usr/share/doc")
    data = run("debugfs", "-R", "cat /usr/bin/su", str(part))
    assert data.encode() == b"\x7fELF fake setuid binary\n" * 100


@pytest.mark.parametrize("filesystem", ["ext4", "squashfs", "erofs"])
def test_identical_elsewhere(tree_tar: Path, tmp_path: Path, need: Need, filesystem: str) -> None:
    need("sfdisk", *FS_TOOLS[filesystem])
    first = export_disk(
        tree_tar, tmp_path / "a" / "d.raw", epoch=EPOCH, seed="s", size="32M", filesystem=filesystem
    )  # type: ignore[arg-type]
    second = export_elsewhere(
        tmp_path / "b",
        "reprobuild.export.disk",
        "export_disk",
        tree_tar,
        "d.raw",
        epoch=EPOCH,
        seed="s",
        size="32M",
        filesystem=filesystem,
    )
    data = first.path.read_bytes()
    assert data == second.read_bytes()
    assert_no_leaks(data, tmp_path)
    other = export_disk(
        tree_tar,
        tmp_path / "c" / "d.raw",
        epoch=EPOCH,
        seed="other",
        size="32M",
        filesystem=filesystem,
    )  # type: ignore[arg-type]
    assert other.disk_guid != first.disk_guid and other.partition_guid != first.partition_guid
    assert other.sha256 != first.sha256


def test_squashfs_and_erofs_partitions(tree_tar: Path, tmp_path: Path, need: Need) -> None:
    need("sfdisk", *FS_TOOLS["squashfs"], *FS_TOOLS["erofs"])
    sq = export_disk(
        tree_tar, tmp_path / "s.raw", epoch=EPOCH, seed="s", size="16M", filesystem="squashfs"
    )
    part = _partition(sq.path, sq.partition_offset, sq.filesystem_size, tmp_path / "p.sqfs")
    listing = run("unsquashfs", "-lln", str(part))
    assert re.search(r"-rwsr-xr-x 0/0 +2400 .* squashfs-root/usr/bin/su\n", listing)
    assert re.search(r"crw-rw-rw- 0/0 +1, +3 .* squashfs-root/dev/null\n", listing)
    er = export_disk(
        tree_tar, tmp_path / "e.raw", epoch=EPOCH, seed="s", size="16M", filesystem="erofs"
    )
    part = _partition(er.path, er.partition_offset, er.filesystem_size, tmp_path / "p.erofs")
    run("fsck.erofs", str(part))
    su = run("dump.erofs", "--path=/home/user/notes", str(part))
    assert "Uid: 1000   Gid: 1000" in su
    big = run("dump.erofs", "--path=/usr/bin/big-hardlink", str(part))
    assert "Links: 2" in big
    assert er.filesystem_uuid in run("dump.erofs", "-s", str(part))
    assert "Timestamp: 2023-11-13 22:13:20" in run("dump.erofs", "--path=/etc/motd", str(part))


def test_qcow2_converts_back(tree_tar: Path, tmp_path: Path, need: Need) -> None:
    need("sfdisk", "qemu-img", *FS_TOOLS["ext4"])
    raw = export_disk(tree_tar, tmp_path / "d.raw", epoch=EPOCH, seed="s", size="32M")
    qcow = export_disk(
        tree_tar, tmp_path / "d.qcow2", epoch=EPOCH, seed="s", size="32M", format="qcow2"
    )
    again = export_elsewhere(
        tmp_path / "b",
        "reprobuild.export.disk",
        "export_disk",
        tree_tar,
        "d.qcow2",
        epoch=EPOCH,
        seed="s",
        size="32M",
        format="qcow2",
    )
    assert qcow.path.read_bytes() == again.read_bytes()
    assert qcow.file_size < raw.size
    back = tmp_path / "back.raw"
    subprocess.run(
        ["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(qcow.path), str(back)], check=True
    )
    assert back.read_bytes() == raw.path.read_bytes()


def test_realistic_tree(deb_tar: Path, tmp_path: Path, need: Need) -> None:
    need("sfdisk", *FS_TOOLS["ext4"])
    a = export_disk(deb_tar, tmp_path / "a.raw", epoch=EPOCH, seed="s", size="256M")
    b = export_disk(deb_tar, tmp_path / "x" / "b.raw", epoch=EPOCH, seed="s", size="256M")
    assert a.sha256 == b.sha256
    part = _partition(a.path, a.partition_offset, a.partition_size, tmp_path / "p.ext4")
    run("e2fsck", "-fn", str(part))
    assert 'Fast link dest: "usr/bin"' in _debugfs(part, "stat /bin")


def test_errors(tree_tar: Path, tmp_path: Path, need: Need) -> None:
    need("sfdisk", "mkfs.erofs")
    with pytest.raises(ExportError, match="kernel"):
        export_disk(tree_tar, tmp_path / "d.raw", epoch=EPOCH, seed="s", boot="uefi")
    with pytest.raises(ExportError, match="whole number of MiB"):
        export_disk(tree_tar, tmp_path / "d.raw", epoch=EPOCH, seed="s", size="1000K")
    with pytest.raises(ExportError, match="unknown file system"):
        export_disk(tree_tar, tmp_path / "d.raw", epoch=EPOCH, seed="s", filesystem="btrfs")  # type: ignore[arg-type]
    with pytest.raises(ExportError, match="cannot read size"):
        export_disk(tree_tar, tmp_path / "d.raw", epoch=EPOCH, seed="s", size="lots")
    with pytest.raises(ExportError, match=r"needs .* bytes"):
        export_disk(
            tree_tar, tmp_path / "d.raw", epoch=EPOCH, seed="s", size="3M", filesystem="erofs"
        )
    assert not list(tmp_path.iterdir())
