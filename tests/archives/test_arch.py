"""Arch Linux: sync databases, package metadata and detached signatures."""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import tarfile
from pathlib import Path

import pytest
import zstandard

from reprobuild.archives.arch import package as arch
from reprobuild.archives.arch.package import (
    Depend,
    parse_buildinfo,
    parse_depend,
    parse_mtree,
    parse_pkginfo,
    read_package,
    read_sync_db,
    verify_signature,
)
from reprobuild.errors import ArchiveError, SignatureError

from .conftest import ARCH_FIXTURES, ARCH_KEYRING, DEBIAN_KEYRING, need

CMATRIX = "cmatrix-2.0-3-x86_64.pkg.tar.zst"
KPCYRD = "64B13F7117D6E07D661BBCE0FE763A64F5E54FD6"  # primary key of the signer


@pytest.fixture(scope="module")
def cmatrix() -> Path:
    return need(ARCH_FIXTURES / CMATRIX)


def test_sync_db() -> None:
    pkgs = read_sync_db(need(ARCH_FIXTURES / "paru_core.db").read_bytes())
    assert len(pkgs) == 234
    assert [p.name for p in pkgs] == sorted(p.name for p in pkgs)
    acl = next(p for p in pkgs if p.name == "acl")
    assert (acl.version, acl.arch, acl.base) == ("2.3.1-1", "x86_64", "acl")
    assert acl.filename == "acl-2.3.1-1-x86_64.pkg.tar.zst"
    assert acl.csize == 139672 and acl.isize == 333189
    assert acl.sha256 == "2e87a6382bcffc364015f848217d0afdcffdaa5efab43d5ee1b4d80a9645c5b8"
    assert acl.provides == (Depend("xfsacl"), Depend("libacl.so", "=", "1-64"))
    assert acl.depends == (Depend("attr"), Depend("libattr.so"))
    assert acl.files is None
    assert acl.builddate == 1615888805


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


DESC = b"""%FILENAME%
foo-1:2.0-1-any.pkg.tar.zst

%NAME%
foo

%VERSION%
1:2.0-1

%ARCH%
any

%DEPENDS%
bar>=1.0
baz

%OPTDEPENDS%
qux: for the qux feature
"""


@pytest.mark.parametrize("compress", ["gzip", "zstd", "none"])
def test_files_db(compress: str) -> None:
    raw = _tar(
        {
            "foo-1:2.0-1/desc": DESC,
            "foo-1:2.0-1/files": b"%FILES%\nusr/\nusr/bin/foo\n",
        }
    )
    if compress == "gzip":
        data = gzip.compress(raw)
    elif compress == "zstd":
        data = zstandard.ZstdCompressor().compress(raw)
    else:
        data = raw
    (foo,) = read_sync_db(data)
    assert foo.files == ("usr/", "usr/bin/foo")
    assert foo.base == "foo"
    assert foo.depends == (Depend("bar", ">=", "1.0"), Depend("baz"))
    assert foo.optdepends == (Depend("qux", description="for the qux feature"),)


def test_bad_db() -> None:
    with pytest.raises(ArchiveError, match="not a valid database"):
        read_sync_db(b"not a tar at all" * 100)
    # libalpm takes name and version from the directory: one without a version is refused
    with pytest.raises(ArchiveError, match="invalid name for database entry 'x-1/desc'"):
        read_sync_db(_tar({"x-1/desc": b"%NAME%\nx\n"}))
    with pytest.raises(ArchiveError, match="invalid name for database entry 'README'"):
        read_sync_db(_tar({"README": b"hello\n", "x-1-1/desc": b"%NAME%\nx\n"}))
    with pytest.raises(ArchiveError, match="file name of package x is illegal"):
        read_sync_db(_tar({"x-1-1/desc": b"%FILENAME%\n../x.pkg.tar.zst\n"}))


def test_pacman_reads_what_it_can() -> None:
    """Stray lines, unknown sections and files are skipped; the name and version come
    from the directory; numbers that do not parse are unknown, not errors."""
    (x,) = read_sync_db(
        _tar(
            {
                "notes-1-1": b"not a package\n",
                "x-2.0-1/desc": b"stray\n%NAME%\nx\n\n%VERSION%\n9-9\n\n%XDATA%\npkgtype=pkg\n\n"
                b"%CSIZE%\n12k\n\n%FILENAME%\nx-2.0-1-any.pkg.tar.zst\n\n",
                "x-2.0-1/mtree": b"junk",
            }
        )
    )
    assert (x.name, x.version, x.csize, x.filename) == ("x", "2.0-1", None, "x-2.0-1-any.pkg.tar.zst")


def test_read_package(cmatrix: Path) -> None:
    meta = read_package(cmatrix)
    info = meta.pkginfo
    assert (info.name, info.version, info.arch) == ("cmatrix", "2.0-3", "x86_64")
    assert info.depends == (Depend("ncurses"),)
    assert info.optdepends[0] == Depend("kbd", description="cmatrix-tty custom font")
    assert info.makedepends == (Depend("cmake"),)
    assert info.xdata == ("pkgtype=pkg",)
    assert info.size == 97097 and info.builddate == 1712094817
    bi = meta.buildinfo
    assert bi is not None
    assert bi.format == 2
    assert (bi.buildtool, bi.buildtoolver, bi.startdir) == (
        "devtools",
        "1:1.1.1-1-any",
        "/startdir",
    )
    assert len(bi.installed) == 123
    assert "acl-2.3.2-1-x86_64" in bi.installed
    assert "lto" in bi.options
    assert meta.mtree is not None
    by_path = {e.path: e for e in meta.mtree}
    assert by_path["usr/bin/cmatrix"].mode == "755"
    assert by_path["usr/bin/cmatrix"].size == 22544
    assert by_path["usr/share/fonts"].type == "dir"
    assert by_path[".PKGINFO"].uid == 0


def test_mtree_hashes_match_members(cmatrix: Path) -> None:
    """The .MTREE digests describe the very .PKGINFO/.BUILDINFO we parsed."""
    with (
        cmatrix.open("rb") as f,
        zstandard.ZstdDecompressor().stream_reader(f) as s,
        tarfile.open(fileobj=s, mode="r|") as tar,
    ):
        members = {}
        for m in tar:
            if m.name in (".PKGINFO", ".BUILDINFO", ".MTREE"):
                fobj = tar.extractfile(m)
                assert fobj is not None
                members[m.name] = fobj.read()
    entries = {e.path: e for e in parse_mtree(members[".MTREE"])}
    for name in (".PKGINFO", ".BUILDINFO"):
        assert entries[name].sha256 == hashlib.sha256(members[name]).hexdigest()


def test_buildinfo_format_1() -> None:
    text = "\n".join(
        [
            "format = 1",
            "pkgname = foo",
            "pkgbase = foo",
            "pkgver = 1-1",
            "pkgarch = any",
            "pkgbuild_sha256sum = " + "0" * 64,
            "packager = A <a@b>",
            "builddate = 5",
            "builddir = /build",
            "buildenv = ccache",
            "installed = bar-1-1-any",
        ]
    )
    bi = parse_buildinfo(text)
    assert (bi.format, bi.startdir, bi.buildtool) == (1, "", "")
    assert bi.installed == ("bar-1-1-any",)
    with pytest.raises(ArchiveError, match="no startdir"):
        parse_buildinfo(text.replace("format = 1", "format = 2"))
    with pytest.raises(ArchiveError, match="unsupported BUILDINFO format 3"):
        parse_buildinfo(text.replace("format = 1", "format = 3"))


def test_pkginfo_errors() -> None:
    with pytest.raises(ArchiveError, match="no pkgname"):
        parse_pkginfo("pkgver = 1-1\narch = any\n")
    with pytest.raises(ArchiveError, match="expected 'key = value'"):
        parse_pkginfo("pkgname=foo\n")


def test_mtree_set_unset_and_escapes() -> None:
    text = (
        b"#mtree\n/set type=file uid=0 gid=0 mode=644\n"
        b"./a\\040b time=1.0 size=3 sha256digest=ab\n"
        b"/unset mode\n./l type=link link=../x\\040y\n"
    )
    a, link = parse_mtree(gzip.compress(text))
    assert (a.path, a.mode, a.size, a.sha256) == ("a b", "644", 3, "ab")
    assert (link.type, link.mode, link.link) == ("link", None, "../x y")
    with pytest.raises(ArchiveError, match="size is not a number"):
        parse_mtree(b"./a size=x\n")


def test_not_a_package(tmp_path: Path) -> None:
    bogus = tmp_path / "x.pkg.tar.zst"
    bogus.write_bytes(zstandard.ZstdCompressor().compress(_tar({"usr/bin/x": b"x"})))
    with pytest.raises(ArchiveError, match=r"no \.PKGINFO"):
        read_package(bogus)


@pytest.mark.parametrize(
    ("text", "expected", "version", "ok"),
    [
        ("glibc>=2.35", Depend("glibc", ">=", "2.35"), "2.35-1", True),
        ("glibc<2", Depend("glibc", "<", "2"), "2.0", False),
        ("sh", Depend("sh"), "5", True),
        ("libfoo.so=1-64", Depend("libfoo.so", "=", "1-64"), "1-64", True),
        ("python>3.11", Depend("python", ">", "3.11"), "3.12.1-1", True),
        ("gcc<=13", Depend("gcc", "<=", "13"), "1:12", False),
    ],
)
def test_depend(text: str, expected: Depend, version: str, ok: bool) -> None:
    dep = parse_depend(text)
    assert dep == expected
    assert str(dep) == text
    assert dep.satisfied_by(version) is ok


def _require_keyring() -> Path:
    if not ARCH_KEYRING.exists():
        pytest.skip("snapshots/keyrings/archlinux.gpg is not shipped")
    return ARCH_KEYRING


@pytest.mark.skipif(shutil.which("sqv") is None, reason="sqv is not installed")
def test_package_signature_sqv(cmatrix: Path, tmp_path: Path) -> None:
    keyring = _require_keyring()
    (signer,) = verify_signature(cmatrix, keyring)
    assert signer.primary_fingerprint == KPCYRD
    flipped = tmp_path / CMATRIX
    data = bytearray(cmatrix.read_bytes())
    data[1000] ^= 0x01
    flipped.write_bytes(bytes(data))
    with pytest.raises(SignatureError, match="does not verify") as info:
        verify_signature(flipped, keyring, sig_path=cmatrix.with_name(CMATRIX + ".sig"))
    assert CMATRIX in info.value.message
    with pytest.raises(SignatureError, match="does not verify"):
        verify_signature(cmatrix, DEBIAN_KEYRING)


@pytest.mark.skipif(shutil.which("gpgv") is None, reason="gpgv is not installed")
def test_package_signature_gpgv_fallback(
    cmatrix: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without sqv, gpgv verifies (after converting the armored keyring)."""
    keyring = _require_keyring()
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "sqv" else real_which(name))
    # The signing subkey expired after it signed (2024); gpgv judges expiry today.
    with pytest.raises(SignatureError, match="has expired"):
        verify_signature(cmatrix, keyring)
    (signer,) = verify_signature(cmatrix, keyring, allow_expired_keys=True)
    assert signer.primary_fingerprint == KPCYRD
    flipped = tmp_path / CMATRIX
    data = bytearray(cmatrix.read_bytes())
    data[1000] ^= 0x01
    flipped.write_bytes(bytes(data))
    with pytest.raises(SignatureError, match="bad signature"):
        verify_signature(
            flipped, keyring, sig_path=cmatrix.with_name(CMATRIX + ".sig"), allow_expired_keys=True
        )


def test_no_verifier_installed(cmatrix: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SignatureError, match="neither sqv nor gpgv") as info:
        verify_signature(cmatrix, ARCH_KEYRING)
    assert "sqv" in (info.value.hint or "") and "gpgv" in (info.value.hint or "")


def test_missing_sig(cmatrix: Path, tmp_path: Path) -> None:
    with pytest.raises(SignatureError, match="unsigned"):
        verify_signature(cmatrix, ARCH_KEYRING, sig_path=tmp_path / "none.sig")


def test_reexports() -> None:
    assert arch.vercmp("1.0-1", "1.0-2") == -1
