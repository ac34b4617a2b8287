"""A full disk under the store, the output directory or the lockfile (issue 8).

A small tmpfs is mounted for each test (we run as root; skipped with the
reason where mounting is not permitted) and filled up to a chosen margin.
The build must exit 2 naming "No space left on device" and the path, with
no traceback and nothing partial kept; once space is freed, ``store
verify`` passes and a rerun gives the digests of a build that had room.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reprobuild import lockfile as lf
from reprobuild.outstate import STATE_NAME
from tests.support.cli import reprobuild
from tests.support.crash import (
    DEMO_MIRROR,
    Reference,
    check_out_dir,
    reference_fixture,  # noqa: F401 - provides the fixture ``reference``
    temp_leftovers,
)

TMPFS_BYTES = 16 << 20


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(mnt: Path, leave: int) -> Path:
    """Take all but ``leave`` bytes of the file system with one file."""
    filler = mnt / "filler"
    st = os.statvfs(mnt)
    size = st.f_bavail * st.f_frsize - leave
    with open(filler, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, size)
    return filler


def build(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return reprobuild(work, "build", "--json", "--mirror", DEMO_MIRROR, *args, "r.repro")


def refused(r: subprocess.CompletedProcess[str], path: Path | str) -> None:
    assert r.returncode == 2, r.stdout + r.stderr
    assert "No space left on device" in r.stderr and str(path) in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr


def converges(work: Path, store: Path, digests: dict[str, str], *args: str) -> None:
    """Once space is freed: the store verifies, and a rerun gives ``digests``."""
    if store.exists():  # (a store the full disk kept from being created is not there)
        r = reprobuild(work, "store", "verify", "--store", str(store))
        assert r.returncode == 0, r.stdout + r.stderr
    r = build(work, "--store", str(store), *args)
    assert r.returncode == 0, r.stderr
    assert {n: o["sha256"] for n, o in json.loads(r.stdout)["outputs"].items()} == digests
    r = reprobuild(work, "store", "verify", "--store", str(store))
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("leave", [0, 48 << 10])  # a whole store takes ~300 kB
def test_store_on_a_full_disk(
    reference: Reference, small_fs: Path, tmp_path: Path, leave: int
) -> None:
    """Full before the store exists, and after a few objects."""
    work = reference.copy_to(tmp_path / "w")
    store = small_fs / "store"
    filler = fill(small_fs, leave)
    refused(build(work, "--store", str(store)), store)
    assert [p.name for p in small_fs.iterdir()] in (
        ["filler"],
        ["filler", "store"],
        ["store", "filler"],
    )
    if store.exists():  # nothing half-written in flight
        assert list((store / "lfs" / "tmp").iterdir()) == []
        assert list((store / "reprobuild" / "tmp").iterdir()) == []
        assert not list(store.rglob("*.lock")) or all(
            p.name in ("gc.lock", "refs.lock") for p in store.rglob("*.lock")
        )
    assert lf.load(work / "r.repro.lock")
    check_out_dir(work / "out" / "r", store)
    filler.unlink()
    converges(work, store, reference.digests)


def test_output_directory_on_a_full_disk(
    reference: Reference, small_fs: Path, tmp_path: Path
) -> None:
    """Room for the OCI archive (30 kB), not for all of its layout and the tarball."""
    work = reference.copy_to(tmp_path / "w")
    store = tmp_path / "store"
    out = small_fs / "out"
    filler = fill(small_fs, 40 << 10)
    r = build(work, "--store", str(store), "-o", str(out))
    refused(r, out)
    check_out_dir(out, store)
    assert temp_leftovers(out) == []
    filler.unlink()
    converges(work, store, reference.digests, "-o", str(out))
    check_out_dir(out, store)
    assert sorted(p.name for p in out.iterdir()) == [STATE_NAME, "o", "o.tar", "t.tar.gz"]


def test_lockfile_on_a_full_disk(reference: Reference, small_fs: Path, tmp_path: Path) -> None:
    """The build records its outputs in the lockfile last: the old one stays whole."""
    work = reference.copy_to(small_fs / "w")
    before = (work / "r.repro.lock").read_text()
    store = tmp_path / "store"
    filler = fill(small_fs, 0)
    r = build(work, "--store", str(store), "-o", str(tmp_path / "out"))
    refused(r, "cannot write lockfile r.repro.lock")  # as the user named it (relative)
    assert (work / "r.repro.lock").read_text() == before
    assert temp_leftovers(work) == []
    filler.unlink()
    converges(work, store, reference.digests, "-o", str(tmp_path / "out"))
    assert json.loads((work / "r.repro.lock").read_text())["outputs"]
