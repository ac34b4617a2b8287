"""Packages indexes: checked against the signed Release, then parsed fast and right."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import lzma
import shutil
from pathlib import Path

import pytest

from reprobuild.archives.debian.index import (
    BinaryPackage,
    IndexEntry,
    Relation,
    Release,
    check_index,
    decompress_index,
    packages_index_candidates,
    parse_packages,
    parse_relations,
    read_packages,
    verify_inrelease,
)
from reprobuild.errors import ArchiveError, IntegrityError

from .conftest import DEBIAN_KEYRING, PACKAGES_XZ

needs_gpgv = pytest.mark.skipif(shutil.which("gpgv") is None, reason="gpgv is not installed")


@pytest.fixture(scope="module")
def release(inrelease_bytes: bytes) -> Release:
    if shutil.which("gpgv") is None:
        pytest.skip("gpgv is not installed")
    return verify_inrelease(inrelease_bytes, DEBIAN_KEYRING).release


@pytest.fixture(scope="module")
def packages(release: Release, packages_xz_bytes: bytes) -> tuple[BinaryPackage, ...]:
    return read_packages(release, PACKAGES_XZ, packages_xz_bytes)


@pytest.fixture(scope="module")
def packages_text(packages_xz_bytes: bytes) -> bytes:
    return lzma.decompress(packages_xz_bytes)


def test_hash_check_passes(release: Release, packages_xz_bytes: bytes) -> None:
    check_index(release, PACKAGES_XZ, packages_xz_bytes)


def test_flipped_byte_fails(release: Release, packages_xz_bytes: bytes) -> None:
    damaged = bytearray(packages_xz_bytes)
    damaged[len(damaged) // 2] ^= 0x01
    with pytest.raises(IntegrityError) as info:
        read_packages(release, PACKAGES_XZ, bytes(damaged), what="mirror/Packages.xz")
    msg = info.value.message
    assert "mirror/Packages.xz" in msg
    assert hashlib.sha256(bytes(damaged)).hexdigest() in msg
    assert "9e0b5aabb2465b3d2e7a7fe27f9913846277833f7a2826e7767acccff5b588c5" in msg


def test_truncated_fails(release: Release, packages_xz_bytes: bytes) -> None:
    with pytest.raises(IntegrityError, match="bytes"):
        check_index(release, PACKAGES_XZ, packages_xz_bytes[:-1])


def test_unlisted_index_fails(release: Release) -> None:
    with pytest.raises(ArchiveError, match="not listed"):
        check_index(release, "main/binary-hurd/Packages.xz", b"")


def test_candidates_prefer_xz(release: Release) -> None:
    names = [e.path for e in packages_index_candidates(release, "main", "amd64")]
    assert names == [
        "main/binary-amd64/Packages.xz",
        "main/binary-amd64/Packages.gz",
        "main/binary-amd64/Packages",
    ]
    with pytest.raises(ArchiveError, match="no Packages index"):
        packages_index_candidates(release, "main", "vax")


def test_full_index(packages: tuple[BinaryPackage, ...]) -> None:
    assert len(packages) == 63440
    by_name = {p.name: p for p in packages}
    base_files = by_name["base-files"]
    assert base_files.essential
    assert base_files.priority == "required"
    assert base_files.relations("pre_depends") == ((Relation("awk"),),)
    mawk = by_name["mawk"]
    assert any(alt.name == "awk" for group in mawk.relations("provides") for alt in group)
    bb = by_name["busybox-static"]
    assert any(g[0].name == "busybox" for g in bb.relations("conflicts"))
    assert by_name["0ad-data-common"].source == "0ad-data"
    binutils = by_name["binutils"]
    assert binutils.filename.startswith("pool/main/b/binutils/")
    assert len(binutils.sha256) == 64
    assert dataclasses.is_dataclass(binutils)
    with pytest.raises(dataclasses.FrozenInstanceError):
        binutils.name = "x"  # type: ignore[misc]


def test_fast_objects_equal_normal_ones(packages: tuple[BinaryPackage, ...]) -> None:
    pkg = packages[123]
    rebuilt = BinaryPackage(**{f.name: getattr(pkg, f.name) for f in dataclasses.fields(pkg)})
    assert rebuilt == pkg
    assert vars(rebuilt) == vars(pkg)  # the fast path fills exactly the declared fields
    assert hash(rebuilt) == hash(pkg)
    assert repr(rebuilt) == repr(pkg)


def test_gz_and_plain_give_the_same(
    packages_text: bytes, packages: tuple[BinaryPackage, ...], release: Release
) -> None:
    gz = gzip.compress(packages_text, compresslevel=1, mtime=0)
    fake = Release(
        suite="t",
        codename="t",
        date=release.date,
        valid_until=None,
        architectures=("amd64",),
        components=("main",),
        sha256=(
            IndexEntry("main/binary-amd64/Packages.gz", len(gz), hashlib.sha256(gz).hexdigest()),
            IndexEntry(
                "main/binary-amd64/Packages",
                len(packages_text),
                hashlib.sha256(packages_text).hexdigest(),
            ),
        ),
    )
    assert read_packages(fake, "main/binary-amd64/Packages.gz", gz) == packages
    assert read_packages(fake, "main/binary-amd64/Packages", packages_text) == packages


def test_lzma_fallback_without_xz(
    packages_xz_bytes: bytes, packages_text: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert decompress_index("Packages.xz", packages_xz_bytes) == packages_text


def test_corrupt_xz(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ArchiveError, match="corrupt xz"):
        decompress_index("Packages.xz", b"\xfd7zXZ\x00garbage")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ArchiveError, match="corrupt xz"):
        decompress_index("Packages.xz", b"\xfd7zXZ\x00garbage")


def test_matches_python_debian(packages_text: bytes, packages: tuple[BinaryPackage, ...]) -> None:
    """Every exposed field of every stanza agrees with python-debian's reading."""
    deb822 = pytest.importorskip("debian.deb822", reason="python-debian is not installed")
    import io

    theirs = list(deb822.Packages.iter_paragraphs(io.BytesIO(packages_text), use_apt_pkg=False))
    assert len(theirs) == len(packages)
    for ours, para in zip(packages, theirs, strict=True):
        src = para.get("Source", para["Package"])
        src_name, _, src_ver = src.partition(" ")
        expected = {
            "name": para["Package"],
            "version": para["Version"],
            "architecture": para["Architecture"],
            "filename": para["Filename"],
            "size": int(para["Size"]),
            "sha256": para["SHA256"],
            "source": src_name,
            "source_version": src_ver.strip("()") or para["Version"],
            "multi_arch": para.get("Multi-Arch", "no"),
            "essential": para.get("Essential") == "yes",
            "protected": para.get("Protected") == "yes",
            "priority": para.get("Priority"),
            "depends": para.get("Depends", ""),
            "pre_depends": para.get("Pre-Depends", ""),
            "recommends": para.get("Recommends", ""),
            "provides": para.get("Provides", ""),
            "conflicts": para.get("Conflicts", ""),
            "breaks": para.get("Breaks", ""),
            "replaces": para.get("Replaces", ""),
            "suggests": para.get("Suggests", ""),
            "enhances": para.get("Enhances", ""),
        }
        assert dataclasses.asdict(ours) == expected, para["Package"]


SYNTHETIC = b"""Package: alpha
Version: 1:2.0-1
Architecture: amd64
Maintainer: J\xc3\xb6rg <j@example.org>
Depends: libc6 (>= 2.34),
 libfoo:any | libbar (<< 3~)
Source: alpha-src (1.9)
Multi-Arch: foreign
Description: first
 continued
 .
 more
Filename: pool/main/a/alpha_2.0-1_amd64.deb
Size: 10
SHA256: 0000000000000000000000000000000000000000000000000000000000000000

Package: b\xc3\xa9ta
Version: 1.0
Architecture: all
Filename: pool/main/b/beta_1.0_all.deb
Size: 20
SHA256: 1111111111111111111111111111111111111111111111111111111111111111
"""


def test_synthetic_stanzas() -> None:
    alpha, beta = parse_packages(SYNTHETIC)
    assert alpha.version == "1:2.0-1"
    assert (alpha.source, alpha.source_version) == ("alpha-src", "1.9")
    assert alpha.multi_arch == "foreign"
    assert alpha.relations("depends") == (
        (Relation("libc6", None, ">=", "2.34"),),
        (Relation("libfoo", "any"), Relation("libbar", None, "<<", "3~")),
    )
    assert beta.name == "béta"  # UTF-8 survives the latin-1 fast path
    assert (beta.source, beta.source_version) == ("béta", "1.0")
    assert parse_packages(SYNTHETIC.replace(b"\n", b"\r\n")) == (alpha, beta)
    assert parse_packages(b"\n\n" + SYNTHETIC + b"\n\n\n") == (alpha, beta)


def test_missing_field() -> None:
    broken = SYNTHETIC.replace(b"Size: 20\n", b"")
    with pytest.raises(ArchiveError, match=r"package b.ta has no Size field"):
        parse_packages(broken)
    with pytest.raises(ArchiveError, match="bad size"):
        parse_packages(SYNTHETIC.replace(b"Size: 20", b"Size: twenty"))


def test_big_input_is_chunked() -> None:
    """Stanzas that straddle the 1 MiB chunk boundary are not split."""
    stanza = SYNTHETIC.split(b"\n\n")[1] + b"\n\n"
    many = stanza * (3 * (1 << 20) // len(stanza) + 7)
    assert len(parse_packages(many)) == many.count(b"Package:")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("foo", ((Relation("foo"),),)),
        ("foo (< 1)", ((Relation("foo", None, "<=", "1"),),)),
        ("foo (> 1)", ((Relation("foo", None, ">=", "1"),),)),
        ("foo(>=1.0)", ((Relation("foo", None, ">=", "1.0"),),)),
        (
            "foo:amd64 (= 1) [amd64 !i386] <!nocheck>",
            ((Relation("foo", "amd64", "=", "1", ("amd64", "!i386")),),),
        ),
        ("a | b, c", ((Relation("a"), Relation("b")), (Relation("c"),))),
        ("", ()),
    ],
)
def test_parse_relations(text: str, expected: tuple[tuple[Relation, ...], ...]) -> None:
    assert parse_relations(text) == expected


@pytest.mark.parametrize("text", ["foo (>= )", "(>= 1)", "foo bar", "foo (~ 1)"])
def test_parse_relations_errors(text: str) -> None:
    with pytest.raises(ArchiveError, match="cannot parse package relation"):
        parse_relations(text)


@pytest.mark.parametrize(
    ("relation", "version", "ok"),
    [
        ("foo (>= 1.0)", "1.0", True),
        ("foo (>= 1.0)", "1.0~rc1", False),
        ("foo (<< 2)", "1:1", False),
        ("foo (= 2-1)", "2-1", True),
        ("foo (>> 2)", "2.0.1", True),
        ("foo (<= 2)", "2", True),
        ("foo", "0", True),
    ],
)
def test_satisfied_by(relation: str, version: str, ok: bool) -> None:
    assert parse_relations(relation)[0][0].satisfied_by(version) is ok
    assert str(parse_relations(relation)[0][0]) == relation


def test_relation_field_missing_is_empty() -> None:
    alpha = parse_packages(SYNTHETIC)[0]
    assert alpha.relations("breaks") == ()


def test_path_read(tmp_path: Path) -> None:
    """parse_packages takes what decompress_index returns."""
    gz = tmp_path / "Packages.gz"
    gz.write_bytes(gzip.compress(SYNTHETIC))
    assert len(parse_packages(decompress_index(gz.name, gz.read_bytes()))) == 2
