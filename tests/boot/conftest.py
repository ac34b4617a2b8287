"""Fixtures for booting the committed recipes: the snapshot with their packages.

Debian's genuine signed snapshot index comes from the shared mirror; every
package the lockfiles name that the shared mirror lacks is fetched with
``apt-get download NAME=VERSION`` and checked against the lockfile's sha256
(tests/support/snapmirror.py). Skips, saying why, only where apt cannot
provide them or a tool is missing.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.support.debmirror import MirrorUnavailable
from tests.support.snapmirror import locked_mirror

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes"
LOCKS = (RECIPES / "debian-vm.repro.lock", RECIPES / "debian-live.repro.lock")
USER, PASSWORD = "admin", "reprobuild"  # debian-system.repro's user
TOOLS = ("bwrap", "sfdisk", "mkfs.ext4", "debugfs", "xorriso", "mkfs.fat", "mcopy", "faketime")


def snapshot_timestamp(lock: Path) -> str:
    snaps = json.loads(lock.read_text())["snapshots"]
    return str(next(iter(snaps.values()))["timestamp"])


def recorded(lock: Path, output: str) -> str:
    """The digest the committed lockfile recorded for *output* (what a build must give)."""
    return str(json.loads(lock.read_text())["outputs"][output]["sha256"])


@pytest.fixture(scope="session")
def vm_mirror(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``--mirror debian=URL`` serving the snapshot with every package of the VM recipes."""
    if os.geteuid() != 0:
        pytest.skip("building a configured root file system with its owners needs root")
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    for tool in (*TOOLS, "qemu-system-x86_64"):
        if shutil.which(tool, path=path) is None:
            pytest.skip(f"{tool} is not installed (see .ci/run)")
    try:
        return locked_mirror(
            tmp_path_factory.mktemp("vm-mirror"), LOCKS, snapshot_timestamp(LOCKS[0])
        )
    except MirrorUnavailable as exc:
        pytest.skip(f"the VM recipes' packages cannot be fetched with apt: {exc}")
