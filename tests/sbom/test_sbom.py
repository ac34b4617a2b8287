"""SBOMs validated by the reference libraries: spdx-tools and cyclonedx-python-lib."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from reprobuild import lockfile as lf
from reprobuild.sbom import sbom
from tests.support.cli import reprobuild

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "recipes" / "demo.repro.lock"


def rb(*args: str) -> subprocess.CompletedProcess[str]:
    return reprobuild(ROOT, *args)


def test_spdx_validates(tmp_path: Path) -> None:
    spdx = pytest.importorskip("spdx_tools.spdx.parser.parse_anything")
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    out = tmp_path / "demo.spdx.json"
    r = rb("sbom", "--format", "spdx", "-o", str(out), str(LOCK))
    assert r.returncode == 0, r.stderr
    document = spdx.parse_file(str(out))
    assert validate_full_spdx_document(document) == []
    data = json.loads(out.read_text())
    names = {p["name"] for p in data["packages"]}
    assert {"busybox-static", "libc6", "tzdata", "oci", "tarball", "iso"} <= names
    libc = next(p for p in data["packages"] if p["name"] == "libc6")
    assert libc["downloadLocation"].startswith(
        "https://snapshot.debian.org/archive/debian/20260711T101637Z/pool/"
    )
    assert (
        libc["externalRefs"][0]["referenceLocator"]
        == "pkg:deb/debian/libc6@2.36-9%2Bdeb12u14?arch=amd64&distro=bookworm"
    )


def test_cyclonedx_validates() -> None:
    pytest.importorskip("cyclonedx")
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    r = rb("sbom", "--format", "cyclonedx", str(LOCK))
    assert r.returncode == 0, r.stderr
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(r.stdout) is None
    data = json.loads(r.stdout)
    purls = {c.get("purl") for c in data["components"]}
    assert (
        "pkg:deb/debian/busybox-static@1%3A1.35.0-4%2Bdeb12u1%2Bb1?arch=amd64&distro=bookworm"
        in purls
    )


def test_sbom_is_reproducible() -> None:
    lock = lf.load(LOCK)
    for fmt in ("spdx", "cyclonedx"):
        assert sbom(lock, "demo", fmt) == sbom(lock, "demo", fmt)  # type: ignore[arg-type]
    assert rb("sbom", str(LOCK)).stdout == rb("sbom", str(LOCK)).stdout
