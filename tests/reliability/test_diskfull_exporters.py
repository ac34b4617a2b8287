"""A full disk while each exporter writes, and while `check` builds (issue 15).

The root tree is built once with room; then each image kind is made with
TMPDIR (where steps write) on a small tmpfs that is already full. Each must
end in exit 2 `No space left on device` naming a path on that tmpfs: never a
traceback or "internal error", nothing left behind, the store still sound.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import reprobuild

ROOT = Path(__file__).resolve().parents[2]
MIRROR = f"debian=file://{ROOT}/snapshots/demo/archive/debian/"
TMPFS_BYTES = 4 << 20
SNAP = (
    'snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; '
    'suites = [ "bookworm" ]; };\n'
)
# Unconfigured (nothing runs in the sandbox), and a few MB: more than the tmpfs has left.
ROOTFS = (
    'root = rootfs { snapshot = snap; variant = "none"; '
    'packages = [ "busybox-static" "tzdata" ]; };\n'
)
# Room for what comes before the exporter (Python's probe of TMPDIR, gpgv's copy of
# the InRelease), not for any image of the tree (1.4 MB compressed, 7 MB not).
LEAVE = 768 << 10
EXPORTS = {
    "oci_image": 'oci_image { inherit root; tag = "full:1"; }',
    "tarball": 'tarball { inherit root; compression = "zstd"; }',
    "iso9660": 'iso9660 { inherit root; volume_id = "FULL"; }',
    "disk_image": 'disk_image { inherit root; size = "16M"; }',
    "squashfs": "squashfs { inherit root; }",
    "cpio": 'cpio { inherit root; compression = "gzip"; }',
}
TOOLS = {"iso9660": "xorriso", "disk_image": "sfdisk", "squashfs": "mksquashfs"}


def recipe(output: str) -> str:
    return f"let\n  {SNAP}  {ROOTFS}in {{ o = {output}; }}\n"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A store holding the root tree (built with room), and the work directory."""
    work = tmp_path_factory.mktemp("full-exporters")
    store = work / "store"
    (work / "r.repro").write_text(recipe("tarball { inherit root; }"))
    r = reprobuild(work, "build", "-q", "--store", str(store), "--mirror", MIRROR, "r.repro")
    assert r.returncode == 0, r.stderr
    return work, store


@pytest.fixture
def full_tmpfs(tmp_path: Path) -> Iterator[Path]:
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
        st = os.statvfs(mnt)
        with open(mnt / "filler", "wb") as f:
            os.posix_fallocate(f.fileno(), 0, st.f_bavail * st.f_frsize - LEAVE)
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


# Two in `make test`; every exporter in `make test-slow`.
FAST = ("disk_image", "oci_image")


@pytest.mark.parametrize(
    "kind", [k if k in FAST else pytest.param(k, marks=pytest.mark.slow) for k in sorted(EXPORTS)]
)
def test_an_exporter_on_a_full_disk_is_a_clean_error(
    prepared: tuple[Path, Path], full_tmpfs: Path, tmp_path: Path, kind: str
) -> None:
    tool = TOOLS.get(kind)
    if tool and shutil.which(tool, path=os.environ["PATH"] + ":/usr/sbin:/sbin") is None:
        pytest.skip(f"{tool} is not installed (CI installs it)")
    _, store = prepared
    (tmp_path / "r.repro").write_text(recipe(EXPORTS[kind]))
    r = reprobuild(tmp_path, "lock", "--mirror", MIRROR, "r.repro")  # with room
    assert r.returncode == 0, r.stderr
    r = reprobuild(
        tmp_path,
        "build",
        "--store",
        str(store),
        "--mirror",
        MIRROR,
        "-o",
        str(tmp_path / "out"),
        "r.repro",
        # scratch trees go where TMPDIR says, not to /dev/shm (reprobuild/scratch.py)
        env={"TMPDIR": str(full_tmpfs), "REPROBUILD_TMPFS": "off"},
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    assert "No space left on device" in r.stderr, r.stderr
    assert str(full_tmpfs) in r.stderr, r.stderr
    assert f"{kind} step 'o'" in r.stderr, r.stderr
    assert sorted(p.name for p in full_tmpfs.iterdir()) == ["filler"]  # nothing partial left
    v = reprobuild(tmp_path, "store", "verify", "--store", str(store))
    assert v.returncode == 0, v.stdout + v.stderr


def test_a_read_only_output_directory_is_named(prepared: tuple[Path, Path], tmp_path: Path) -> None:
    """EROFS (and EACCES) are the machine's state too: exit 2 naming the path."""
    work, store = prepared
    ro = tmp_path / "ro"
    ro.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1M", "tmpfs", str(ro)], capture_output=True, text=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode})")
    try:
        r = reprobuild(
            work, "build", "-q", "--store", str(store), "--mirror", MIRROR, "-o", str(ro / "out"), "r.repro"
        )
        assert r.returncode == 2, r.stdout + r.stderr
        assert "read-only file system" in r.stderr and str(ro) in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)
