"""An OCI image built from a recipe: real skopeo, real registry, the same digest."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.export_oci.conftest import registry  # noqa: F401 - the fixture
from tests.support.cli import reprobuild as rb

ROOT = Path(__file__).resolve().parents[2]
DEMO_MIRROR = (ROOT / "snapshots" / "demo" / "archive" / "debian").as_uri() + "/"
RECIPE = """\
let
  snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ]; };
  root = rootfs { snapshot = snap; variant = "none"; packages = [ "busybox-static" "base-files" ]; };
in {
  img = oci_image { inherit root; entrypoint = [ "/bin/busybox" "sh" ]; tag = "demo:1"; env = { A = "1"; }; };
}
"""

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:  # type: ignore[type-arg]
    work = tmp_path_factory.mktemp("oci")
    (work / "r.repro").write_text(RECIPE)
    r = rb(
        work,
        "build",
        "--json",
        "--store",
        str(work / "store"),
        "--mirror",
        f"debian={DEMO_MIRROR}",
        "r.repro",
    )
    assert r.returncode == 0, r.stderr
    return work, json.loads(r.stdout)


def test_layout_and_archive_accepted_with_the_printed_digest(built: tuple[Path, dict]) -> None:  # type: ignore[type-arg]
    work, out = built
    digest = "sha256:" + out["outputs"]["img"]["sha256"]
    layout = work / out["outputs"]["img"]["path"]
    for ref in (f"oci:{layout}:demo:1", f"oci-archive:{layout}.tar"):
        info = json.loads(
            subprocess.run(
                ["skopeo", "inspect", ref], capture_output=True, text=True, check=True
            ).stdout
        )
        assert info["Digest"] == digest
        assert info["Created"] == "2026-07-11T10:16:37Z"


def test_push_keeps_the_digest(built: tuple[Path, dict], registry: str) -> None:  # type: ignore[type-arg]  # noqa: F811
    work, out = built
    r = rb(work, "push", out["outputs"]["img"]["path"], f"{registry}/demo:1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("@sha256:" + out["outputs"]["img"]["sha256"])


INDEX_RECIPE = """\
let
  snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ]; };
  root = rootfs { snapshot = snap; variant = "none"; packages = [ "busybox-static" ]; };
  img = arch: oci_image { inherit root; architecture = arch; entrypoint = [ "/bin/busybox" "sh" ]; };
in { multi = image_index { images = [ (img "amd64") (img "arm64") ]; tag = "busybox:multi"; }; }
"""


def test_image_index(tmp_path: Path) -> None:
    (tmp_path / "r.repro").write_text(INDEX_RECIPE)
    r = rb(
        tmp_path,
        "build",
        "--json",
        "--store",
        str(tmp_path / "store"),
        "--mirror",
        f"debian={DEMO_MIRROR}",
        "r.repro",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)["outputs"]["multi"]
    layout = tmp_path / out["path"]
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{layout}:busybox:multi"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    index = json.loads(raw)
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    info = json.loads(
        subprocess.run(
            ["skopeo", "inspect", f"oci:{layout}:busybox:multi"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert info["Digest"] == "sha256:" + out["sha256"]
