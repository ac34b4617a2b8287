from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from reprobuild.archives.debian.index import decompress_index, parse_packages
from reprobuild.archives.debian.resolve import DebianUniverse

from .apt_oracle import PACKAGES_XZ, AptRoot, apt_get


@pytest.fixture(scope="session")
def bookworm_index() -> bytes:
    """The decompressed real bookworm Packages index of the shared test mirror."""
    if not PACKAGES_XZ.exists():
        pytest.skip(f"the shared Debian test mirror is missing ({PACKAGES_XZ})")
    return decompress_index(PACKAGES_XZ.name, PACKAGES_XZ.read_bytes())


@pytest.fixture(scope="session")
def bookworm(bookworm_index: bytes) -> DebianUniverse:
    return DebianUniverse.from_packages(parse_packages(bookworm_index))


@pytest.fixture(scope="session")
def bookworm_apt(bookworm_index: bytes) -> Iterator[AptRoot]:
    """Real apt over the same index; tests using it skip where apt is missing."""
    if apt_get() is None:
        pytest.skip("apt-get is not installed: cannot compare with the real apt")
    with tempfile.TemporaryDirectory() as tmp:
        yield AptRoot(Path(tmp), bookworm_index)
