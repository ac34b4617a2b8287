"""status against a loopback server speaking rebuilderd's v0 API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.mirror import serve

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "recipes" / "demo.repro.lock"


def test_status_counts_and_links(tmp_path: Path) -> None:
    lock = json.loads(LOCK.read_text())
    pkgs = lock["packages"]
    # Responses in the shape of rebuilderd's PkgRelease (common/src/api/v0):
    releases = []
    for i, p in enumerate(pkgs):
        status = "BAD" if p["name"] == "tzdata" else ("UNKWN" if p["name"] == "netbase" else "GOOD")
        releases.append(
            {
                "name": p["name"],
                "version": p["version"],
                "architecture": p["architecture"],
                "status": status,
                "distro": "debian",
                "suite": "main",
                "artifact_url": "https://deb.debian.org/debian/" + p["filename"],
                "build_id": 1000 + i,
                "built_at": "2026-07-12T00:00:00",
                "has_diffoscope": status == "BAD",
                "has_attestation": status == "GOOD",
            }
        )
    releases = [r for r in releases if r["name"] != "mawk"]  # unknown to this rebuilder
    api = tmp_path / "api" / "v0" / "pkgs"
    api.mkdir(parents=True)
    (api / "list").write_text(json.dumps(releases))
    with serve(tmp_path) as srv:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REPROBUILD_")}
        r = subprocess.run(
            [sys.executable, "-m", "reprobuild", "status", "--rebuilder", srv.url, str(LOCK)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
        )
        assert ("/api/v0/pkgs/list", None) in srv.requests
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert (
        lines[0]
        == f"{len(pkgs) - 3}/{len(pkgs)} packages reproducible ({100 * (len(pkgs) - 3) / len(pkgs):.1f}%)"
    )
    bad = next(line for line in lines if "tzdata" in line)
    assert bad.split()[0] == "BAD" and "/api/v0/builds/" in bad and bad.endswith("/diffoscope")
    assert any(line.split()[0] == "MISSING" and "mawk" in line for line in lines)
    assert any(line.split()[0] == "UNKWN" and "netbase" in line for line in lines)
