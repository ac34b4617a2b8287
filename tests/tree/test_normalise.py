"""normalise_tree: build-time state removed or emptied, mtimes clamped, nothing followed."""

from __future__ import annotations

import os
from pathlib import Path

from reprobuild.normalise import normalise_tree
from reprobuild.tree import tree_digest

EPOCH = 1_700_000_000  # day 19675


def _files(root: Path, spec: dict[str, bytes]) -> None:
    for rel, data in spec.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_normalise(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "host-machine-id"
    outside.write_bytes(b"host\n")
    _files(root, {
        "var/log/dpkg.log": b"2026-01-01 install\n",
        "var/log/apt/history.log": b"x",
        "var/log/btmp": b"junk",
        "var/log/installer/syslog": b"junk",
        "etc/machine-id": b"0123456789abcdef\n",
        "var/lib/dbus/machine-id": b"0123\n",
        "var/cache/ldconfig/aux-cache": b"cache",
        "var/lib/dpkg/status": b"Package: a\n",
        "var/lib/dpkg/status-old": b"old",
        "var/lib/dpkg/diversions-old": b"old",
        "var/lib/dpkg/lock": b"",
        "var/lib/dpkg/lock-frontend": b"",
        "var/lib/dpkg/triggers/Lock": b"",
        "var/cache/debconf/config.dat-old": b"old",
        "var/cache/debconf/config.dat": b"keep",
        "var/lib/apt/lists/deb.debian.org_Packages": b"index",
        "var/lib/apt/lists/lock": b"",
        "var/cache/apt/archives/bash.deb": b"deb",
        "var/cache/apt/pkgcache.bin": b"bin",
        "usr/lib/python3/dist-packages/m/__pycache__/m.cpython-311.pyc": b"pyc",
        "usr/lib/python3/dist-packages/m/__init__.py": b"",
        "etc/shadow": b"root:*:19000:0:99999:7:::\nnobody:*::0:99999:7:::\n",
        "etc/shadow-": b"root:*:18000:0:99999:7:::\n",
    })
    (root / "var/lib/apt/lists/partial").mkdir()
    (root / "var/log/btmp").chmod(0o660)
    os.symlink(str(outside), root / "var/log/host-link")
    os.utime(root / "etc/shadow", (0, 2_000_000_000))
    os.utime(root / "var/lib/dpkg/status", (0, 1_000))

    changed = normalise_tree(root, epoch=EPOCH)

    gone = ["var/log/dpkg.log", "var/log/apt/history.log", "var/lib/dbus/machine-id", "var/cache/ldconfig/aux-cache",
            "var/lib/dpkg/status-old", "var/lib/dpkg/diversions-old", "var/lib/dpkg/lock", "var/lib/dpkg/lock-frontend",
            "var/cache/debconf/config.dat-old", "var/lib/apt/lists/deb.debian.org_Packages", "var/lib/apt/lists/lock",
            "var/cache/apt/archives/bash.deb", "var/cache/apt/pkgcache.bin", "usr/lib/python3/dist-packages/m/__pycache__"]
    for rel in gone:
        assert not (root / rel).exists(), rel
    assert (root / "var/lib/apt/lists/partial").is_dir()
    assert (root / "var/lib/dpkg/triggers/Lock").exists()
    assert (root / "var/cache/debconf/config.dat").read_bytes() == b"keep"
    assert (root / "var/log/btmp").read_bytes() == b"" and (root / "var/log/btmp").stat().st_mode & 0o777 == 0o660
    assert (root / "var/log/installer/syslog").read_bytes() == b""
    assert (root / "etc/machine-id").read_bytes() == b""
    assert (root / "etc/shadow").read_bytes() == b"root:*:19675:0:99999:7:::\nnobody:*::0:99999:7:::\n"
    assert (root / "etc/shadow-").read_bytes() == b"root:*:19675:0:99999:7:::\n"
    assert outside.read_bytes() == b"host\n"  # the symlink was not followed
    assert "emptied /etc/machine-id" in changed
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            assert os.lstat(os.path.join(dirpath, name)).st_mtime <= EPOCH
    assert os.lstat(root / "var/lib/dpkg/status").st_mtime == 1_000
    # idempotent
    digest = tree_digest(root, epoch=EPOCH)
    assert normalise_tree(root, epoch=EPOCH) == []
    assert tree_digest(root, epoch=EPOCH) == digest


def test_machine_id_symlink_is_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    outside = tmp_path / "id"
    outside.write_bytes(b"host\n")
    os.symlink(str(outside), root / "etc/machine-id")
    normalise_tree(root, epoch=EPOCH)
    assert outside.read_bytes() == b"host\n"
