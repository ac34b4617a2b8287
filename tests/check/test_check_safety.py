"""check cannot fill a disk, and leaves nothing behind (issue 15).

check copies only what evaluation read; beside the recipe lie a 2 GB
unrelated file and an unpacked root with device nodes, a FIFO and a socket
(reading `dev/full` as a file used to write until the disk was full). Its
temporary space is a 1 GB tmpfs; a full one ends in DiskFull; a check
killed with SIGTERM removes its scratch tree and its builds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.recipes import NETBASE_RECIPE

ROOT = Path(__file__).resolve().parents[2]
MIRROR_URL = (ROOT / "snapshots" / "demo" / "archive" / "debian").as_uri() + "/"
VARIATIONS = "tz,locale,umask,environment,home,build_path"


def _mount(path: Path, size: str) -> None:
    path.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode})")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "tmpfs"
    _mount(mnt, "1G")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def hostile_dir(tmp_path: Path) -> Path:
    """The netbase recipe beside a 2 GB file and a root with device nodes."""
    if os.geteuid() != 0:
        pytest.skip("making device nodes needs root")
    work = tmp_path / "recipe"
    work.mkdir()
    (work / "net.repro").write_text(NETBASE_RECIPE)
    with open(work / "big.img", "wb") as f:
        f.truncate(2 << 30)  # sparse: costs nothing unless someone copies it
    dev = work / "bundle" / "rootfs" / "dev"
    dev.mkdir(parents=True)
    os.mknod(dev / "full", 0o666 | 0o020000, os.makedev(1, 7))
    os.mknod(dev / "zero", 0o666 | 0o020000, os.makedev(1, 5))
    os.mkfifo(dev / "initctl")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(dev / "log"))
    sock.close()
    return work


def _check(work: Path, tmpdir: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPROBUILD_")}
    # The mirror only in the environment: check must pass it to its builds.
    env.update({"TMPDIR": str(tmpdir), "REPROBUILD_MIRROR_DEBIAN": MIRROR_URL})
    return subprocess.Popen(
        [sys.executable, "-m", "reprobuild", "check", "--variations", VARIATIONS, *args, "net.repro"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_check_reads_only_what_evaluation_read(hostile_dir: Path, tmpfs: Path) -> None:
    proc = _check(hostile_dir, tmpfs, "--json")
    out, err = proc.communicate(timeout=1200)
    assert proc.returncode == 0, err
    assert json.loads(out)["reproducible"] is True
    assert "[control] started" in err and "[varied] started" in err  # progress
    assert "[control] run    rootfs     t.root" in err
    assert list(tmpfs.iterdir()) == []  # the scratch tree is gone


def test_check_on_a_full_disk_is_a_clean_error(hostile_dir: Path, tmp_path: Path) -> None:
    small = tmp_path / "small"
    _mount(small, "4M")
    try:
        st = os.statvfs(small)
        with open(small / "filler", "wb") as f:  # leave room for tempfile's probe only
            os.posix_fallocate(f.fileno(), 0, st.f_bavail * st.f_frsize - (64 << 10))
        proc = _check(hostile_dir, small)
        _, err = proc.communicate(timeout=1200)
        assert proc.returncode == 2, err
        assert "No space left on device" in err, err
        assert "Traceback" not in err and "internal error" not in err, err
        assert sorted(p.name for p in small.iterdir()) == ["filler"]
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


def test_a_killed_check_leaves_nothing(hostile_dir: Path, tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc = _check(hostile_dir, tmpdir, "--sequential")
    assert proc.stderr is not None
    deadline = time.monotonic() + 600
    for line in proc.stderr:
        if "[control] started" in line or time.monotonic() > deadline:
            break
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert list(tmpdir.iterdir()) == []
    # No inner build survives it (they run in their own process groups).
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(tmpdir) not in ps


def test_check_takes_packages_from_the_users_store(hostile_dir: Path, tmp_path: Path) -> None:
    """With the mirror gone, check's fresh stores get the signed indexes and the
    packages from the user's store (by sha256), not from the network."""
    from tests.support.cli import reprobuild
    from tests.support.mirror import free_port

    store = tmp_path / "user-store"
    r = reprobuild(hostile_dir, "build", "-q", "--store", str(store), "--mirror", f"debian={MIRROR_URL}", "net.repro")
    assert r.returncode == 0, r.stderr
    dead = f"http://127.0.0.1:{free_port()}/"
    r = reprobuild(
        hostile_dir,
        "check",
        "--variations",
        "umask",
        "--store",
        str(store),
        "net.repro",
        env={"REPROBUILD_MIRROR_DEBIAN": dead, "REPROBUILD_FETCH_RETRIES": "0"},
    )
    assert r.returncode == 0, r.stderr
    assert "reproducible" in r.stdout
