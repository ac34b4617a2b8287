"""check: reprotest's variations applied for real; a clock leak is caught and named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.cli import reprobuild as rb

ROOT = Path(__file__).resolve().parents[2]
DEMO = "debian=" + (ROOT / "snapshots" / "demo" / "archive" / "debian").as_uri() + "/"
SHARED = ROOT.parent / "shared" / "mirrors" / "debian" / "archive" / "debian"


def test_demo_is_reproducible_under_every_variation(tmp_path: Path) -> None:
    shutil.copy(ROOT / "recipes" / "demo.repro", tmp_path / "demo.repro")
    shutil.copy(ROOT / "recipes" / "demo.repro.lock", tmp_path / "demo.repro.lock")
    r = rb(tmp_path, "check", "--json", "--mirror", DEMO, "demo.repro")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["reproducible"] is True
    assert {"build_path", "home", "tz", "locale", "umask", "jobs", "environment"} <= set(
        out["variations"]
    )
    assert all(o["status"] == "identical" for o in out["outputs"].values())
    # Golden digests at no extra cost (the full form is tests/golden, slow for the
    # demo): the bytes are the ones the committed lockfile records.
    recorded = json.loads((ROOT / "recipes" / "demo.repro.lock").read_text())["outputs"]
    assert {n: o["control"] for n, o in out["outputs"].items()} == {
        n: o["sha256"] for n, o in recorded.items()
    }, "output bytes changed; if intended, 'make golden' (docs/testing.md)"


@pytest.mark.skipif(
    not SHARED.exists(), reason="the shared Debian mirror is not beside the repository"
)
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap is not installed")
def test_a_clock_in_a_run_step_is_caught(tmp_path: Path) -> None:
    (tmp_path / "bad.repro").write_text(
        "let\n"
        '  snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ]; };\n'
        '  root = rootfs { snapshot = snap; variant = "none"; configure = false; packages = [ "busybox-static" "dash" ]; };\n'
        '  stamped = run { root = root; script = "/bin/busybox mkdir -p /out; /bin/busybox date +%s%N > /out/built-at"; outputs = [ "/out" ]; };\n'
        "in { t = tarball { root = stamped; }; }\n"
    )
    r = rb(
        tmp_path,
        "check",
        "--json",
        "--variations",
        "tz,umask",
        "--mirror",
        f"debian={SHARED.as_uri()}/",
        "bad.repro",
    )
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)["outputs"]["t"]
    assert out["status"] == "differs"
    assert any(c.startswith("time") for c in out["causes"])
    assert "out/built-at" in out["diff"]
