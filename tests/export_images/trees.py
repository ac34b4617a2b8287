"""Test trees for the image exporters: every kind of file a format may hold."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from reprobuild.tree import write_canonical_tar

EPOCH = 1_700_000_000
LONG_NAME = "L" * 191 + "-long.txt"  # 200 bytes: beyond Joliet, within Rock Ridge / ext4
assert len(LONG_NAME) == 200


def make_tree(root: Path) -> None:
    """A small tree with setuid, sticky, symlinks, hard links, devices, long and odd names."""
    root.mkdir()
    os.chmod(root, 0o755)
    (root / "etc").mkdir()
    (root / "etc" / "motd").write_text("built by reprobuild\n")
    (root / "etc" / 'sp ace & q"uote').write_text("odd name\n")
    (root / "etc" / "caf\u00e9").write_text("utf-8 name\n")
    (root / "usr" / "bin").mkdir(parents=True)
    su = root / "usr" / "bin" / "su"
    su.write_bytes(b"\x7fELF fake setuid binary\n" * 100)
    os.chmod(su, 0o4755)
    sg = root / "usr" / "bin" / "wall"
    sg.write_bytes(b"setgid\n")
    os.chown(sg, 0, 5)
    os.chmod(sg, 0o2755)
    big = root / "usr" / "bin" / "big"
    big.write_bytes(bytes(range(256)) * 4096 + os.urandom(0) + b"tail")  # ~1 MiB
    os.link(big, root / "usr" / "bin" / "big-hardlink")
    os.symlink("big", root / "usr" / "bin" / "big-symlink")
    os.symlink("usr/bin", root / "bin")
    os.symlink("/nonexistent/target", root / "dangling")
    (root / "usr" / "share" / "doc").mkdir(parents=True)
    (root / "usr" / "share" / "doc" / LONG_NAME).write_text("long name\n")
    (root / "usr" / "share" / "empty").write_bytes(b"")
    (root / "dev").mkdir()
    os.mknod(root / "dev" / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.chmod(root / "dev" / "null", 0o666)
    os.mknod(root / "dev" / "sda", 0o660 | stat.S_IFBLK, os.makedev(8, 0))
    os.chown(root / "dev" / "sda", 0, 6)
    os.mkfifo(root / "dev" / "initctl", 0o600)
    tmp = root / "tmp"
    tmp.mkdir()
    os.chmod(tmp, 0o1777)
    home = root / "home" / "user"
    home.mkdir(parents=True)
    (home / "notes").write_text("user file\n")
    os.chown(home / "notes", 1000, 1000)
    os.chown(home, 1000, 1000)
    os.chmod(home, 0o700)
    deep = root / "deep"
    for i in range(12):
        deep = deep / f"level{i:02d}"
    deep.mkdir(parents=True)
    (deep / "bottom").write_text("deep\n")
    for path in [root, *root.rglob("*")]:
        os.utime(path, (EPOCH - 86400, EPOCH - 86400), follow_symlinks=False)


def canonical_tar_of(root: Path, out: Path, *, epoch: int = EPOCH) -> Path:
    with open(out, "wb") as handle:
        write_canonical_tar(root, handle, epoch=epoch)
    return out
