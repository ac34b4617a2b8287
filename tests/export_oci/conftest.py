"""Trees, tools and a throw-away registry for the OCI export tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import urllib3

from reprobuild.archives.debian.unpack import unpack_data
from reprobuild.tree import write_canonical_tar

ROOT = Path(__file__).resolve().parents[2]
BUSYBOX_DEB = (
    ROOT
    / "snapshots/demo/archive/debian/20260711T101637Z/pool/main/b/busybox"
    / "busybox-static_1.35.0-4+deb12u1+b1_amd64.deb"
)
EPOCH = 1783766197  # 2026-07-11T10:36:37Z, the demo snapshot's time


def need(tool: str) -> str:
    """The path of *tool*, or skip the test saying which package provides it."""
    path = shutil.which(tool)
    if path is None:
        package = {"bwrap": "bubblewrap"}.get(tool, tool)
        pytest.skip(f"{tool} is not installed (Debian package {package})")
    return path


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("umoci unpack keeps owners and device nodes only as root")


Spec = dict[str, "bytes | str | tuple[str, ...] | None"]


def make_tree(root: Path, spec: Spec) -> Path:
    """Build a tree: bytes = file, None = directory, "->T" = symlink to T,
    ("link", P) = hard link to P, "fifo" = FIFO."""
    root.mkdir(parents=True)
    for name, what in spec.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if what is None:
            path.mkdir(exist_ok=True)
        elif isinstance(what, bytes):
            path.write_bytes(what)
        elif isinstance(what, tuple):
            os.link(root / what[1], path)
        elif what == "fifo":
            os.mkfifo(path)
        else:
            assert what.startswith("->")
            os.symlink(what[2:], path)
    return root


def canonical_tar(root: Path, out: Path, epoch: int = EPOCH) -> Path:
    with open(out, "wb") as handle:
        write_canonical_tar(root, handle, epoch=epoch)
    return out


@pytest.fixture
def tree_tar(tmp_path: Path) -> Callable[[str, Spec], Path]:
    """Make a tree named *name* from a spec and return its canonical tar."""

    def make(name: str, spec: Spec) -> Path:
        root = make_tree(tmp_path / "trees" / name, spec)
        return canonical_tar(root, tmp_path / f"{name}.tar")

    return make


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The genuine busybox-static package as a bootable-enough root tree."""
    if not BUSYBOX_DEB.is_file():
        pytest.skip(f"{BUSYBOX_DEB} is missing")
    base = tmp_path_factory.mktemp("busybox")
    root = base / "root"
    root.mkdir()
    os.chmod(root, 0o755)
    unpack_data(BUSYBOX_DEB, root)
    os.symlink("busybox", root / "bin" / "sh")
    for name in ("proc", "dev", "tmp"):
        (root / name).mkdir(mode=0o755)
    os.chmod(root / "tmp", 0o1777)
    return canonical_tar(root, base / "busybox.tar")


def run(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run([str(a) for a in args], capture_output=True, timeout=300, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, (args, done.stderr.decode(errors="replace"))
    return done  # type: ignore[no-any-return]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """A real docker-registry on loopback, no auth; yields ``127.0.0.1:PORT``."""
    binary = need("docker-registry")
    port = _free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {tmp_path / 'registry-data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log = open(tmp_path / "registry.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    try:
        http = urllib3.PoolManager()
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail("docker-registry exited: " + (tmp_path / "registry.log").read_text())
            try:
                if http.request("GET", f"http://127.0.0.1:{port}/v2/", timeout=1).status == 200:
                    break
            except urllib3.exceptions.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("docker-registry did not start within 30 s")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
