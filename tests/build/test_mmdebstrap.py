"""The essential root equals mmdebstrap's on the same mirror, path for path."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MIRROR = ROOT.parent / "shared" / "mirrors" / "debian" / "archive" / "debian"
TS = "20260711T101637Z"
KEYRING = ROOT / "snapshots" / "keyrings" / "debian-archive-keyring.gpg"

# apt's and dpkg's own state: mmdebstrap runs apt, we do not; dpkg's backups
# and locks are removed by normalisation.
STATE_PREFIXES = (
    "./etc/apt/apt.conf.d/99mmdebstrap",
    "./etc/apt/preferences.d",
    "./etc/apt/sources.list",
    "./var/cache/apt",
    "./var/lib/apt",
    "./var/log/apt",
)
STATE_NAMES = {
    "./var/lib/dpkg/available",
    "./var/lib/dpkg/statoverride",
    "./var/lib/dpkg/lock",
    "./var/lib/dpkg/lock-frontend",
}


def is_state(path: str) -> bool:
    return path.startswith(STATE_PREFIXES) or path in STATE_NAMES or path.endswith("-old")


def members(path: Path) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    with tarfile.open(path) as t:
        for m in t.getmembers():
            digest = None
            if m.isfile():
                f = t.extractfile(m)
                assert f is not None
                digest = hashlib.sha256(f.read()).hexdigest()
            out[m.name.rstrip("/")] = (m.type, m.mode, m.uid, m.gid, m.linkname, digest)
    return {k: v for k, v in out.items() if not is_state(k)}


@pytest.mark.skipif(shutil.which("mmdebstrap") is None, reason="mmdebstrap is not installed")
@pytest.mark.skipif(
    not MIRROR.exists(), reason="the shared Debian mirror is not beside the repository"
)
def test_essential_matches_mmdebstrap(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPROBUILD_")}
    ref = tmp_path / "mmdebstrap.tar"
    subprocess.run(
        [
            "mmdebstrap",
            "--variant=essential",
            "--include=busybox-static",
            f"--keyring={KEYRING}",
            '--aptopt=Acquire::Check-Valid-Until "false"',
            "bookworm",
            str(ref),
            f"deb copy://{MIRROR}/{TS} bookworm main",
        ],
        check=True,
        capture_output=True,
        env={**env, "SOURCE_DATE_EPOCH": "1783765000"},
        timeout=600,
    )
    (tmp_path / "e.repro").write_text(
        'let snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ]; };\n'
        'in { t = tarball { root = rootfs { snapshot = snap; variant = "essential"; packages = [ "busybox-static" ]; }; }; }\n'
    )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "reprobuild",
            "build",
            "--json",
            "--store",
            str(tmp_path / "store"),
            "--mirror",
            f"debian={MIRROR.as_uri()}/",
            "e.repro",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    ours = members(tmp_path / json.loads(r.stdout)["outputs"]["t"]["path"])
    theirs = members(ref)
    assert sorted(set(theirs) - set(ours)) == []
    assert sorted(set(ours) - set(theirs)) == []
    # Beyond the path set: owners, modes, link targets and contents agree, except
    # files mmdebstrap copies from the build host (we must not), the order in
    # which postinsts append to /etc/shells, and a hard link mmdebstrap stores as a copy.
    differing = sorted(k for k in ours if ours[k] != theirs[k])
    assert set(differing) <= {
        "./etc/hostname",
        "./etc/resolv.conf",
        "./etc/shells",
        "./usr/bin/uncompress",
    }
