"""Ubuntu, the subclass of Debian (docs/adding-a-distribution.md), on a real signed archive.

A synthetic Ubuntu archive (a package made with dpkg-deb, indexed as suite
``noble``, its Release signed with a throwaway key) is locked and built with
the shipped ``ubuntu`` definition pointed at it; what makes it Ubuntu and not
Debian is checked where a user sees it: the SBOM's package URLs, and the
refusal of an architecture Ubuntu keeps in its other archive.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reprobuild.archives import for_snapshot, load_archive
from reprobuild.archives.formats import for_archive, package_format
from tests.support.cli import reprobuild as rb
from tests.support.crafted import MirrorUnavailable, deb_from_tree, signed_mirror

RECIPE = """\
let
  snap = snapshot {{ archive = "{archive}"; date = "2026-07-11T10:16:37Z"; suites = [ "noble" ];
                    arch = "{arch}"; }};
  root = rootfs {{ snapshot = snap; variant = "none"; packages = [ "hello-ubuntu" ]; }};
in {{ t = tarball {{ inherit root; }}; }}
"""


def test_ubuntu_is_a_debian_subclass_registered_by_its_package() -> None:
    ubuntu = for_archive(load_archive("ubuntu"))
    assert (ubuntu.distribution, ubuntu.format, ubuntu.title) == ("ubuntu", "deb", "Ubuntu")
    assert isinstance(ubuntu, type(package_format("deb")))
    assert for_archive(load_archive("ubuntu-ports")) is ubuntu
    assert type(for_archive(load_archive("debian"))) is type(package_format("deb"))


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    base = tmp_path_factory.mktemp("ubuntu")
    (base / "debs").mkdir()
    try:
        deb = deb_from_tree(base / "debs", "hello-ubuntu", files={"/etc/hello": (b"hi\n", 0o644)})
        return signed_mirror(base / "mirror", [deb], suite="noble")
    except MirrorUnavailable as exc:
        pytest.skip(str(exc))


def _run(work: Path, mirror, *args: str):  # type: ignore[no-untyped-def]
    return rb(
        work,
        *args,
        "--mirror",
        f"ubuntu={mirror.url}",
        "--keyring",
        f"ubuntu={mirror.keyring}",
    )


def test_lock_build_and_sbom(mirror, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "r.repro").write_text(RECIPE.format(archive="ubuntu", arch="amd64"))
    r = _run(tmp_path, mirror, "build", "--json", "--store", str(tmp_path / "s"), "r.repro")
    assert r.returncode == 0, r.stderr
    lock = json.loads((tmp_path / "r.repro.lock").read_text())
    (snap,) = lock["snapshots"].values()
    assert (snap["archive"], snap["format"]) == ("ubuntu", "deb")
    assert snap["url"] == "https://snapshot.ubuntu.com/ubuntu/20260711T101637Z/"
    assert snap["suites"]["noble"]["fingerprint"] == mirror.fingerprint
    r = rb(tmp_path, "sbom", "--format", "cyclonedx", "r.repro.lock")
    assert r.returncode == 0, r.stderr
    purls = [c["purl"] for c in json.loads(r.stdout)["components"] if "purl" in c]
    assert purls == ["pkg:deb/ubuntu/hello-ubuntu@1.0?arch=all&distro=noble"]
    from reprobuild import lockfile

    (locked,) = lockfile.load(tmp_path / "r.repro.lock").snapshots
    assert for_snapshot(locked).rebuilderd == "ubuntu"


def test_an_architecture_of_the_other_archive_is_refused(mirror, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "r.repro").write_text(RECIPE.format(archive="ubuntu", arch="arm64"))
    r = _run(tmp_path, mirror, "lock", "r.repro")
    assert r.returncode == 2
    assert "does not carry architecture 'arm64'" in r.stderr
    assert 'use archive = "ubuntu-ports"' in r.stderr
    assert "r.repro:3:" in r.stderr  # pointing at the snapshot's arch
