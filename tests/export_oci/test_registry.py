"""Pushing to a real docker-registry keeps the digest users pin."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import urllib3

from reprobuild.export.oci import ImageConfig, write_image_index, write_oci_layout
from reprobuild.export.registry import RegistryError, push_layout, registry_host

from .conftest import EPOCH, Spec, need

TreeTar = Callable[[str, Spec], Path]

TREE: Spec = {"etc/hostname": b"demo\n", "bin/tool": b"#!/bin/sh\n", "tool": "->bin/tool"}


def _get(url: str, accept: str) -> urllib3.BaseHTTPResponse:
    return urllib3.PoolManager().request("GET", url, headers={"Accept": accept}, timeout=10)


def test_push_keeps_the_manifest_bytes(registry: str, tree_tar: TreeTar, tmp_path: Path) -> None:
    need("skopeo")
    lower = tree_tar("lower", TREE)
    upper = tree_tar("upper", {**TREE, "etc/motd": b"hi\n"})
    for compression in ("gzip", "zstd"):
        image = write_oci_layout(
            [lower, upper],
            ImageConfig(cmd=["/bin/tool"], tag="v1"),
            tmp_path / compression,
            compression=compression,  # type: ignore[arg-type]
            epoch=EPOCH,
        )
        digest = push_layout(image.layout, f"{registry}/demo/app:{compression}", tls_verify=False)
        assert digest == image.manifest_digest
        ours = (image.layout / "blobs/sha256" / digest.removeprefix("sha256:")).read_bytes()
        # Plain HTTP, by digest and by tag: the registry serves our bytes.
        media = "application/vnd.oci.image.manifest.v1+json"
        for ref in (digest, compression):
            response = _get(f"http://{registry}/v2/demo/app/manifests/{ref}", media)
            assert response.status == 200
            assert response.data == ours
            assert response.headers["Docker-Content-Digest"] == digest
        for layer in image.layer_digests:
            response = _get(f"http://{registry}/v2/demo/app/blobs/{layer}", "*/*")
            assert response.status == 200
            assert response.data == (image.layout / "blobs/sha256" / layer[7:]).read_bytes()


def test_push_multi_arch_index(registry: str, tree_tar: TreeTar, tmp_path: Path) -> None:
    need("skopeo")
    tar = tree_tar("t", TREE)
    images = [
        write_oci_layout([tar], ImageConfig(architecture=a, variant=v), tmp_path / a, epoch=EPOCH)
        for a, v in (("amd64", None), ("arm64", "v8"))
    ]
    index = write_image_index(images, tmp_path / "multi", tag="multi", epoch=EPOCH)
    digest = push_layout(index.layout, f"{registry}/demo/multi:latest", tls_verify=False)
    assert digest == index.digest
    media = "application/vnd.oci.image.index.v1+json"
    served = _get(f"http://{registry}/v2/demo/multi/manifests/latest", media)
    assert served.data == (index.layout / "blobs/sha256" / digest[7:]).read_bytes()
    for manifest in json.loads(served.data)["manifests"]:
        one = _get(
            f"http://{registry}/v2/demo/multi/manifests/{manifest['digest']}",
            manifest["mediaType"],
        )
        assert one.status == 200


def test_push_selects_by_ref_and_refuses_ambiguity(
    registry: str, tree_tar: TreeTar, tmp_path: Path
) -> None:
    need("skopeo")
    image = write_oci_layout(
        [tree_tar("t", TREE)], ImageConfig(tag="v1"), tmp_path / "o", epoch=EPOCH
    )
    assert push_layout(image.layout, f"{registry}/x:1", source_ref="v1") == image.manifest_digest
    with pytest.raises(RegistryError, match="no single image tagged"):
        push_layout(image.layout, f"{registry}/x:2", source_ref="v2")


def test_bad_reference_and_missing_skopeo(
    tree_tar: TreeTar, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(RegistryError, match="does not name a registry"):
        registry_host("app:1")
    assert registry_host("localhost/app:1") == "localhost"
    assert registry_host("registry.example.org:5000/a/b:c") == "registry.example.org:5000"
    image = write_oci_layout([tree_tar("t", TREE)], ImageConfig(), tmp_path / "o", epoch=EPOCH)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    with pytest.raises(RegistryError) as caught:
        push_layout(image.layout, "127.0.0.1:9/x:1")
    assert "skopeo" in caught.value.message and "apt-get install skopeo" in (
        caught.value.hint or ""
    )


def test_push_to_a_dead_registry_says_so(tree_tar: TreeTar, tmp_path: Path) -> None:
    need("skopeo")
    image = write_oci_layout([tree_tar("t", TREE)], ImageConfig(), tmp_path / "o", epoch=EPOCH)
    with pytest.raises(RegistryError, match="pushing"):
        push_layout(image.layout, "127.0.0.1:9/x:1")
