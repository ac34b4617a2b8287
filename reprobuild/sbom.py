"""SBOMs from a lockfile: SPDX 2.3 JSON and CycloneDX 1.5 JSON.

Everything comes from the lockfile, so an SBOM is as reproducible as the
lockfile itself: the creation time is the snapshot epoch, identifiers are
derived from the lockfile's hash (UUIDv5, document namespace), and lists are
sorted. Every locked package appears with its version, architecture, sha256,
canonical download location and purl; every recorded output with its digest.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from reprobuild import __version__
from reprobuild.archives import for_snapshot
from reprobuild.buildgraph import snapshot_epoch
from reprobuild.canonical import canonical_json
from reprobuild.licenses import PackageLicense
from reprobuild.lockfile import LockedPackage, Lockfile, SnapshotLock

Format = Literal["spdx", "cyclonedx"]


def purl(pkg: LockedPackage, snap: SnapshotLock) -> str:
    """Package URLs as the purl spec defines them for the package's format."""
    return for_snapshot(snap).purl(pkg, snap)


def _created(lock: Lockfile) -> str:
    return datetime.fromtimestamp(snapshot_epoch(lock), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _doc_id(lock: Lockfile) -> str:
    return hashlib.sha256(lock.dumps().encode()).hexdigest()


def _spdx_id(kind: str, *parts: str) -> str:
    return f"SPDXRef-{kind}-" + re.sub(r"[^A-Za-z0-9.-]", "-", "-".join(parts))


def sbom(
    lock: Lockfile,
    name: str,
    fmt: Format,
    licenses: Mapping[str, PackageLicense] | None = None,
) -> dict[str, Any]:
    """``licenses`` (package ident -> its DEP-5 licenses, see :func:`licenses_in_store`)
    fill SPDX's licenseDeclared and CycloneDX's licenses; others are NOASSERTION."""
    snaps = {s.name: s for s in lock.snapshots}
    if fmt == "spdx":
        return _spdx(lock, name, snaps, licenses or {})
    return _cyclonedx(lock, name, snaps, licenses or {})


def licenses_in_store(lock: Lockfile, store_path: Path | None) -> dict[str, PackageLicense]:
    """The licenses of the locked Debian packages the store holds (read from
    each package's copyright file; a package not in the store has none here)."""
    from reprobuild.errors import StoreError
    from reprobuild.store import Store

    snaps = {s.name: s for s in lock.snapshots}
    out: dict[str, PackageLicense] = {}
    try:
        store = Store.open_store(store_path, create=False)
    except StoreError:
        return out
    with store:
        for pkg in lock.packages:
            if not store.has(pkg.sha256):
                continue
            found = for_snapshot(snaps[pkg.snapshot]).licenses(store.path_of(pkg.sha256), pkg.name)
            if found is not None:
                out[pkg.ident] = found
    return out


def _spdx(
    lock: Lockfile,
    name: str,
    snaps: dict[str, SnapshotLock],
    licenses: Mapping[str, PackageLicense],
) -> dict[str, Any]:
    packages: list[dict[str, Any]] = []
    relationships: list[dict[str, str]] = []
    outputs = []
    for out_name, info in sorted(lock.outputs.items()):
        sid = _spdx_id("Output", out_name)
        outputs.append(sid)
        packages.append(
            {
                "SPDXID": sid,
                "name": out_name,
                "versionInfo": str(info["sha256"]),
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": False,
                "checksums": [{"algorithm": "SHA256", "checksumValue": str(info["sha256"])}],
                "primaryPackagePurpose": "CONTAINER"
                if "oci" in str(info.get("media_type"))
                else "FILE",
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": "NOASSERTION",
                "copyrightText": "NOASSERTION",
                "supplier": "NOASSERTION",
            }
        )
        relationships.append(
            {
                "spdxElementId": "SPDXRef-DOCUMENT",
                "relationshipType": "DESCRIBES",
                "relatedSpdxElement": sid,
            }
        )
    for pkg in sorted(lock.packages):
        snap = snaps[pkg.snapshot]
        sid = _spdx_id("Package", pkg.name, pkg.version, pkg.architecture)
        packages.append(
            {
                "SPDXID": sid,
                "name": pkg.name,
                "versionInfo": pkg.version,
                "downloadLocation": snap.url + pkg.filename,
                "filesAnalyzed": False,
                "checksums": [{"algorithm": "SHA256", "checksumValue": pkg.sha256}],
                "externalRefs": [
                    {
                        "referenceCategory": "PACKAGE-MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": purl(pkg, snap),
                    }
                ],
                "comment": f"architecture {pkg.architecture}, {pkg.size} bytes, "
                f"from snapshot {snap.archive}@{snap.timestamp}"
                + (
                    f"; debian/copyright names {', '.join(lic.names)}"
                    if (lic := licenses.get(pkg.ident)) is not None
                    else ""
                ),
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": (lic.spdx if lic is not None and lic.spdx else "NOASSERTION"),
                "copyrightText": "NOASSERTION",
                "supplier": "NOASSERTION",
            }
        )
        for out in outputs or ["SPDXRef-DOCUMENT"]:
            relationships.append(
                {
                    "spdxElementId": out,
                    "relationshipType": "CONTAINS" if out != "SPDXRef-DOCUMENT" else "DESCRIBES",
                    "relatedSpdxElement": sid,
                }
            )
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": f"https://reprobuild.invalid/spdx/{name}/{_doc_id(lock)}",
        "creationInfo": {
            "created": _created(lock),
            "creators": [f"Tool: reprobuild-{__version__}"],
        },
        "packages": packages,
        "relationships": relationships,
    }


def _cyclonedx(
    lock: Lockfile,
    name: str,
    snaps: dict[str, SnapshotLock],
    licenses: Mapping[str, PackageLicense],
) -> dict[str, Any]:
    components: list[dict[str, Any]] = []
    refs = []
    for pkg in sorted(lock.packages):
        snap = snaps[pkg.snapshot]
        ref = purl(pkg, snap)
        refs.append(ref)
        component: dict[str, Any] = {}
        lic = licenses.get(pkg.ident)
        if lic is not None:
            component["licenses"] = (
                [{"expression": lic.spdx}]
                if lic.spdx
                else [{"license": {"name": n}} for n in lic.names]
            )
        components.append(
            {
                **component,
                "type": "library",
                "bom-ref": ref,
                "name": pkg.name,
                "version": pkg.version,
                "purl": ref,
                "hashes": [{"alg": "SHA-256", "content": pkg.sha256}],
                "externalReferences": [{"type": "distribution", "url": snap.url + pkg.filename}],
                "properties": [
                    {"name": "reprobuild:architecture", "value": pkg.architecture},
                    {"name": "reprobuild:size", "value": str(pkg.size)},
                    {"name": "reprobuild:snapshot", "value": f"{snap.archive}@{snap.timestamp}"},
                ],
            }
        )
    for out_name, info in sorted(lock.outputs.items()):
        media = str(info.get("media_type", ""))
        components.append(
            {
                "type": "container" if "oci" in media else "file",
                "bom-ref": f"output:{out_name}",
                "name": out_name,
                "version": f"sha256:{info['sha256']}",
                "hashes": [{"alg": "SHA-256", "content": str(info["sha256"])}],
            }
        )
    serial = uuid.uuid5(uuid.NAMESPACE_URL, f"https://reprobuild.invalid/{name}/{_doc_id(lock)}")
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{serial}",
        "version": 1,
        "metadata": {
            "timestamp": _created(lock),
            "tools": {
                "components": [
                    {"type": "application", "name": "reprobuild", "version": __version__}
                ]
            },
            "component": {
                "type": "application",
                "bom-ref": f"recipe:{name}",
                "name": name,
                "hashes": [{"alg": "SHA-256", "content": lock.recipe}],
            },
        },
        "components": components,
        "dependencies": [{"ref": f"recipe:{name}", "dependsOn": sorted(refs)}],
    }


def lock_for_output(artifact: Path, store_path: Path | None) -> tuple[Lockfile, str]:
    """The lockfile of the build that produced an artifact (found in the store by
    the artifact's digest: a file's sha256, or an OCI layout's manifest digest)."""
    from reprobuild import lockfile as lf
    from reprobuild.errors import StoreError
    from reprobuild.fetch import sha256_file
    from reprobuild.store import Store

    digest = _oci_manifest_digest(artifact) or sha256_file(artifact)[0]
    with Store.open_store(store_path, create=False) as store:
        for info in store.list_builds():
            if any(o.sha256 == digest for o in info.record.outputs):
                for src in info.record.sources:
                    if src.name.endswith(".lock"):
                        data = json.loads(store.read_bytes(src.sha256))
                        # the document is named after the recipe, not its ref's path hash
                        name = re.sub(r"-[0-9a-f]{8}$", "", info.record.recipe)
                        return lf.Lockfile.from_json(data), name
    raise StoreError(
        f"no build in the store produced {artifact} (sha256 {digest})",
        hint="pass the lockfile instead, or the store the build used (--store)",
    )


def _oci_manifest_digest(artifact: Path) -> str | None:
    """An OCI image's identity (its manifest digest), from its layout directory
    (``out/NAME/``) or its archive (``out/NAME.tar``); None for other artifacts."""
    import tarfile

    index: Any = None
    if artifact.is_dir():
        if (artifact / "index.json").is_file():
            index = json.loads((artifact / "index.json").read_text())
    elif artifact.is_file() and tarfile.is_tarfile(artifact):
        try:
            with tarfile.open(artifact) as t:
                member = t.extractfile("index.json")
                if member is not None:
                    index = json.loads(member.read())
        except (KeyError, tarfile.TarError, ValueError):
            return None
    if not isinstance(index, dict) or not index.get("manifests"):
        return None
    return str(index["manifests"][0]["digest"]).removeprefix("sha256:")


def dumps(data: dict[str, Any]) -> str:
    return canonical_json(data, document=True)
