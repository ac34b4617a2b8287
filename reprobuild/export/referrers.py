"""Images that describe themselves: annotations and OCI referrers.

Every OCI image reprobuild builds says in its manifest annotations what made it:

* ``org.reprobuild.lockfile.sha256``: :func:`lock_digest` of the lockfile,
  the sha256 of its canonical text without recorded outputs or embedded
  recipe (what the build was made from; a lockfile that records the
  image's own digest cannot be named inside that image);
* ``org.reprobuild.output``: the recipe output's name;
* ``org.reprobuild.version``: reprobuild's version;
* ``org.opencontainers.image.created``: the epoch (RFC 3339).

Annotations live in the manifest only: layers and their digests do not change.

The exported layout (``out/NAME/``) also holds, as OCI 1.1 artifacts whose
``subject`` is the image manifest (its *referrers*), the lockfile with the
recipe files embedded (``artifactType``
``application/vnd.reprobuild.lockfile.v1+json``: enough to rebuild the
image anywhere), the files and directories its steps take by path when it
has any (``application/vnd.reprobuild.inputs.v1.tar``, see
:mod:`reprobuild.export.inputs`; annotated with the lockfile's digest) and
an SPDX SBOM (``application/spdx+json``). They are
listed in the layout's ``index.json`` after the image, and ``reprobuild
push`` pushes them too: through the registry's referrers API where it has
one, else the OCI 1.1 fallback, an image index tagged ``sha256-HEX`` (the
subject's digest) listing them, which is what ``verify`` looks up.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from reprobuild.canonical import canonical_bytes
from reprobuild.export.oci import INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, rfc3339
from reprobuild.lockfile import Lockfile

__all__ = [
    "ANNOTATION_LOCK",
    "ANNOTATION_OUTPUT",
    "ANNOTATION_VERSION",
    "INPUTS_ARTIFACT",
    "LOCK_ARTIFACT",
    "SBOM_ARTIFACT",
    "attach_referrers",
    "image_annotations",
    "layout_referrers",
    "lock_digest",
]

ANNOTATION_LOCK: Final = "org.reprobuild.lockfile.sha256"
ANNOTATION_OUTPUT: Final = "org.reprobuild.output"
ANNOTATION_VERSION: Final = "org.reprobuild.version"
CREATED: Final = "org.opencontainers.image.created"
TITLE: Final = "org.opencontainers.image.title"
LOCK_ARTIFACT: Final = "application/vnd.reprobuild.lockfile.v1+json"
SBOM_ARTIFACT: Final = "application/spdx+json"
INPUTS_ARTIFACT: Final = "application/vnd.reprobuild.inputs.v1.tar"
EMPTY_MEDIA_TYPE: Final = "application/vnd.oci.empty.v1+json"
EMPTY: Final = b"{}"


def lock_digest(lock: Lockfile) -> str:
    """sha256 of the lockfile without recorded outputs and embedded recipe files."""
    return hashlib.sha256(replace(lock, outputs={}, embedded={}).dumps().encode()).hexdigest()


def image_annotations(lock: Lockfile, output: str, epoch: int) -> dict[str, str]:
    from reprobuild import __version__

    return {
        ANNOTATION_LOCK: lock_digest(lock),
        ANNOTATION_OUTPUT: output,
        ANNOTATION_VERSION: __version__,
        CREATED: rfc3339(epoch),
    }


def _put(layout: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest
    if not path.exists():
        tmp = path.with_name(path.name + ".partial")
        tmp.write_bytes(data)
        tmp.replace(path)
    return "sha256:" + digest, len(data)


def artifact_manifest(
    artifact_type: str,
    content: tuple[str, int],
    title: str,
    subject: Mapping[str, Any],
    empty: tuple[str, int],
    epoch: int,
    annotations: Mapping[str, str] | None = None,
) -> bytes:
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": artifact_type,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": empty[0], "size": empty[1]},
        "layers": [
            {
                "mediaType": artifact_type,
                "digest": content[0],
                "size": content[1],
                "annotations": {TITLE: title},
            }
        ],
        "subject": dict(subject),
        "annotations": {CREATED: rfc3339(epoch), **(annotations or {})},
    }
    return canonical_bytes(manifest)


def attach_referrers(
    layout: Path,
    lockfile: Lockfile,
    lock_name: str,
    sbom: bytes,
    epoch: int,
    inputs: bytes | None = None,
) -> list[str]:
    """Add the lockfile, inputs and SBOM artifacts about the layout's image; return
    their digests.

    *lockfile* should embed the recipe files and *inputs* hold the files its
    steps take by path (so the image can be rebuilt from them alone). Adding
    them again replaces the earlier ones.
    """
    index_path = layout / "index.json"
    index = json.loads(index_path.read_bytes())
    manifests = [m for m in index.get("manifests", []) if "artifactType" not in m]
    if len(manifests) != 1:
        raise ValueError(f"{layout}: expected one image in index.json, found {len(manifests)}")
    image = manifests[0]
    subject = {k: image[k] for k in ("mediaType", "digest", "size")}
    empty = _put(layout, EMPTY)
    added = []
    stem = lock_name.removesuffix(".lock")
    artifacts: list[tuple[str, bytes, str, dict[str, str]]] = [
        (LOCK_ARTIFACT, lockfile.dumps().encode(), lock_name, {}),
        (SBOM_ARTIFACT, sbom, stem + ".spdx.json", {}),
    ]
    if inputs is not None:
        named = {ANNOTATION_LOCK: lock_digest(lockfile)}
        artifacts.insert(1, (INPUTS_ARTIFACT, inputs, stem + ".inputs.tar", named))
    for artifact_type, data, title, extra in artifacts:
        content = _put(layout, data)
        body = artifact_manifest(artifact_type, content, title, subject, empty, epoch, extra)
        digest, size = _put(layout, body)
        manifests.append(
            {
                "mediaType": MANIFEST_MEDIA_TYPE,
                "digest": digest,
                "size": size,
                "artifactType": artifact_type,
            }
        )
        added.append(digest)
    index["manifests"] = manifests
    tmp = index_path.with_name("index.json.partial")
    tmp.write_bytes(canonical_bytes(index))
    tmp.replace(index_path)
    return added


def layout_referrers(layout: Path, subject_digest: str) -> list[dict[str, Any]]:
    """The artifact manifests in a layout whose subject is *subject_digest*."""
    try:
        index = json.loads((layout / "index.json").read_bytes())
    except (OSError, ValueError):
        return []
    out = []
    for desc in index.get("manifests", []):
        if not isinstance(desc, dict) or desc.get("mediaType") != MANIFEST_MEDIA_TYPE:
            continue
        digest = str(desc.get("digest", ""))
        path = layout / "blobs" / "sha256" / digest.removeprefix("sha256:")
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            continue
        manifest = json.loads(data)
        if (manifest.get("subject") or {}).get("digest") == subject_digest:
            out.append({"digest": digest, "manifest": manifest, "bytes": data})
    return out


def referrers_index(descriptors: list[dict[str, Any]]) -> bytes:
    """The OCI 1.1 fallback index (tag ``sha256-HEX``) listing referrers."""
    return canonical_bytes(
        {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": descriptors}
    )
