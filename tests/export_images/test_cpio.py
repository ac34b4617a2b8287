"""newc cpio export: GNU cpio reads it back into the same tree; kernel conventions hold."""

from __future__ import annotations

import gzip
import lzma
import os
import subprocess
from pathlib import Path

import pytest
import zstandard

from reprobuild.export.cpio import export_cpio
from reprobuild.export.tar import ExportError
from reprobuild.export.tools import extracted_tree
from tests.export_images.conftest import Need, export_elsewhere
from tests.export_images.helpers import EPOCH, assert_no_leaks, run, snapshot
from tests.export_images.trees import LONG_NAME


def _members(data: bytes) -> list[tuple[str, dict[str, int]]]:
    """Parse newc headers (to check fields GNU cpio does not show)."""
    names = (
        "ino",
        "mode",
        "uid",
        "gid",
        "nlink",
        "mtime",
        "filesize",
        "devmajor",
        "devminor",
        "rdevmajor",
        "rdevminor",
        "namesize",
        "check",
    )
    pos, out = 0, []
    while True:
        assert data[pos : pos + 6] == b"070701"
        fields = {n: int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i, n in enumerate(names)}
        name = data[pos + 110 : pos + 110 + fields["namesize"] - 1].decode()
        pos += 110 + fields["namesize"]
        pos += -pos % 4
        pos += fields["filesize"] + (-fields["filesize"] % 4)
        out.append((name, fields))
        if name == "TRAILER!!!":
            assert len(data) % 512 == 0 and not data[pos:].strip(b"\0")
            return out


def test_gnu_cpio_reads_it_back(tree_tar: Path, tmp_path: Path, need: Need) -> None:
    need("cpio")
    archive = export_cpio(tree_tar, tmp_path / "t.cpio", epoch=EPOCH)
    listing = run("cpio", "-itv", "--quiet", stdin=archive.path.read_bytes())
    assert "-rwsr-xr-x   1 root     root         2400 Nov 13  2023 usr/bin/su" in listing
    assert "crw-rw-rw-   1 root     root       1,   3 Nov 13  2023 dev/null" in listing
    assert "bin -> usr/bin" in listing and LONG_NAME in listing
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(
        ["cpio", "-idm", "--quiet", "--no-absolute-filenames"],
        input=archive.path.read_bytes(),
        cwd=out,
        check=True,
    )
    extracted_tree(tree_tar, tmp_path / "ref")
    assert snapshot(out, dir_times=False) == snapshot(tmp_path / "ref", dir_times=False)
    assert (out / "usr/bin/big").stat().st_ino == (out / "usr/bin/big-hardlink").stat().st_ino


def test_newc_conventions(tree_tar: Path, tmp_path: Path) -> None:
    archive = export_cpio(tree_tar, tmp_path / "t.cpio", epoch=EPOCH - 100_000)
    members = dict(_members(archive.path.read_bytes()))
    order = list(members)
    assert order[0] == "." and order[-1] == "TRAILER!!!"
    big, link = members["usr/bin/big"], members["usr/bin/big-hardlink"]
    assert big["ino"] == link["ino"] and big["nlink"] == link["nlink"] == 2
    assert big["filesize"] == 0 and link["filesize"] == 1048580  # data on the last link
    assert members["dev/sda"]["rdevmajor"] == 8 and members["dev/sda"]["gid"] == 6
    assert members["usr/bin/su"]["mode"] == 0o104755
    assert members["deep"]["nlink"] == 3 and members["tmp"]["nlink"] == 2
    assert {m["mtime"] for m in members.values() if m["ino"]} == {EPOCH - 100_000}  # clamped
    inos = [m["ino"] for n, m in members.items() if n != "TRAILER!!!"]
    assert sorted(set(inos)) == list(range(1, len(set(inos)) + 1))
    assert members["TRAILER!!!"]["nlink"] == 1


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd", "xz"])
def test_identical_elsewhere_and_decompresses(
    tree_tar: Path, tmp_path: Path, compression: str
) -> None:
    plain = export_cpio(tree_tar, tmp_path / "plain.cpio", epoch=EPOCH).path.read_bytes()
    first = export_cpio(tree_tar, tmp_path / "a" / "t.cpio", epoch=EPOCH, compression=compression)  # type: ignore[arg-type]
    second = export_elsewhere(
        tmp_path / "b",
        "reprobuild.export.cpio",
        "export_cpio",
        tree_tar,
        "t.cpio",
        epoch=EPOCH,
        compression=compression,
    )
    data = first.path.read_bytes()
    assert data == second.read_bytes()
    assert_no_leaks(data, tmp_path)
    decompress = {
        "none": bytes,
        "gzip": gzip.decompress,
        "xz": lzma.decompress,
        "zstd": zstandard.ZstdDecompressor().decompress,
    }
    assert decompress[compression](data) == plain


def test_realistic_tree(deb_tar: Path, tmp_path: Path, need: Need) -> None:
    need("cpio")
    archive = export_cpio(deb_tar, tmp_path / "d.cpio", epoch=EPOCH, compression="gzip")
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(
        ["cpio", "-idm", "--quiet"],
        input=gzip.decompress(archive.path.read_bytes()),
        cwd=out,
        check=True,
    )
    extracted_tree(deb_tar, tmp_path / "ref")
    assert snapshot(out, dir_times=False) == snapshot(tmp_path / "ref", dir_times=False)
    assert os.readlink(out / "bin") == "usr/bin"


def test_bad_compression(tree_tar: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError):
        export_cpio(tree_tar, tmp_path / "t.cpio", epoch=EPOCH, compression="lz4")  # type: ignore[arg-type]
