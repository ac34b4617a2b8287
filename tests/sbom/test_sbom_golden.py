"""The SBOM of a demo lockfile, field for field.

The validators of test_sbom.py accept any well-formed document; these tests
pin what the document says: every package's purl, download location, hashes,
licenses, the outputs, the creation time taken from the snapshot and the
identifiers derived from the lockfile. The lockfile is a copy of
``recipes/demo.repro.lock`` as it was (so that recording new output digests
there does not touch these). The expected documents
(``golden/demo.*.json``) were checked by spdx-tools and cyclonedx-python-lib
when written; rewrite them on purpose with
``python -m tests.sbom.test_sbom_golden`` and say why in the commit.
"""

from __future__ import annotations

import dataclasses
import json
import tarfile
from pathlib import Path

import pytest

from reprobuild import lockfile as lf
from reprobuild.licenses import PackageLicense
from reprobuild.sbom import _oci_manifest_digest, dumps, purl, sbom

GOLDEN = Path(__file__).parent / "golden"
LOCK = GOLDEN / "demo.repro.lock"
# One package whose copyright names map to SPDX, one whose names do not.
LICENSES = {
    "libc6": PackageLicense(("GPL-2", "LGPL-2.1+"), "GPL-2.0-only AND LGPL-2.1-or-later"),
    "tzdata": PackageLicense(("public-domain", "odd-one"), None),
}


def _documents() -> dict[str, str]:
    lock = lf.load(LOCK)
    licenses = {p.ident: LICENSES[p.name] for p in lock.packages if p.name in LICENSES}
    assert len(licenses) == len(LICENSES)
    return {
        f"demo.{fmt}.json": dumps(sbom(lock, "demo", fmt, licenses))  # type: ignore[arg-type]
        for fmt in ("spdx", "cyclonedx")
    }


@pytest.mark.parametrize("name", ["demo.spdx.json", "demo.cyclonedx.json"])
def test_sbom_of_the_demo_lockfile_is_the_recorded_one(name: str) -> None:
    assert _documents()[name] == (GOLDEN / name).read_text()


def test_purls_of_arch_and_ubuntu_packages() -> None:
    lock = lf.load(LOCK)
    pkg = next(p for p in lock.packages if p.name == "libc6")
    snap = next(s for s in lock.snapshots if s.name == pkg.snapshot)
    arch = dataclasses.replace(snap, format="alpm", archive="archlinux")
    assert purl(pkg, arch) == f"pkg:alpm/arch/libc6@2.36-9%2Bdeb12u14?arch={pkg.architecture}"
    ubuntu = dataclasses.replace(snap, archive="ubuntu")
    assert purl(pkg, ubuntu).startswith("pkg:deb/ubuntu/libc6@2.36-9%2Bdeb12u14?arch=")
    assert purl(pkg, dataclasses.replace(snap, suites=())).endswith("&distro=debian")


def test_an_oci_artifact_is_known_by_its_manifest_digest(tmp_path: Path) -> None:
    index = {"schemaVersion": 2, "manifests": [{"digest": "sha256:" + "ab" * 32}]}
    layout = tmp_path / "layout"
    layout.mkdir()
    (layout / "index.json").write_text(json.dumps(index))
    assert _oci_manifest_digest(layout) == "ab" * 32
    archive = tmp_path / "image.tar"
    with tarfile.open(archive, "w") as t:
        t.add(layout / "index.json", arcname="index.json")
    assert _oci_manifest_digest(archive) == "ab" * 32
    # not an image: a plain tarball, a file, a layout without manifests
    plain = tmp_path / "plain.tar"
    with tarfile.open(plain, "w") as t:
        t.add(layout / "index.json", arcname="other.json")
    assert _oci_manifest_digest(plain) is None
    (tmp_path / "file").write_bytes(b"bytes")
    assert _oci_manifest_digest(tmp_path / "file") is None
    (layout / "index.json").write_text(json.dumps({"manifests": []}))
    assert _oci_manifest_digest(layout) is None


if __name__ == "__main__":
    GOLDEN.mkdir(exist_ok=True)
    for file, text in _documents().items():
        (GOLDEN / file).write_text(text)
