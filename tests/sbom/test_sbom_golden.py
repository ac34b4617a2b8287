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


def _record(store_path: Path, recipe: str, artifact: bytes, lock_text: bytes) -> None:
    from reprobuild.store import Store
    from reprobuild.store.records import BuildRecord, Output

    with Store.open_store(store_path) as store:
        out = store.put_bytes(artifact)
        other = store.put_bytes(b"recipe text")
        lock = store.put_bytes(lock_text)
        store.record_build(
            recipe,
            BuildRecord(
                recipe=recipe,
                outputs=(Output("t", out.sha256, out.size),),
                sources=(
                    Output("demo.repro", other.sha256, other.size),
                    Output("demo.repro.lock", lock.sha256, lock.size),
                ),
            ),
            timestamp=1_700_000_000,
        )


def test_an_artifact_leads_to_the_lockfile_of_its_build(tmp_path: Path) -> None:
    from reprobuild.errors import StoreError
    from reprobuild.sbom import lock_for_output

    store = tmp_path / "store"
    _record(store, "other-0123abcd", b"another artifact", b"{}")
    _record(store, "demo-89abcdef", b"the artifact", LOCK.read_bytes())
    artifact = tmp_path / "t.tar.zst"
    artifact.write_bytes(b"the artifact")
    lock, name = lock_for_output(artifact, store)
    assert lock == lf.load(LOCK)
    assert name == "demo"  # the recipe's name, without its path hash
    stranger = tmp_path / "stranger"
    stranger.write_bytes(b"built elsewhere")
    with pytest.raises(StoreError, match="no build in the store produced"):
        lock_for_output(stranger, store)
