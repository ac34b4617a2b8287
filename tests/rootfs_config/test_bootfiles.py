"""Files a bootable image's exporter adds: fstab, grow_root, the live init."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reprobuild.export.bootfiles import (
    GROWROOT_UNIT,
    UNCONFIGURED_FSTAB,
    disk_files,
    live_files,
    overlay,
)
from reprobuild.export.tar import ExportError

UUID = "b0d9cf2d-ca5d-52f9-bbfc-62996f6c5c70"


def _tree(tmp_path: Path, fstab: bytes | None = UNCONFIGURED_FSTAB) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    if fstab is not None:
        (root / "etc/fstab").write_bytes(fstab)
    return root


def test_fstab_mounts_root_by_uuid_read_write(tmp_path: Path) -> None:
    (added,) = disk_files(_tree(tmp_path), fs_uuid=UUID, grow_root=False)
    assert added.path == "/etc/fstab"
    assert added.data.decode().endswith(f"UUID={UUID}\t/\text4\trw,errors=remount-ro\t0\t1\n")
    assert disk_files(_tree(tmp_path / "b", None), fs_uuid=UUID, grow_root=False)


def test_a_configured_fstab_is_kept(tmp_path: Path) -> None:
    root = _tree(tmp_path, b"LABEL=root / ext4 defaults 0 1\n")
    assert disk_files(root, fs_uuid=UUID, grow_root=False) == []
    with pytest.raises(ExportError, match="its own"):
        disk_files(root, fs_uuid=UUID, grow_root=True)


def test_grow_root(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    with pytest.raises(ExportError, match="sfdisk"):
        disk_files(root, fs_uuid=UUID, grow_root=True)
    for tool in ("usr/sbin/sfdisk", "usr/bin/partx", "usr/sbin/resize2fs", "usr/bin/findmnt"):
        (root / tool).parent.mkdir(parents=True, exist_ok=True)
        (root / tool).write_text("")
    (root / "usr/lib/systemd").mkdir(parents=True)
    (root / "usr/lib/systemd/systemd").write_text("")
    added = {a.path: a for a in disk_files(root, fs_uuid=UUID, grow_root=True)}
    assert b"x-systemd.growfs" in added["/etc/fstab"].data
    assert added[f"/etc/systemd/system/local-fs-pre.target.wants/{GROWROOT_UNIT}"].link
    assert added["/usr/lib/reprobuild/growroot"].mode == 0o755


def test_overlay_times(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    os.utime(root / "etc", (1000, 1000))
    (root / "usr/lib").mkdir(parents=True)
    os.utime(root / "usr/lib", (2000, 2000))
    os.utime(root, (3000, 3000))
    touched = overlay(root, live_files(), epoch=5000)
    assert touched == [b"usr/lib/reprobuild", b"usr/lib/reprobuild/live-init"]
    assert os.stat(root / "usr/lib").st_mtime == 2000
    assert os.stat(root).st_mtime == 3000
    for rel in ("usr/lib/reprobuild", "usr/lib/reprobuild/live-init"):
        st = os.stat(root / rel)
        assert (st.st_mtime, st.st_atime) == (5000, 5000), rel
    assert os.access(root / "usr/lib/reprobuild/live-init", os.X_OK)
    os.symlink("/", root / "usr/lib/reprobuild2")
    with pytest.raises(ExportError, match="symlink"):
        overlay(root, [type(live_files()[0])("/usr/lib/reprobuild2/x")], epoch=5000)
