"""Shared pieces of the attacker's tests (issue 18): a busybox root, the demo mirror."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "snapshots" / "demo"
BUSYBOX_DEB = next(DEMO.rglob("busybox-static_*.deb"))
APPLETS = ("sh", "cat", "grep", "id", "ls", "mount", "unshare", "readlink", "ln", "dd", "head")


def busybox_tree(dest: Path) -> Path:
    """A root with /bin/busybox and a few applets (dpkg-deb is the reference unpacker)."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    subprocess.run(["dpkg-deb", "-x", str(BUSYBOX_DEB), str(dest)], check=True)
    (dest / "bin").mkdir(exist_ok=True)
    for applet in APPLETS:
        (dest / "bin" / applet).symlink_to("busybox")
    return dest


@pytest.fixture
def busybox_root(tmp_path: Path) -> Path:
    if shutil.which("bwrap") is None:
        pytest.skip("bwrap is not installed (Debian package bubblewrap)")
    return busybox_tree(tmp_path / "root")


@pytest.fixture
def demo_mirror(tmp_path: Path) -> Path:
    """A private copy of the embedded demo snapshot (genuine signed index), as a mirror."""
    mirror = tmp_path / "mirror"
    shutil.copytree(DEMO, mirror)
    return mirror


def mirror_arg(mirror: Path) -> str:
    return f"debian={(mirror / 'archive' / 'debian').as_uri()}/"
