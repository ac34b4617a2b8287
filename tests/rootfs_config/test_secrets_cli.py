"""A per-machine secret left in an image: build warns (also when cached), check fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import reprobuild as rb

ROOT = Path(__file__).resolve().parents[2]
MIRROR = "debian=" + (ROOT / "snapshots" / "demo" / "archive" / "debian").as_uri() + "/"
RECIPE = """\
let
  snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ]; };
  root = rootfs {
    snapshot = snap;
    variant = "none";
    packages = [ "netbase" ];
    files = { "/etc/app/server.key" = "-----BEGIN EC PRIVATE KEY-----\\nMHcCAQEE\\n"; };
  };
in
{ t = tarball { inherit root; }; }
"""
SECRET = "rootfs 'root': /etc/app/server.key: a private key no package ships"


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    (tmp_path / "r.repro").write_text(RECIPE)
    return tmp_path


def test_build_warns_even_when_cached(recipe: Path) -> None:
    for _ in range(2):  # the second build takes the rootfs from the store
        r = rb(recipe, "build", "--json", "--store", "store", "--mirror", MIRROR, "r.repro")
        assert r.returncode == 0, r.stderr
        assert f"warning: {SECRET}" in r.stderr
        assert any(s.startswith(SECRET) for s in json.loads(r.stdout)["secrets"])


def test_check_fails_naming_it(recipe: Path) -> None:
    r = rb(recipe, "check", "--variations", "umask", "--mirror", MIRROR, "r.repro")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "t  sha256:" in r.stdout and "reproducible" in r.stdout
    assert f"generated secret: {SECRET}" in r.stdout
