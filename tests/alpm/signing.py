"""Packager keys made in the test, detached package signatures, and repo-add.

A :class:`Packager` is a real GnuPG key in a short-lived home directory; it
signs packages as makepkg's ``--sign`` does (a binary detached ``.sig``
beside the package), and exports its public key as a keyring reprobuild is
pointed at with ``--keyring archlinux=PATH``. ``repo_add`` is the real
``repo-add``, which embeds each ``.sig`` as ``%PGPSIG%``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest


class Packager:
    def __init__(self, home: Path, fingerprint: str) -> None:
        self.home = home
        self.fingerprint = fingerprint

    @property
    def key_id(self) -> str:
        return self.fingerprint[-16:]

    def _gpg(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _gpg(self.home, *args)

    def sign(self, package: Path, sig: Path | None = None) -> Path:
        """Write ``package.sig`` (binary, as makepkg --sign does)."""
        out = sig or package.with_name(package.name + ".sig")
        out.unlink(missing_ok=True)
        self._gpg(
            "--pinentry-mode", "loopback", "--passphrase", "", "--local-user", self.fingerprint,
            "--detach-sign", "--output", str(out), str(package),
        )  # fmt: skip
        return out

    def export(self, keyring: Path) -> Path:
        self._gpg("--yes", "--output", str(keyring), "--export", self.fingerprint)
        return keyring


def _gpg(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        ["gpg", "--batch", "--no-tty", "--quiet", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "GNUPGHOME": str(home), "LC_ALL": "C"},
        timeout=300,
        check=False,
    )
    if r.returncode != 0:
        raise AssertionError(f"gpg {' '.join(args[:3])} failed: {r.stderr[-800:]}")
    return r


@contextmanager
def packager(name: str = "Test Packager") -> Iterator[Packager]:
    """A new ed25519 signing key, removed (with its agent) afterwards."""
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed (Debian package gnupg)")
    home = Path(tempfile.mkdtemp(prefix="rb-pkgr-"))  # the agent socket needs a short path
    os.chmod(home, 0o700)
    try:
        uid = f"{name} <{name.lower().replace(' ', '-')}@reprobuild.invalid>"
        _gpg(home, "--pinentry-mode", "loopback", "--passphrase", "",
             "--quick-gen-key", uid, "ed25519", "sign", "never")  # fmt: skip
        listing = _gpg(home, "--with-colons", "--list-secret-keys").stdout
        fpr = next(ln.split(":")[9] for ln in listing.splitlines() if ln.startswith("fpr:"))
        yield Packager(home, fpr)
    finally:
        subprocess.run(
            ["gpgconf", "--kill", "all"],
            env={**os.environ, "GNUPGHOME": str(home)},
            capture_output=True,
            check=False,
        )
        shutil.rmtree(home, ignore_errors=True)


def repo_add(repo_dir: Path, repo: str, packages: Sequence[Path]) -> Path:
    """``repo-add REPO.db.tar.gz PACKAGES`` (it makes the ``REPO.db`` link too)."""
    if shutil.which("repo-add") is None:
        pytest.skip("repo-add is not installed (Debian packages pacman-package-manager, makepkg)")
    db = repo_dir / f"{repo}.db.tar.gz"
    for old in (db, repo_dir / f"{repo}.db"):
        old.unlink(missing_ok=True)
    r = subprocess.run(
        ["repo-add", "-q", str(db), *map(str, packages)],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        raise AssertionError(f"repo-add failed: {r.stdout}{r.stderr}")
    return repo_dir / f"{repo}.db"
