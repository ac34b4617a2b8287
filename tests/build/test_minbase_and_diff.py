"""A minbase root builds; a one-line change in files is named by diff of two OCI images."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from tests.support.cli import reprobuild as rb

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "mirrors" / "debian" / "archive" / "debian"
DEMO = "debian=" + (ROOT / "snapshots" / "demo" / "archive" / "debian").as_uri() + "/"


@pytest.mark.skipif(
    not SHARED.exists(), reason="the shared Debian mirror is not beside the repository"
)
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap is not installed")
def test_minbase_root_builds_configured(tmp_path: Path) -> None:
    (tmp_path / "m.repro").write_text(
        'let snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ]; };\n'
        'in { t = tarball { root = rootfs { snapshot = snap; variant = "minbase"; }; }; }\n'
    )
    r = rb(
        tmp_path,
        "build",
        "--json",
        "--store",
        str(tmp_path / "s"),
        "--mirror",
        f"debian={SHARED.as_uri()}/",
        "m.repro",
    )
    assert r.returncode == 0, r.stderr
    with tarfile.open(tmp_path / json.loads(r.stdout)["outputs"]["t"]["path"]) as t:
        names = set(t.getnames())
        status = t.extractfile("./var/lib/dpkg/status")
        assert status is not None
        stanzas = [s for s in status.read().decode().split("\n\n") if s.strip()]
    assert "./usr/bin/apt" in names and "./usr/bin/dpkg" in names
    assert all("Status: install ok installed" in s for s in stanzas)
    assert any(s.startswith("Package: apt\n") for s in stanzas)


def test_diff_names_a_changed_file_in_two_oci_images(tmp_path: Path) -> None:
    recipe = (
        "let\n"
        '  snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ]; };\n'
        '  root = rootfs { snapshot = snap; variant = "none"; packages = [ "busybox-static" ];\n'
        '    files = { "/etc/motd" = "MOTD\\n"; }; };\n'
        'in { img = oci_image { inherit root; entrypoint = [ "/bin/busybox" "sh" ]; }; }\n'
    )
    outs = []
    for name, motd in (("a", "hello\nworld\n"), ("b", "hello\nthere\n")):
        work = tmp_path / name
        work.mkdir()
        (work / "r.repro").write_text(recipe.replace("MOTD\\n", motd.replace("\n", "\\n")))
        r = rb(
            work, "build", "--json", "--store", str(tmp_path / "store"), "--mirror", DEMO, "r.repro"
        )
        assert r.returncode == 0, r.stderr
        outs.append(work / json.loads(r.stdout)["outputs"]["img"]["path"])
    r = rb(tmp_path, "diff", str(outs[0]), str(outs[1]))
    assert r.returncode == 1, r.stderr
    assert "etc/motd" in r.stdout and "content differs" in r.stdout
    assert "-world" in r.stdout and "+there" in r.stdout
    assert rb(tmp_path, "diff", str(outs[0]), str(outs[0])).returncode == 0
