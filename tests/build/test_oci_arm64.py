"""An arm64 root's OCI image says arm64 (issue 19: its config said amd64).

The architecture of an image comes from the packages of its root unless the
recipe names one: a real build from a signed arm64 archive (a package crafted
with dpkg-deb, an index signed with a throwaway key), its config read back.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from tests.support.cli import reprobuild as rb
from tests.support.crafted import MirrorUnavailable, deb_from_tree, signed_mirror

RECIPE = """\
let
  snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ];
                    arch = "arm64"; };
  root = rootfs { snapshot = snap; variant = "none"; packages = [ "hello-arm" ]; };
in { img = oci_image { inherit root; tag = "hello:arm64"; }; }
"""


def _blob(layout: Path, digest: str) -> dict:  # type: ignore[type-arg]
    return json.loads((layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_text())


def test_arm64_root_gives_an_arm64_image(tmp_path: Path) -> None:
    debs = tmp_path / "debs"
    debs.mkdir()
    try:
        deb = deb_from_tree(debs, "hello-arm", files={"/etc/hello": (b"hi\n", 0o644)})
        mirror = signed_mirror(tmp_path / "mirror", [deb], arch="arm64")
    except MirrorUnavailable as exc:
        pytest.skip(str(exc))
    (tmp_path / "r.repro").write_text(RECIPE)
    r = rb(
        tmp_path,
        "build",
        "--json",
        "--store",
        str(tmp_path / "store"),
        "--mirror",
        f"debian={mirror.url}",
        "--keyring",
        f"debian={mirror.keyring}",
        "r.repro",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)["outputs"]["img"]
    layout = tmp_path / "layout"
    with tarfile.open(f"{tmp_path / out['path']}.tar") as t:
        from reprobuild.tarextract import extract_all

        extract_all(t, layout)
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["platform"] == {
        "architecture": "arm64",
        "os": "linux",
        "variant": "v8",
    }
    manifest = _blob(layout, index["manifests"][0]["digest"])
    config = _blob(layout, manifest["config"]["digest"])
    assert (config["architecture"], config["os"], config["variant"]) == ("arm64", "linux", "v8")
    assert out["sha256"] == index["manifests"][0]["digest"].removeprefix("sha256:")
    lock = json.loads((tmp_path / "r.repro.lock").read_text())
    assert {s["architecture"] for s in lock["snapshots"].values()} == {"arm64"}
