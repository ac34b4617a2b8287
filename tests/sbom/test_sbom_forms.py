"""sbom accepts every form of an output; licenses from debian/copyright; build refs
keyed by the recipe's path; store ls shows whole outputs (issue 15)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reprobuild.licenses import parse_copyright, spdx_id
from tests.support.cli import reprobuild

ROOT = Path(__file__).resolve().parents[2]
MIRROR = f"debian=file://{ROOT}/snapshots/demo/archive/debian/"
RECIPE = (
    'let snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; '
    'suites = [ "bookworm" ]; };\n'
    '  root = rootfs { snapshot = snap; variant = "none"; packages = [ "netbase" ]; };\n'
    'in { o = oci_image { inherit root; tag = "n:1"; }; t = tarball { inherit root; }; }\n'
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("sbom-forms")
    for d in ("a", "b"):  # two recipes of the same name in different directories
        (work / d).mkdir()
        (work / d / "r.repro").write_text(RECIPE)
    store = work / "store"
    for d in ("a", "b"):
        r = reprobuild(work / d, "build", "-q", "--store", str(store), "--mirror", MIRROR, "r.repro")
        assert r.returncode == 0, r.stderr
    return work, store


def test_every_output_form_gives_the_same_sbom(built: tuple[Path, Path]) -> None:
    work, store = built
    docs = []
    for target in ("out/r/o", "out/r/o.tar", "out/r/t.tar", "r.repro.lock"):
        r = reprobuild(work / "a", "sbom", "--store", str(store), target)
        assert r.returncode == 0, (target, r.stderr)
        docs.append(json.loads(r.stdout))
    names = {d["name"] for d in docs}
    assert names == {"r"}
    netbase = [p for p in docs[0]["packages"] if p["name"] == "netbase"]
    assert netbase[0]["licenseDeclared"] == "GPL-2.0-only"
    cdx = json.loads(
        reprobuild(work / "a", "sbom", "--store", str(store), "--format", "cyclonedx", "out/r/o.tar").stdout
    )
    (comp,) = [c for c in cdx["components"] if c["name"] == "netbase"]
    assert comp["licenses"] == [{"expression": "GPL-2.0-only"}]


def test_build_refs_are_keyed_by_the_recipe_path(built: tuple[Path, Path]) -> None:
    work, store = built
    r = reprobuild(work, "store", "log", "--store", str(store))
    refs = sorted(set(re.findall(r"refs/builds/(r-[0-9a-f]{8})/1", r.stdout)))
    assert len(refs) == 2  # a/r.repro and b/r.repro: two histories, not r/1 and r/2
    r = reprobuild(work, "store", "log", "--store", str(store), "r")
    assert r.returncode == 2 and "names the builds of several recipes" in r.stderr


def test_store_ls_shows_whole_outputs(built: tuple[Path, Path]) -> None:
    work, store = built
    r = reprobuild(work, "store", "ls", "--json", "--store", str(store))
    entries = json.loads(r.stdout)
    build = next(e for e in entries if e["kind"] == "build")
    tar_size = (work / "a" / "out" / "r" / "o.tar").stat().st_size
    manifest = next(o for o in build["outputs"] if o["name"] == "o")["size"]
    assert manifest < 1000  # the digest names the manifest ...
    assert build["size"] >= tar_size  # ... the size counts the whole image


@pytest.mark.parametrize(
    ("short", "spdx"),
    [
        ("GPL-2+", "GPL-2.0-or-later"),
        ("GPL-2", "GPL-2.0-only"),
        ("LGPL-2.1+", "LGPL-2.1-or-later"),
        ("Expat", "MIT"),
        ("BSD-3-clause", "BSD-3-Clause"),
        ("SMAIL-GPL", None),
    ],
)
def test_debian_short_names_map_to_spdx(short: str, spdx: str | None) -> None:
    assert spdx_id(short) == spdx


def test_only_machine_readable_copyright_files_count() -> None:
    dep5 = (
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: someone\nLicense: GPL-2+ or Artistic\n\n"
        "Files: lib/*\nLicense: Expat\n text\n"
    )
    lic = parse_copyright(dep5)
    assert lic is not None and lic.spdx == "(GPL-2.0-or-later OR Artistic-1.0-Perl) AND MIT"
    assert parse_copyright("This is free software under the GPL.\n") is None
