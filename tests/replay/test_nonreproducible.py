"""The proof mechanisms meet a failure: a step whose output changes on every run.

A ``run`` step writes a fresh random UUID (``/proc/sys/kernel/random/uuid``)
to ``/out/nonce``. ``replay`` must rebuild it, not reuse the step record the
store already holds, and say "differs" naming the file (exit 1); ``check``
must find the difference, blame the clock or randomness, and name the file
(exit 1). The root comes from the embedded demo snapshot (busybox-static and
dash, unconfigured), so these tests need nothing beside the repository.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.cli import reprobuild as rb

ROOT = Path(__file__).resolve().parents[2]
MIRROR = "debian=" + (ROOT / "snapshots" / "demo" / "archive" / "debian").as_uri() + "/"

NONCE = """\
let
  snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ]; };
  root = rootfs { snapshot = snap; variant = "none"; configure = false; packages = [ "busybox-static" "dash" ]; };
  stamped = run {
    root = root;
    script = "/bin/busybox mkdir -p /out; /bin/busybox cat /proc/sys/kernel/random/uuid > /out/nonce; /bin/busybox echo same > /out/steady";
    outputs = [ "/out" ];
  };
in { t = tarball { root = stamped; }; }
"""

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap is not installed")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:  # type: ignore[type-arg]
    work = tmp_path_factory.mktemp("nonce")
    (work / "r.repro").write_text(NONCE)
    store = work / "store"
    r = rb(work, "build", "--json", "--store", str(store), "--mirror", MIRROR, "r.repro")
    assert r.returncode == 0, r.stderr
    return work, store, json.loads(r.stdout)


def test_replay_rebuilds_and_names_the_file_that_differs(
    built: tuple[Path, Path, dict],  # type: ignore[type-arg]
) -> None:
    work, store, first = built
    recorded = json.loads((work / "r.repro.lock").read_text())["outputs"]["t"]["sha256"]
    assert recorded == first["outputs"]["t"]["sha256"]
    # The same store: every step record of the first build is there to be (wrongly) reused.
    r = rb(work, "replay", "--json", "--store", str(store), "--mirror", MIRROR, "r.repro.lock")
    assert r.returncode == 1, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["identical"] is False
    t = out["outputs"]["t"]
    assert t["status"] == "differs" and t["expected"] == recorded and t["actual"] != recorded
    assert "out/nonce" in t["summary"], t["summary"]
    assert "out/steady" not in t["summary"]
    assert any(m.startswith("run ") for m in out["steps_differing_from_store"]), out
    # ... and the plain form says so to a person, too
    r = rb(work, "replay", "--store", str(store), "--mirror", MIRROR, "r.repro.lock")
    assert r.returncode == 1
    assert "DIFFERS" in r.stdout and "out/nonce" in r.stdout


def test_check_finds_the_randomness_and_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "r.repro").write_text(NONCE)
    r = rb(tmp_path, "check", "--json", "--variations", "umask", "--mirror", MIRROR, "r.repro")
    assert r.returncode == 1, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["reproducible"] is False
    t = out["outputs"]["t"]
    assert t["status"] == "differs" and t["control"] != t["varied"]
    assert any(c.startswith("time") for c in t["causes"]), t["causes"]
    assert "out/nonce" in t["diff"] and "out/steady" not in t["diff"], t["diff"]
