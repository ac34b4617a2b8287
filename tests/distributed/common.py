"""Shared by the distributed-build and remote-cache tests: a small recipe with
independent steps, the embedded demo mirror, and a JSON build helper."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.cli import reprobuild

ROOT = Path(__file__).resolve().parents[2]
MIRROR = f"debian={(ROOT / 'snapshots/demo/archive/debian').as_uri()}/"

# 7 steps: snapshot, fetch; two rootfs that do not depend on each other; three
# exports (two of the same root), so a cluster has independent work to spread.
RECIPE = """\
let
  snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ]; };
  root = rootfs { snapshot = snap; variant = "none"; packages = [ "netbase" ]; };
  other = rootfs {
    snapshot = snap; variant = "none"; packages = [ "netbase" ];
    files = { "/etc/motd" = "two\\n"; };
  };
in
{
  t = tarball { inherit root; };
  c = cpio { inherit root; };
  u = tarball { root = other; compression = "zstd"; };
}
"""


def workdir(tmp_path: Path, name: str = "w", recipe: str = RECIPE) -> Path:
    work = tmp_path / name
    work.mkdir()
    (work / "r.repro").write_text(recipe)
    return work


def build_json(
    work: Path, store: Path, *args: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """``reprobuild build --json`` that must succeed; returns its summary."""
    r = reprobuild(
        work,
        "build",
        "--json",
        "--store",
        str(store),
        "--mirror",
        MIRROR,
        *args,
        "r.repro",
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    summary: dict[str, Any] = json.loads(r.stdout)
    return summary


def digests(summary: dict[str, Any]) -> dict[str, str]:
    return {name: o["sha256"] for name, o in summary["outputs"].items()}
