"""Self-describing images: annotations, lockfile and SBOM referrers, push, verify.

About 40 s in the default run (one light build of an image alone; verify
rebuilds it from the cache).
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
import urllib3

from reprobuild.export.oci import ImageConfig, write_oci_layout
from reprobuild.export.referrers import (
    ANNOTATION_LOCK,
    ANNOTATION_OUTPUT,
    INPUTS_ARTIFACT,
    LOCK_ARTIFACT,
    SBOM_ARTIFACT,
    layout_referrers,
    lock_digest,
)
from reprobuild.lockfile import Lockfile
from tests.export_oci.conftest import EPOCH, need
from tests.support.cli import reprobuild as rb
from tests.support.recipes import LIGHT_DEMO

ROOT = Path(__file__).resolve().parents[2]
DEMO = "debian=" + (ROOT / "snapshots" / "demo" / "archive" / "debian").as_uri() + "/"
# The light demo's image without its tarball and ISO outputs (verify rebuilds every
# output), its motd a file the recipe names by path (carried as the inputs referrer).
MOTD = "built by reprobuild\n"
IMAGE_ONLY = (LIGHT_DEMO[: LIGHT_DEMO.index("  tarball = tarball")] + "}\n").replace(
    '"/etc/motd" = "built by reprobuild\\n";', '"/etc/motd" = ./motd;'
)


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def test_annotations_change_the_manifest_only(tree_tar, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tar = tree_tar("t", {"etc/motd": b"hello\n", "bin": None})
    plain = write_oci_layout([tar], ImageConfig(tag="t"), tmp_path / "a", epoch=EPOCH)
    described = write_oci_layout(
        [tar], ImageConfig(tag="t", annotations={ANNOTATION_OUTPUT: "oci"}), tmp_path / "b",
        epoch=EPOCH,
    )  # fmt: skip
    assert plain.layer_digests == described.layer_digests
    assert plain.config_digest == described.config_digest
    assert plain.manifest_digest != described.manifest_digest


@pytest.fixture(scope="module")
def light(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(work directory, store, OCI layout) of one light build, shared by the tests."""
    need("bwrap")
    work = tmp_path_factory.mktemp("light")
    (work / "light.repro").write_text(IMAGE_ONLY)
    (work / "motd").write_text(MOTD)
    store = work / "store"
    r = rb(work, "build", "--json", "--store", str(store), "--mirror", DEMO, "light.repro")
    assert r.returncode == 0, r.stderr
    return work, store, work / json.loads(r.stdout)["outputs"]["oci"]["path"]


def test_built_image_describes_itself_and_verifies(
    light: tuple[Path, Path, Path], tmp_path: Path, registry: str
) -> None:
    need("skopeo")
    work, store, layout = light
    index = json.loads((layout / "index.json").read_bytes())
    image = index["manifests"][0]
    manifest = json.loads(_blob(layout, image["digest"]))
    annotations = manifest["annotations"]
    assert annotations["org.opencontainers.image.created"] == "2026-07-11T10:16:37Z"
    assert annotations[ANNOTATION_OUTPUT] == "oci"
    lock_file = Lockfile.from_json(json.loads((work / "light.repro.lock").read_text()))
    assert annotations[ANNOTATION_LOCK] == lock_digest(lock_file)

    referrers = layout_referrers(layout, image["digest"])
    kinds = sorted(item["manifest"]["artifactType"] for item in referrers)
    assert kinds == sorted([LOCK_ARTIFACT, INPUTS_ARTIFACT, SBOM_ARTIFACT])
    inputs_item = next(i for i in referrers if i["manifest"]["artifactType"] == INPUTS_ARTIFACT)
    carried_inputs = _blob(layout, inputs_item["manifest"]["layers"][0]["digest"])
    with tarfile.open(fileobj=io.BytesIO(carried_inputs)) as t:
        assert t.getnames() == ["motd"]
        assert t.extractfile("motd").read() == MOTD.encode()  # type: ignore[union-attr]
    lock_item = next(i for i in referrers if i["manifest"]["artifactType"] == LOCK_ARTIFACT)
    carried = json.loads(_blob(layout, lock_item["manifest"]["layers"][0]["digest"]))
    assert carried["embedded"]["light.repro"] == IMAGE_ONLY  # rebuildable from it alone

    args = ["--store", str(store), "--mirror", DEMO]
    r = rb(tmp_path, "verify", "--json", *args, str(layout))
    assert r.returncode == 0, r.stderr + r.stdout
    report = json.loads(r.stdout)
    assert report["verdict"] == "identical" and report["method"] == "reprobuild referrers"
    assert report["rebuilt_digest"] == image["digest"]

    # The oci-archive beside the layout is the image alone (for tools that take
    # one image per archive): it names its lockfile but does not carry it.
    archive = layout.with_name(layout.name + ".tar")
    r = rb(tmp_path, "verify", *args, f"oci-archive:{archive}")
    assert r.returncode == 2 and "carries no lockfile referrer" in r.stderr, r.stderr

    # Pushed with its referrers, found again by digest in the registry.
    r = rb(tmp_path, "push", str(layout), f"{registry}/light:1")
    assert r.returncode == 0, r.stderr
    pushed = f"{registry}/light@{image['digest']}"
    fallback = urllib3.PoolManager().request(
        "GET",
        f"http://{registry}/v2/light/manifests/{image['digest'].replace(':', '-')}",
        headers={"Accept": "application/vnd.oci.image.index.v1+json"},
    )
    assert fallback.status == 200
    assert len(json.loads(fallback.data)["manifests"]) == 3  # lockfile, inputs, SBOM
    r = rb(tmp_path, "verify", *args, pushed)
    assert r.returncode == 0, r.stderr + r.stdout
    assert f"found {registry}/light@sha256:" in r.stdout and r.stdout.rstrip().endswith("identical")


def test_untrusted_or_missing_referrers(light: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, store, built = light
    layout = tmp_path / "layout"
    shutil.copytree(built, layout)
    # Without its referrers the image names a lockfile it does not carry: bad input.
    bare = tmp_path / "bare"
    shutil.copytree(layout, bare)
    index = json.loads((bare / "index.json").read_bytes())
    index["manifests"] = index["manifests"][:1]
    (bare / "index.json").write_text(json.dumps(index))
    r = rb(tmp_path, "verify", "--store", str(store), "--mirror", DEMO, str(bare))
    assert r.returncode == 2, r.stderr
    assert "carries no lockfile referrer" in r.stderr
    # A lockfile referrer that is not the one the manifest names is not trusted.
    referrers = layout_referrers(layout, index["manifests"][0]["digest"])
    item = next(i for i in referrers if i["manifest"]["artifactType"] == LOCK_ARTIFACT)
    lock_blob = layout / "blobs" / "sha256" / item["manifest"]["layers"][0]["digest"][7:]
    lock = json.loads(lock_blob.read_text())
    lock["recipe"] = "0" * 64
    tampered = json.dumps(lock).encode()
    # Keep the blob's name: a reader must catch it by the lockfile's digest, not trust the file.
    lock_blob.chmod(0o644)
    lock_blob.write_bytes(tampered)
    r = rb(tmp_path, "verify", "--store", str(store), "--mirror", DEMO, str(layout))
    assert r.returncode in (1, 2), r.stderr
    assert "Traceback" not in r.stderr


def test_layers_flatten_with_whiteouts(tree_tar, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from reprobuild.verify.target import open_layout

    lower = tree_tar("lower", {"a": b"1", "d/x": b"x", "d/y": b"y", "o/old": b"o", "gone": b"g"})
    upper = tree_tar("upper", {"a": b"2", "d/y": b"y", "o/new": b"n"})
    image = write_oci_layout([lower, upper], ImageConfig(), tmp_path / "img", epoch=EPOCH)
    with open_layout("img", image.layout, None) as target:
        files = {p: m.sha256 for p, m in target.members.items() if m.type == "file"}
        assert set(files) == {"a", "d/y", "o/new"}  # d/x, o/old and gone are whited out
        assert target.read("a") == b"2"
