"""An Arch Linux root end to end: a repository made by repo-add, lock, build."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from tests.support.cli import reprobuild as rb

from .pkgs import Node, make_package
from .signing import packager, repo_add

pytestmark = pytest.mark.skipif(
    shutil.which("repo-add") is None or shutil.which("bsdtar") is None,
    reason="repo-add/bsdtar are not installed (Debian packages pacman-package-manager, libarchive-tools)",
)


def test_lock_and_build_an_arch_root(tmp_path: Path) -> None:
    day = tmp_path / "mirror" / "repos" / "2021" / "04" / "29"
    repo_dir = day / "core" / "os" / "x86_64"
    repo_dir.mkdir(parents=True)
    pkgs = [
        make_package(
            repo_dir, "filesystem", "2021.01.19-1", {"etc/os-release": Node(data=b"NAME=Arch\n")}
        ),
        make_package(
            repo_dir,
            "hello",
            "2.10-3",
            {"usr/bin/hello": Node(data=b"#!/bin/sh\necho hi\n", mode=0o755)},
            pkginfo=[("depend", "filesystem"), ("depend", "libgreet>=1")],
        ),
        make_package(
            repo_dir,
            "greetlib",
            "1.2-1",
            {"usr/lib/libgreet.so.1": Node(data=b"\x7fELF")},
            pkginfo=[("provides", "libgreet=1.2")],
        ),
    ]
    for p in sorted(repo_dir.glob("stage-*")):
        shutil.rmtree(p)
    with packager() as key:
        for p in pkgs:
            key.sign(p)
        keyring = key.export(tmp_path / "archlinux.gpg")
    repo_add(repo_dir, "core", pkgs)
    work = tmp_path / "recipe"
    work.mkdir()
    (work / "a.repro").write_text(
        'let snap = snapshot { archive = "archlinux"; date = "2021-04-29T12:00:00Z"; repos = [ "core" ]; };\n'
        'in { t = tarball { root = rootfs { snapshot = snap; variant = "none"; packages = [ "hello" ]; }; }; }\n'
    )
    # The archive's root works as well as its repos/ directory.
    mirror = f"archlinux={(tmp_path / 'mirror').as_uri()}/"
    keys = ("--keyring", f"archlinux={keyring}")
    r = rb(work, "lock", "--mirror", mirror, *keys, "a.repro")
    assert r.returncode == 0, r.stderr
    lock = json.loads((work / "a.repro.lock").read_text())
    assert sorted(p["name"] for p in lock["packages"]) == ["filesystem", "greetlib", "hello"]
    assert lock["snapshots"]["snap"]["url"] == "https://archive.archlinux.org/repos/2021/04/29/"
    r = rb(
        work,
        "build",
        "--json",
        "--store",
        str(tmp_path / "store"),
        "--mirror",
        mirror,
        *keys,
        "a.repro",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)["outputs"]["t"]
    with tarfile.open(work / out["path"]) as t:
        names = set(t.getnames())
        desc = t.extractfile("./var/lib/pacman/local/hello-2.10-3/desc")
        assert desc is not None
        text = desc.read().decode()
    assert {"./usr/bin/hello", "./usr/lib/libgreet.so.1", "./etc/os-release"} <= names
    assert "%REASON%\n" not in text or "%REASON%\n0" in text  # hello was requested: explicit
    assert "%INSTALLDATE%\n1619654400\n" in text  # the snapshot day, never the clock
