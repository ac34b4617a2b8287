"""Arch package signatures, as pacman checks them: a repository made with repo-add,
packages signed by a key made here, the real CLI.

Honest packages lock and build; a package swapped under its old signature,
an unsigned one and one signed by a key outside the keyring are refused
with exit 2 naming the package; ``--insecure-allow-unsigned`` takes the
unsigned one and the lockfile says so; a lockfile edited to pin another
signature is refused by ``build --locked`` and ``replay`` even when the
package is already in the store.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cli import reprobuild as rb

from .pkgs import Node, make_package
from .signing import Packager, packager, repo_add

pytestmark = pytest.mark.skipif(
    shutil.which("repo-add") is None or shutil.which("bsdtar") is None,
    reason="repo-add/bsdtar are not installed (Debian packages pacman-package-manager, "
    "makepkg, libarchive-tools)",
)

DAY = ("2021", "04", "29")
RECIPE = (
    'let snap = snapshot { archive = "archlinux"; date = "2021-04-29T12:00:00Z"; '
    'repos = [ "core" ]; };\n'
    'in { t = tarball { root = rootfs { snapshot = snap; variant = "none"; '
    'packages = [ "hello" ]; }; }; }\n'
)


@dataclass(frozen=True)
class Keys:
    trusted: Packager
    stranger: Packager
    keyring: Path  # holds only the trusted packager's key


@dataclass(frozen=True)
class Packages:
    filesystem: Path
    hello: Path
    hello_other: Path  # same name and version, other bytes


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    with packager("Trusted Packager") as trusted, packager("Stranger") as stranger:
        keyring = trusted.export(tmp_path_factory.mktemp("keyring") / "archlinux.gpg")
        yield Keys(trusted, stranger, keyring)


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Packages:
    out = tmp_path_factory.mktemp("pkgs")
    other = tmp_path_factory.mktemp("pkgs-other")
    fs = make_package(out, "filesystem", "2021.01.19-1", {"etc/os-release": Node(data=b"A\n")})
    hello = make_package(
        out,
        "hello",
        "2.10-3",
        {"usr/bin/hello": Node(data=b"#!/bin/sh\necho hi\n", mode=0o755)},
        pkginfo=[("depend", "filesystem")],
    )
    evil = make_package(
        other,
        "hello",
        "2.10-3",
        {"usr/bin/hello": Node(data=b"#!/bin/sh\necho pwned\n", mode=0o755)},
        pkginfo=[("depend", "filesystem")],
    )
    return Packages(fs, hello, evil)


def _mirror(
    tmp_path: Path, files: dict[str, Path], sigs: dict[str, Path | None]
) -> tuple[str, Path]:
    """A day of the archive with ``files`` (name -> package) and their signatures."""
    repo_dir = tmp_path.joinpath("mirror", "repos", *DAY, "core", "os", "x86_64")
    repo_dir.mkdir(parents=True)
    placed = []
    for name, src in files.items():
        dest = repo_dir / f"{name}-x86_64.pkg.tar.zst"
        shutil.copy(src, dest)
        sig = sigs.get(name)
        if sig is not None:
            shutil.copy(sig, dest.with_name(dest.name + ".sig"))
        placed.append(dest)
    repo_add(repo_dir, "core", placed)
    return f"archlinux={(tmp_path / 'mirror' / 'repos').as_uri()}/", repo_dir


def _recipe(tmp_path: Path) -> Path:
    work = tmp_path / "recipe"
    work.mkdir()
    (work / "a.repro").write_text(RECIPE)
    return work


def _signed(p: Packager, pkg: Path, where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    return p.sign(pkg, where / (pkg.name + ".sig"))


def test_honest_packages_lock_and_build(tmp_path: Path, keys: Keys, packages: Packages) -> None:
    sigs = tmp_path / "sigs"
    mirror, _ = _mirror(
        tmp_path,
        {"filesystem-2021.01.19-1": packages.filesystem, "hello-2.10-3": packages.hello},
        {
            "filesystem-2021.01.19-1": _signed(keys.trusted, packages.filesystem, sigs),
            "hello-2.10-3": _signed(keys.trusted, packages.hello, sigs),
        },
    )
    work = _recipe(tmp_path)
    flags = ["--mirror", mirror, "--keyring", f"archlinux={keys.keyring}"]
    r = rb(work, "lock", *flags, "a.repro")
    assert r.returncode == 0, r.stderr
    lock = json.loads((work / "a.repro.lock").read_text())
    assert "insecure" not in lock
    for p in lock["packages"]:
        assert p["fingerprint"] == keys.trusted.fingerprint
        assert p["pgpsig"]
    store = ["--store", str(tmp_path / "store")]
    r = rb(work, "build", "--locked", "--json", *store, *flags, "a.repro")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)["outputs"]["t"]
    with tarfile.open(work / out["path"]) as t:
        desc = t.extractfile("./var/lib/pacman/local/hello-2.10-3/desc")
        assert desc is not None
        assert "%VALIDATION%\npgp\n" in desc.read().decode()  # as pacman records it
    # The lockfile is someone else's: one that pins a signature by a key outside the
    # keyring is refused although the package is in the store already.
    stranger_sig = _signed(keys.stranger, packages.hello, tmp_path / "stranger")
    import base64

    hello = next(p for p in lock["packages"] if p["name"] == "hello")
    hello["pgpsig"] = base64.b64encode(stranger_sig.read_bytes()).decode()
    hello["fingerprint"] = keys.stranger.fingerprint
    (work / "a.repro.lock").write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    for args in (("build", "--locked", "a.repro"), ("replay", "a.repro.lock")):
        r = rb(work, *args, *store, *flags)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "hello" in r.stderr and keys.stranger.key_id in r.stderr, r.stderr
        assert "not in the keyring" in r.stderr
        assert "Traceback" not in r.stderr


def test_a_package_swapped_under_its_old_signature_is_refused(
    tmp_path: Path, keys: Keys, packages: Packages
) -> None:
    sigs = tmp_path / "sigs"
    # The mirror replaced hello's bytes and ran repo-add again, keeping the old .sig.
    mirror, _ = _mirror(
        tmp_path,
        {"filesystem-2021.01.19-1": packages.filesystem, "hello-2.10-3": packages.hello_other},
        {
            "filesystem-2021.01.19-1": _signed(keys.trusted, packages.filesystem, sigs),
            "hello-2.10-3": _signed(keys.trusted, packages.hello, sigs),
        },
    )
    work = _recipe(tmp_path)
    flags = ["--mirror", mirror, "--keyring", f"archlinux={keys.keyring}"]
    r = rb(work, "build", "--store", str(tmp_path / "store"), *flags, "a.repro")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "package hello 2.10-3" in r.stderr and keys.trusted.key_id in r.stderr, r.stderr
    assert "does not verify" in r.stderr and "Traceback" not in r.stderr
    assert not (work / "out").exists()


def test_unsigned_and_foreign_packages_are_refused(
    tmp_path: Path, keys: Keys, packages: Packages
) -> None:
    sigs = tmp_path / "sigs"
    fs_sig = _signed(keys.trusted, packages.filesystem, sigs)
    files = {"filesystem-2021.01.19-1": packages.filesystem, "hello-2.10-3": packages.hello}
    unsigned, _ = _mirror(tmp_path / "u", files, {"filesystem-2021.01.19-1": fs_sig})
    foreign, _ = _mirror(
        tmp_path / "f",
        files,
        {
            "filesystem-2021.01.19-1": fs_sig,
            "hello-2.10-3": _signed(keys.stranger, packages.hello, tmp_path / "stranger"),
        },
    )
    work = _recipe(tmp_path)
    keyring = ["--keyring", f"archlinux={keys.keyring}"]
    r = rb(work, "lock", "--mirror", foreign, *keyring, "a.repro")
    assert r.returncode == 2, r.stderr
    assert "package hello 2.10-3" in r.stderr and keys.stranger.key_id in r.stderr, r.stderr
    assert "not in the keyring" in r.stderr and "Traceback" not in r.stderr
    r = rb(work, "lock", "--mirror", unsigned, *keyring, "a.repro")
    assert r.returncode == 2, r.stderr
    assert "package hello 2.10-3" in r.stderr and "no signature" in r.stderr, r.stderr
    assert not (work / "a.repro.lock").exists()

    # --insecure-allow-unsigned takes it, and the lockfile says so.
    insecure = ["--mirror", unsigned, *keyring, "--insecure-allow-unsigned"]
    r = rb(work, "lock", *insecure, "a.repro")
    assert r.returncode == 0, r.stderr
    assert "NOT checked" in r.stderr
    lock = json.loads((work / "a.repro.lock").read_text())
    assert "insecure-allow-unsigned" in lock["insecure"]
    hello = next(p for p in lock["packages"] if p["name"] == "hello")
    assert hello["fingerprint"] is None and hello["pgpsig"] is None
    store = ["--store", str(tmp_path / "store")]
    # ... and a build of that lockfile must say so too.
    r = rb(work, "build", "--locked", *store, "--mirror", unsigned, *keyring, "a.repro")
    assert r.returncode == 2, r.stderr
    assert "pins no signature" in r.stderr and "--insecure-allow-unsigned" in r.stderr, r.stderr
    r = rb(work, "build", "--locked", "--json", *store, *insecure, "a.repro")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)["outputs"]["t"]
    with tarfile.open(work / out["path"]) as t:
        desc = t.extractfile("./var/lib/pacman/local/hello-2.10-3/desc")
        assert desc is not None
        assert "%VALIDATION%\nsha256\n" in desc.read().decode()
