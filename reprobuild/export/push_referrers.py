"""``reprobuild push``: after the image, the artifacts that describe it.

skopeo has pushed the image (digest preserved). Each referrer in the layout
(see :mod:`reprobuild.export.referrers`) is pushed by digest, its blobs
first; then, unless the registry lists referrers itself (the OCI 1.1
referrers API), the fallback index tagged ``sha256-HEX`` is updated: the
descriptors already there are kept and ours added, so pushing twice or
beside another tool's referrers loses nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reprobuild.export.oci import MANIFEST_MEDIA_TYPE
from reprobuild.export.referrers import layout_referrers, referrers_index
from reprobuild.export.registry import RegistryError
from reprobuild.export.registry_api import INDEX, Registry, fallback_tag, split_reference

__all__ = ["push_referrers"]


def push_referrers(layout: Path, reference: str, digest: str, *, tls_verify: bool = True) -> int:
    """Push the layout's referrers of *digest* to *reference*'s repository; return how many."""
    found = layout_referrers(layout, digest)
    if not found:
        return 0
    host, repository, _ = split_reference(reference)
    registry = Registry(host, repository, tls_verify=tls_verify)
    descriptors: list[dict[str, Any]] = []
    for item in found:
        manifest = item["manifest"]
        for blob in [manifest["config"], *manifest.get("layers", [])]:
            path = layout / "blobs" / "sha256" / str(blob["digest"]).removeprefix("sha256:")
            registry.put_blob(path.read_bytes())
        pushed = registry.put_manifest(item["digest"], item["bytes"], MANIFEST_MEDIA_TYPE)
        if pushed != item["digest"]:
            raise RegistryError(f"{reference}: the registry took {item['digest']} as {pushed}")
        descriptor = {
            "mediaType": MANIFEST_MEDIA_TYPE,
            "digest": item["digest"],
            "size": len(item["bytes"]),
        }
        if manifest.get("artifactType"):
            descriptor["artifactType"] = manifest["artifactType"]
        if manifest.get("annotations"):
            descriptor["annotations"] = manifest["annotations"]
        descriptors.append(descriptor)
    listed = {str(d.get("digest")) for d in registry.referrers(digest)}
    if all(d["digest"] in listed for d in descriptors):
        return len(descriptors)  # the registry's referrers API lists them already
    tag = fallback_tag(digest)
    existing = registry.manifest(tag)
    kept = []
    if existing is not None:
        kept = [
            d
            for d in json.loads(existing[0]).get("manifests", [])
            if d.get("digest") not in {x["digest"] for x in descriptors}
        ]
    registry.put_manifest(tag, referrers_index(kept + descriptors), INDEX)
    return len(descriptors)
