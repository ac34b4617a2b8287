"""Session fixtures: debuerreotype's tarballs, made once per variant per session."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.support.debuerreotype import SHARED, run_debuerreotype, unavailable
from tests.support.mirror import serve


@pytest.fixture(scope="session")
def snapshot_proxy() -> Iterator[str]:
    """A loopback HTTP proxy answering for snapshot.debian.org from the shared mirror."""
    with serve(SHARED) as server:
        yield server.url


@pytest.fixture(scope="session")
def debuerreotype_tarball(
    tmp_path_factory: pytest.TempPathFactory, snapshot_proxy: str
) -> Callable[..., Path]:
    """debuerreotype's rootfs.tar for (include, slim); each made once (about 80 s)."""
    reason = unavailable()
    cache: dict[tuple[tuple[str, ...], bool], Path] = {}

    def make(include: Sequence[str] = (), slim: bool = False) -> Path:
        if reason:
            pytest.skip(reason)
        key = (tuple(include), slim)
        if key not in cache:
            work = tmp_path_factory.mktemp("debuerreotype")
            cache[key] = run_debuerreotype(work, proxy=snapshot_proxy, include=include, slim=slim)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def library_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One store for the library's builds in a session: packages fetched once,
    and the include and slim variants share their debootstrap step."""
    return tmp_path_factory.mktemp("library-store") / "store"  # made by the first build
