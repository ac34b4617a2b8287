"""InRelease: the signature is checked with gpgv and only the signed text is used."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reprobuild.archives.debian.index import parse_release, verify_inrelease
from reprobuild.archives.signature import dearmor
from reprobuild.errors import ArchiveError, SignatureError

from .conftest import (
    ARCH_KEYRING,
    BOOKWORM_ARCHIVE_KEY,
    BOOKWORM_SIGNING_SUBKEY,
    DEBIAN_KEYRING,
    MIRROR,
    PACKAGES_XZ,
    need,
)

pytestmark = pytest.mark.skipif(shutil.which("gpgv") is None, reason="gpgv is not installed")


def test_real_inrelease_verifies(inrelease_bytes: bytes) -> None:
    vr = verify_inrelease(inrelease_bytes, DEBIAN_KEYRING)
    assert vr.fingerprint == BOOKWORM_ARCHIVE_KEY
    assert vr.signers[0].fingerprint == BOOKWORM_SIGNING_SUBKEY
    assert len(vr.signers) == 3  # bookworm and trixie archive keys, stable release key
    rel = vr.release
    assert (rel.suite, rel.codename, rel.version) == ("oldstable", "bookworm", "12.15")
    assert rel.date == datetime(2026, 7, 11, 10, 16, 37, tzinfo=UTC)
    assert rel.valid_until is None
    assert "amd64" in rel.architectures
    assert rel.components == ("main", "contrib", "non-free-firmware", "non-free")
    entry = rel.entry(PACKAGES_XZ)
    assert entry is not None
    assert entry.size == 8790396
    assert entry.sha256 == "9e0b5aabb2465b3d2e7a7fe27f9913846277833f7a2826e7767acccff5b588c5"
    assert rel.acquire_by_hash


def test_returns_signed_text_only(inrelease_bytes: bytes) -> None:
    vr = verify_inrelease(inrelease_bytes, DEBIAN_KEYRING)
    assert vr.signed_text.startswith(b"Origin: Debian\n")
    assert b"PGP" not in vr.signed_text
    assert b"Hash: SHA256" not in vr.signed_text
    assert len(vr.file_sha256) == 64


def test_shipped_keyring_is_the_mirror_keyring() -> None:
    shipped = DEBIAN_KEYRING.read_bytes()
    assert shipped == need(MIRROR / "debian-archive-keyring.gpg").read_bytes()


def test_edited_inrelease_fails(inrelease_bytes: bytes) -> None:
    edited = inrelease_bytes.replace(b"Suite: oldstable", b"Suite: stable\x20\x20\x20")
    assert edited != inrelease_bytes
    with pytest.raises(SignatureError, match="bad signature") as info:
        verify_inrelease(edited, DEBIAN_KEYRING, what="bookworm/InRelease")
    assert "bookworm/InRelease" in info.value.message
    assert info.value.hint


def test_other_keyring_fails(inrelease_bytes: bytes) -> None:
    with pytest.raises(SignatureError, match="not in the keyring") as info:
        verify_inrelease(inrelease_bytes, ARCH_KEYRING)
    assert "keyring" in (info.value.hint or "")


def test_one_good_signature_is_enough(inrelease_bytes: bytes, tmp_path: Path) -> None:
    """Like apt: a keyring that knows only one of the signing keys still accepts."""
    only_bookworm = Path("/usr/share/keyrings/debian-archive-bookworm-automatic.gpg")
    if not only_bookworm.exists():
        pytest.skip("debian-archive-keyring's per-release keyrings are not installed")
    vr = verify_inrelease(inrelease_bytes, only_bookworm)
    assert [s.fingerprint for s in vr.signers] == [BOOKWORM_SIGNING_SUBKEY]


def test_unsigned_fails(inrelease_bytes: bytes) -> None:
    vr = verify_inrelease(inrelease_bytes, DEBIAN_KEYRING)
    with pytest.raises(SignatureError, match="unsigned"):
        verify_inrelease(vr.signed_text, DEBIAN_KEYRING)


def test_text_outside_signature_is_refused(inrelease_bytes: bytes) -> None:
    with pytest.raises(SignatureError, match="after the signature"):
        verify_inrelease(inrelease_bytes + b"Suite: evil\n", DEBIAN_KEYRING)
    with pytest.raises(SignatureError, match="before the signed part"):
        verify_inrelease(b"Suite: evil\n\n" + inrelease_bytes, DEBIAN_KEYRING)
    with pytest.raises(SignatureError, match="more than one"):
        verify_inrelease(inrelease_bytes + inrelease_bytes, DEBIAN_KEYRING)


def test_missing_keyring(inrelease_bytes: bytes, tmp_path: Path) -> None:
    with pytest.raises(SignatureError, match="cannot read keyring"):
        verify_inrelease(inrelease_bytes, tmp_path / "nope.gpg")


def test_gpgv_missing(inrelease_bytes: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SignatureError, match="gpgv is not installed") as info:
        verify_inrelease(inrelease_bytes, DEBIAN_KEYRING)
    assert "apt-get install gpgv" in (info.value.hint or "")


def test_dearmor_matches_binary_keyring() -> None:
    data = ARCH_KEYRING.read_bytes()
    assert data.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    binary = dearmor(data)
    assert binary[0] & 0x80  # an OpenPGP packet tag
    assert dearmor(binary) is binary


RELEASE_TEXT = """\
Origin: Debian
Label: Debian-Security
Suite: stable-security
Codename: bookworm-security
Date: Fri, 10 Jul 2026 18:00:00 UTC
Valid-Until: Fri, 17 Jul 2026 18:00:00 UTC
Architectures: amd64 arm64
Components: updates/main
SHA256:
 {h} 12 updates/main/binary-amd64/Packages.xz
"""


def test_parse_release_valid_until() -> None:
    rel = parse_release(RELEASE_TEXT.format(h="ab" * 32))
    assert rel.valid_until == datetime(2026, 7, 17, 18, 0, tzinfo=UTC)
    assert rel.components == ("updates/main",)
    assert rel.entry("updates/main/binary-amd64/Packages.xz") is not None
    assert not rel.acquire_by_hash


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (RELEASE_TEXT.format(h="ab" * 31), "malformed SHA256"),
        (RELEASE_TEXT.replace("Date:", "Dote:").format(h="ab" * 32), "no Date"),
        (RELEASE_TEXT.split("SHA256:")[0], "no SHA256"),
        ("Suite: x\nDate: yesterday\nSHA256:\n", "cannot parse Date"),
        ("just text\n", "expected 'Field: value'"),
    ],
)
def test_parse_release_errors(text: str, message: str) -> None:
    with pytest.raises(ArchiveError, match=message):
        parse_release(text)
