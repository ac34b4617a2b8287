"""build --dry-run: the steps that would run and the packages, writing nothing (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import reprobuild
from tests.support.recipes import NETBASE_RECIPE

ROOT = Path(__file__).resolve().parents[2]
MIRROR = f"debian=file://{ROOT}/snapshots/demo/archive/debian/"


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "net.repro").write_text(NETBASE_RECIPE)
    store = tmp_path / "store"
    r = reprobuild(tmp_path, "build", "--dry-run", "--store", str(store), "--mirror", MIRROR, "net.repro")
    assert r.returncode == 0, r.stderr
    assert "would create net.repro.lock" in r.stdout
    assert "steps: 3 would run, 0 cached" in r.stdout
    assert "  run     rootfs    t.root" in r.stdout
    assert "packages: 1 (" in r.stdout and ", 1 to fetch (" in r.stdout
    assert "netbase  6.4  all" in r.stdout
    assert not store.exists() and not (tmp_path / "net.repro.lock").exists()
    assert not (tmp_path / "out").exists()

    r = reprobuild(tmp_path, "build", "-q", "--store", str(store), "--mirror", MIRROR, "net.repro")
    assert r.returncode == 0, r.stderr
    r = reprobuild(
        tmp_path, "build", "--dry-run", "--json", "--store", str(store), "--mirror", MIRROR, "net.repro"
    )
    plan = json.loads(r.stdout)
    assert plan["lockfile"] == [] and plan["fetch_bytes"] == 0
    assert all(s["cached"] for s in plan["steps"])
    assert [p["name"] for p in plan["packages"]] == ["netbase"] and plan["packages"][0]["stored"]
