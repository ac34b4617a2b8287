"""Our unpack + database against real ``dpkg --unpack`` on real bookworm packages.

Both sides start from the same skeleton (merged-/usr links, empty database
from :func:`init_admindir`); dpkg runs with ``--root`` on packages without a
``preinst`` (so no maintainer script runs outside a chroot). Everything is
compared: paths, types, modes, owners, contents, symlink targets, device
numbers, file mtimes, and the database files byte for byte.

Known, documented differences excluded from the comparison:
* directory mtimes (dpkg leaves the unpack time, we restore the archive's);
* mtimes of files dpkg writes itself (status, .list, locks, triggers);
* ``status-old`` (dpkg's backup of the previous status; removed at
  normalisation, not written by us).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from reprobuild.archives.debian.dpkgdb import init_admindir, record_unpacked
from reprobuild.archives.debian.unpack import read_deb, setup_merged_usr, unpack_data

from .conftest import snapshot_tree  # type: ignore[import-not-found]

SMALL_SET = [
    "base-files", "bash", "mawk", "busybox-static", "netbase", "debconf", "ncurses-base",
    "libc-bin", "zlib1g", "ca-certificates", "debianutils", "gzip", "libpam-modules-bin",
    "dpkg", "tar", "libacl1",
]


def _mtime_compared(rel: str) -> bool:
    if not rel.startswith("var/lib/dpkg/"):
        return True
    name = rel.rsplit("/", 1)[-1]
    if rel.startswith("var/lib/dpkg/info/"):
        return not name.endswith(".list") and name != "format"
    return False


def _run_both(debs: list[Path], tmp_path: Path) -> tuple[Path, Path, float, float]:
    if shutil.which("dpkg") is None:
        pytest.skip("dpkg is not installed")
    theirs, ours = tmp_path / "dpkg", tmp_path / "ours"
    for root in (theirs, ours):
        root.mkdir()
        root.chmod(0o755)
        setup_merged_usr(root, "amd64")
        init_admindir(root, arch="amd64")
    start = time.perf_counter()
    subprocess.run(
        ["dpkg", f"--root={theirs}", "--log=/dev/null", "--force-depends", "--unpack", *map(str, debs)],
        check=True, capture_output=True, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"},
    )
    dpkg_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for deb in debs:
        record_unpacked(ours, unpack_data(deb, ours))
    our_seconds = time.perf_counter() - start
    (theirs / "var/lib/dpkg/status-old").unlink(missing_ok=True)
    return theirs, ours, dpkg_seconds, our_seconds


def _compare(theirs: Path, ours: Path) -> None:
    a = snapshot_tree(theirs, mtimes_for=_mtime_compared)
    b = snapshot_tree(ours, mtimes_for=_mtime_compared)
    assert sorted(set(a) - set(b)) == []
    assert sorted(set(b) - set(a)) == []
    different = {p: (a[p], b[p]) for p in a if a[p] != b[p]}
    assert different == {}
    for rel in ["var/lib/dpkg/status", *(str(p.relative_to(theirs)) for p in (theirs / "var/lib/dpkg").rglob("*") if p.is_file())]:
        assert (theirs / rel).read_bytes() == (ours / rel).read_bytes(), rel


def test_unpack_matches_dpkg_on_sixteen_packages(pool_debs: dict[str, Path], tmp_path: Path) -> None:
    debs = [pool_debs[name] for name in SMALL_SET]
    assert all(read_deb(d).control_file("preinst") is None for d in debs)
    theirs, ours, _, _ = _run_both(debs, tmp_path)
    _compare(theirs, ours)


@pytest.mark.slow
def test_unpack_matches_dpkg_on_every_package_without_preinst(pool_debs: dict[str, Path], tmp_path: Path) -> None:
    debs = [d for d in pool_debs.values() if read_deb(d).control_file("preinst") is None]
    assert len(debs) >= 80
    theirs, ours, dpkg_s, our_s = _run_both(debs, tmp_path)
    print(f"dpkg --unpack: {dpkg_s:.2f}s, reprobuild: {our_s:.2f}s for {len(debs)} packages")
    _compare(theirs, ours)
