"""ISO 9660 export: Rock Ridge metadata as in the tar, identical bytes everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from reprobuild.export.iso import export_iso
from reprobuild.export.tar import ExportError
from tests.export_images.conftest import Need, export_elsewhere
from tests.export_images.helpers import EPOCH, assert_no_leaks, run
from tests.export_images.trees import LONG_NAME


def _lsdl(iso: Path) -> dict[str, str]:
    out = run("xorriso", "-no_rc", "-indev", str(iso), "-find", "/", "-exec", "lsdl")
    lines: dict[str, str] = {}
    for line in out.splitlines():
        if "'" in line:
            path = line.split("'")[1]
            lines[path] = line
    return lines


def test_rock_ridge_metadata(tree_tar: Path, tmp_path: Path, need: Need) -> None:
    need("xorriso")
    image = export_iso(tree_tar, tmp_path / "t.iso", epoch=EPOCH, seed="s", volume_id="REPRO_TEST")
    assert image.sha256.startswith("sha256:") and image.size == image.path.stat().st_size
    ls = _lsdl(image.path)
    assert ls["/usr/bin/su"].startswith("-rwsr-xr-x")
    assert ls["/usr/bin/wall"].split()[:4] == ["-rwxr-sr-x", "1", "0", "5"]
    assert ls["/home/user/notes"].split()[2:4] == ["1000", "1000"]
    assert ls["/home/user"].startswith("drwx------")
    assert ls["/tmp"].startswith("drwxrwxrwt")
    assert ls["/dev/null"].startswith("crw-rw-rw-") and "1,3" in ls["/dev/null"]
    assert ls["/dev/sda"].startswith("brw-r-----") and "8,0" in ls["/dev/sda"]
    assert ls["/dev/initctl"].startswith("prw-------")
    assert ls["/bin"].endswith("-> 'usr/bin'")
    assert ls["/dangling"].endswith("-> '/nonexistent/target'")
    assert f"/usr/share/doc/{LONG_NAME}" in ls
    assert '/etc/sp ace & q"uote' in ls and "/etc/café" in ls
    assert "Nov 13  2023" in ls["/etc/motd"]  # the tar's mtime, not the epoch or the clock
    # hard links share one data extent
    lba = run(
        "xorriso", "-no_rc", "-indev", str(image.path), "-find", "/usr/bin", "-exec", "report_lba"
    )
    extents = {
        line.split(",")[4].strip(): line.split(",")[1].strip()
        for line in lba.splitlines()
        if "File data lba" in line
    }
    assert extents["'/usr/bin/big'"] == extents["'/usr/bin/big-hardlink'"]
    pvd = run("xorriso", "-no_rc", "-indev", str(image.path), "-pvd_info")
    assert "REPRO_TEST" in pvd and "2023111422132000" in pvd


def test_identical_elsewhere(tree_tar: Path, tmp_path: Path, need: Need) -> None:
    need("xorriso")
    first = export_iso(tree_tar, tmp_path / "a" / "t.iso", epoch=EPOCH, seed="s", volume_id="T")
    second = export_elsewhere(
        tmp_path / "b" / "c",
        "reprobuild.export.iso",
        "export_iso",
        tree_tar,
        "t.iso",
        epoch=EPOCH,
        seed="s",
        volume_id="T",
    )
    data = first.path.read_bytes()
    assert data == second.read_bytes()
    assert_no_leaks(data, tmp_path)


def test_realistic_tree_identical(deb_tar: Path, tmp_path: Path, need: Need) -> None:
    need("xorriso")
    a = export_iso(deb_tar, tmp_path / "a.iso", epoch=EPOCH, seed="s", volume_id="DEBS")
    b = export_iso(deb_tar, tmp_path / "x" / "b.iso", epoch=EPOCH, seed="s", volume_id="DEBS")
    assert a.sha256 == b.sha256
    ls = _lsdl(a.path)
    assert ls["/bin"].endswith("-> 'usr/bin'")
    assert ls["/usr/bin/busybox"].startswith("-rwxr-xr-x")


def test_boot_and_bad_volume_id(tree_tar: Path, tmp_path: Path) -> None:
    # A bootable image needs a kernel in the tree (tests/export_boot boots real ones).
    with pytest.raises(ExportError, match="kernel"):
        export_iso(tree_tar, tmp_path / "x.iso", epoch=EPOCH, seed="s", volume_id="X", boot="bios")
    with pytest.raises(ExportError, match="volume_id"):
        export_iso(tree_tar, tmp_path / "x.iso", epoch=EPOCH, seed="s", volume_id="lower case")
    assert not list(tmp_path.iterdir())
