"""Debian and Arch Linux packages: member headers, control fields, file trees."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import zstandard

from reprobuild.diff import compare, render_text
from tests.diff.conftest import EPOCH, Member, make_tree, need, write_tar

CONTROL = """\
Package: hello
Version: {version}
Architecture: amd64
Maintainer: Test <test@example.org>
Description: greets
 a longer description
"""


def _deb(tmp_path: Path, name: str, version: str, greeting: bytes) -> Path:
    stage = make_tree(tmp_path / name, {"usr/share/hello/greeting": greeting})
    (stage / "DEBIAN").mkdir()
    (stage / "DEBIAN" / "control").write_text(CONTROL.format(version=version))
    for path in [stage, *stage.rglob("*")]:
        os.utime(path, (EPOCH, EPOCH), follow_symlinks=False)
    out = tmp_path / f"{name}.deb"
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(EPOCH))
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zxz", "-b", str(stage), str(out)],
        check=True,
        env=env,
        capture_output=True,
    )
    return out


def test_deb_control_field_and_file(tmp_path: Path) -> None:
    need("dpkg-deb")
    a = _deb(tmp_path, "a", "1.0-1", b"hello\n")
    b = _deb(tmp_path, "b", "1.0-2", b"hello, world\n")
    diff = compare(a, b)
    assert diff is not None and diff.kind == "deb"
    lines = render_text(diff).splitlines()
    assert "control.tar.xz: control: content differs (fields Version)" in lines
    assert '    Version: "1.0-1" vs "1.0-2"' in lines
    assert "data.tar.xz: usr/share/hello/greeting: content differs (text), size 6 vs 13" in lines
    assert compare(a, a) is None


def test_deb_inside_a_directory(tmp_path: Path) -> None:
    need("dpkg-deb")
    (tmp_path / "repo-a" / "pool").mkdir(parents=True)
    (tmp_path / "repo-b" / "pool").mkdir(parents=True)
    _deb(tmp_path, "x", "1", b"1\n").rename(tmp_path / "repo-a" / "pool" / "hello.deb")
    _deb(tmp_path, "y", "2", b"1\n").rename(tmp_path / "repo-b" / "pool" / "hello.deb")
    for repo in ("repo-a", "repo-b"):
        for path in [tmp_path / repo, *(tmp_path / repo).rglob("*")]:
            os.utime(path, (EPOCH, EPOCH))
    lines = render_text(compare(tmp_path / "repo-a", tmp_path / "repo-b")).splitlines()
    assert "pool/hello.deb: control.tar.xz: control: content differs (fields Version)" in lines


def _pkg(tmp_path: Path, name: str, pkgver: str, data: bytes) -> Path:
    pkginfo = f"pkgname = hello\npkgver = {pkgver}\narch = x86_64\ndepend = glibc\n".encode()
    plain = write_tar(
        tmp_path / f"{name}.tar",
        [
            Member(".PKGINFO", pkginfo),
            Member("usr/", kind=tarfile.DIRTYPE, mode=0o755),
            Member("usr/bin/", kind=tarfile.DIRTYPE, mode=0o755),
            Member("usr/bin/hello", data, mode=0o755),
        ],
    )
    out = tmp_path / f"{name}.pkg.tar.zst"
    out.write_bytes(zstandard.ZstdCompressor(level=3).compress(plain.read_bytes()))
    plain.unlink()
    return out


def test_pacman_package_fields_and_tree(tmp_path: Path) -> None:
    a = _pkg(tmp_path, "a", "1.0-1", b"#!/bin/sh\necho 1\n")
    b = _pkg(tmp_path, "b", "1.0-2", b"#!/bin/sh\necho 2\n")
    diff = compare(a, b)
    assert diff is not None and diff.kind == "pacman-package"
    lines = render_text(diff).splitlines()
    assert ".PKGINFO: content differs (fields pkgver)" in lines
    assert '    pkgver: removed ["1.0-1"], added ["1.0-2"]' in lines
    assert "usr/bin/hello: content differs (text)" in lines


def test_gzip_member_inside_tar_is_decompressed(tmp_path: Path) -> None:
    import gzip

    def changelog(text: bytes) -> bytes:
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
            gz.write(text)
        return buf.getvalue()

    a = write_tar(tmp_path / "a.tar", [Member("usr/share/doc/changelog.gz", changelog(b"v1\n"))])
    b = write_tar(tmp_path / "b.tar", [Member("usr/share/doc/changelog.gz", changelog(b"v2\n"))])
    lines = render_text(compare(a, b)).splitlines()
    assert lines[0] == "usr/share/doc/changelog.gz: content differs (text)"
