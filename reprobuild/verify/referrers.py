"""Finding what a reprobuild image says about itself: its annotations and referrers.

An image reprobuild built names its lockfile in its manifest annotations
(:mod:`reprobuild.export.referrers`); the lockfile itself is a referrer of
the manifest, in the OCI layout (``index.json``) or in the registry the
image came from (referrers API, else the ``sha256-HEX`` fallback tag). The
lockfile found must be the one the annotation names: a referrer anyone
could have pushed is not trusted otherwise. The files the recipe's steps take
by path come as another referrer naming the same lockfile digest; their
bytes need no more trust than that: they are in the step keys, so other
bytes give another image.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from reprobuild.errors import CheckFailed, LockfileError, UsageError
from reprobuild.export.referrers import (
    ANNOTATION_LOCK,
    ANNOTATION_OUTPUT,
    INPUTS_ARTIFACT,
    LOCK_ARTIFACT,
    layout_referrers,
    lock_digest,
)
from reprobuild.lockfile import Lockfile
from reprobuild.verify.target import Target

__all__ = ["Description", "find_description"]


@dataclass(frozen=True)
class Description:
    """The lockfile an image names, and which output of its recipe the image is."""

    lockfile: Lockfile
    lock_digest: str
    output: str
    source: str  # where the lockfile was found
    inputs: bytes | None = None  # the recipe's file inputs (a tar), when it has any


def _content(
    manifest: dict[str, object], read_blob: Callable[[str], bytes], artifact: str
) -> bytes | None:
    """The one layer of an *artifact* manifest, its bytes checked against its digest."""
    if manifest.get("artifactType") != artifact:
        return None
    layers = manifest.get("layers") or []
    if not isinstance(layers, list):
        return None
    for layer in layers:
        if isinstance(layer, dict) and layer.get("mediaType") == artifact:
            digest = str(layer.get("digest", ""))
            data = read_blob(digest)
            if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
                return None
            return data
    return None


def _lock_from_manifest(
    manifest: dict[str, object], read_blob: Callable[[str], bytes]
) -> bytes | None:
    return _content(manifest, read_blob, LOCK_ARTIFACT)


def _inputs_from_manifest(
    manifest: dict[str, object], read_blob: Callable[[str], bytes], wanted: str
) -> bytes | None:
    annotations = manifest.get("annotations")
    if not isinstance(annotations, dict) or annotations.get(ANNOTATION_LOCK) != wanted:
        return None
    return _content(manifest, read_blob, INPUTS_ARTIFACT)


def find_description(target: Target, *, tls_verify: bool = True) -> Description | None:
    """The image's own description, or None if it does not name a lockfile."""
    annotations = target.annotations
    wanted = annotations.get(ANNOTATION_LOCK)
    if not wanted:
        return None
    output = annotations.get(ANNOTATION_OUTPUT, "")
    candidates: list[tuple[bytes, str]] = []
    inputs: list[bytes] = []
    if target.layout is not None:
        layout = target.layout

        def layout_blob(digest: str) -> bytes:
            return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()

        for item in layout_referrers(layout, target.digest):
            data = _lock_from_manifest(item["manifest"], layout_blob)
            if data is not None:
                candidates.append((data, f"the layout's referrer {item['digest']}"))
            carried = _inputs_from_manifest(item["manifest"], layout_blob, wanted)
            if carried is not None:
                inputs.append(carried)
    if not candidates and target.remote:
        from reprobuild.export.registry_api import Registry, split_reference

        host, repository, _ = split_reference(target.spec)
        registry = Registry(host, repository, tls_verify=tls_verify)
        for desc in registry.referrers(target.digest):
            if desc.get("artifactType") not in (None, LOCK_ARTIFACT, INPUTS_ARTIFACT):
                continue
            found = registry.manifest(str(desc["digest"]))
            if found is None:
                continue
            manifest = json.loads(found[0])
            data = _lock_from_manifest(manifest, registry.blob)
            if data is not None:
                candidates.append((data, f"{host}/{repository}@{desc['digest']}"))
            carried = _inputs_from_manifest(manifest, registry.blob, wanted)
            if carried is not None:
                inputs.append(carried)
    if not candidates:
        raise UsageError(
            f"{target.spec}: the image names lockfile {wanted[:12]}... but carries no lockfile "
            "referrer",
            hint="push with 'reprobuild push' (it pushes the referrers) or verify the OCI layout "
            "reprobuild build wrote",
        )
    for data, source in candidates:
        try:
            lock = Lockfile.from_json(json.loads(data.decode("utf-8")), what=source)
        except (UnicodeDecodeError, ValueError, LockfileError):
            continue
        if lock_digest(lock) == wanted:
            return Description(lock, wanted, output, source, inputs[0] if inputs else None)
    raise CheckFailed(
        f"{target.spec}: no lockfile among its referrers is the one the image names "
        f"({wanted}); its description cannot be trusted"
    )
