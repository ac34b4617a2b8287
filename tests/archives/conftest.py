"""Shared paths for the archive tests: the real files under /work/shared."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = (REPO / ".." / "shared").resolve()
MIRROR = SHARED / "mirrors" / "debian"
SNAPSHOT = MIRROR / "archive" / "debian" / "20260711T101637Z"
SUITE = SNAPSHOT / "dists" / "bookworm"
ARCH_FIXTURES = SHARED / "fixtures" / "arch"
KEYRINGS = REPO / "snapshots" / "keyrings"
DEBIAN_KEYRING = KEYRINGS / "debian-archive-keyring.gpg"
ARCH_KEYRING = KEYRINGS / "archlinux.gpg"
PACKAGES_XZ = "main/binary-amd64/Packages.xz"
BOOKWORM_SIGNING_SUBKEY = "4CB50190207B4758A3F73A796ED0E7B82643E131"
BOOKWORM_ARCHIVE_KEY = "B8B80B5B623EAB6AD8775C45B7C5D7D6350947F8"


def need(path: Path) -> Path:
    """Skip the test when a shared fixture is not on this machine."""
    if not path.exists():
        pytest.skip(f"shared test data {path} is absent (expected beside the repository)")
    return path


@pytest.fixture(scope="session")
def inrelease_bytes() -> bytes:
    return need(SUITE / "InRelease").read_bytes()


@pytest.fixture(scope="session")
def packages_xz_bytes() -> bytes:
    return need(SUITE / PACKAGES_XZ).read_bytes()
