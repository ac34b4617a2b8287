"""Provenance statements: identical across organizations, verified against artifacts."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import reprobuild as rb
from tests.support.recipes import LIGHT_DEMO

ROOT = Path(__file__).resolve().parents[2]
MIRROR = "debian=" + (ROOT / "snapshots" / "demo" / "archive" / "debian").as_uri() + "/"


def org(tmp: Path, name: str) -> Path:
    work = tmp / name
    work.mkdir()
    (work / "demo.repro").write_text(LIGHT_DEMO)
    r = rb(
        work,
        "build",
        "--attest",
        "-q",
        "--store",
        str(work / "store"),
        "--mirror",
        MIRROR,
        "demo.repro",
    )
    assert r.returncode == 0, r.stderr
    return work


def test_statements_match_and_verify(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    a, b = org(tmp_path, "org-a"), org(tmp_path / "elsewhere", "org-b")
    for name in ("oci", "tarball", "iso"):
        sa = (a / "out/demo" / f"{name}.intoto.json").read_text()
        assert sa == (b / "out/demo" / f"{name}.intoto.json").read_text()
        statement = json.loads(sa)
        assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
        deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
        assert any(d["uri"].endswith("dists/bookworm/InRelease") for d in deps)
    ok = rb(
        a,
        "verify-attestation",
        "--store",
        str(a / "store"),  # holds the signed index the build checked
        "--lockfile",
        "demo.repro.lock",
        str(b / "out/demo/oci.intoto.json"),
        "out/demo/oci",
    )
    assert ok.returncode == 0, ok.stderr
    wrong = rb(
        a, "verify-attestation", str(b / "out/demo/oci.intoto.json"), "out/demo/tarball.tar.zst"
    )
    assert wrong.returncode == 1 and "is not the subject" in wrong.stderr


def test_push_requires_a_matching_attestation(tmp_path: Path) -> None:
    a = org(tmp_path, "org-a")
    r = rb(a, "push", "--require-reproduced", "out/demo/oci", "127.0.0.1:9/demo:1")
    assert r.returncode == 1 and "no attestation" in r.stderr
    r = rb(
        a,
        "push",
        "--require-reproduced",
        "--attestation",
        "out/demo/tarball.intoto.json",
        "out/demo/oci",
        "127.0.0.1:9/demo:1",
    )
    assert r.returncode == 1 and "is not the subject" in r.stderr
