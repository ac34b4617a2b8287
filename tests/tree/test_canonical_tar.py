"""The canonical tar: byte-identical across creation order, umask, TZ, locale and path."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from reprobuild.tree import (
    PrivilegeError,
    TreeError,
    read_canonical_tar,
    tree_digest,
    write_canonical_tar,
)

EPOCH = 1_700_000_000
CAPABILITY = bytes.fromhex("0100000200200000000000000000000000000000")  # cap_net_raw+ep
LONG = "d" * 60 + "/" + "f" * 90

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="device nodes and chown need root")

BUILD = r'''
import os, sys, time
root, order = sys.argv[1], sys.argv[2]
os.umask(int(sys.argv[3], 8))
def mk(kind, rel, *a):
    p = os.path.join(root, rel)
    if kind == "d": os.makedirs(p, exist_ok=True)
    elif kind == "f":
        with open(p, "wb") as f: f.write(a[0])
    elif kind == "l": os.symlink(a[0], p)
    elif kind == "h": os.link(os.path.join(root, a[0]), p)
    elif kind == "p": os.mkfifo(p)
    elif kind == "c": os.mknod(p, 0o600 | 0o020000, os.makedev(1, 3))
steps = [
    ("d", "etc"), ("d", "usr/bin"), ("d", "tmp"), ("d", "d" * 60),
    ("f", "etc/passwd", b"root:x:0:0::/root:/bin/sh\n"), ("f", "usr/bin/tool", b"\x7fELF" + bytes(range(256)) * 9),
    ("f", "usr/bin/su", b"su"), ("f", "usr/bin/ping", b"ping"), ("f", "d" * 60 + "/" + "f" * 90, b"long"),
    ("f", "etc/b\xe9".encode("latin-1").decode("utf-8", "surrogateescape"), b"non-utf8 name"),
    ("l", "usr/bin/sh", "dash"), ("l", "etc/abs", "/usr/bin/tool"),
    ("h", "usr/bin/tool2", "usr/bin/tool"), ("h", "usr/bin/atool", "usr/bin/tool"),
    ("p", "tmp/fifo"), ("c", "etc/null"),
]
if order == "reverse":
    dirs = [s for s in steps if s[0] == "d"]; rest = [s for s in steps if s[0] != "d"]
    # files before their hard links are required; otherwise reverse everything
    rest = [s for s in rest if s[0] != "h"][::-1] + [s for s in rest if s[0] == "h"][::-1]
    steps = dirs[::-1] + rest
for s in steps: mk(*s)
for dirpath, dirnames, filenames in os.walk(root):
    for n in filenames:
        p = os.path.join(dirpath, n)
        if not os.path.islink(p):
            os.chmod(p, 0o644)
os.chmod(os.path.join(root, "usr/bin/su"), 0o4755)
os.chmod(os.path.join(root, "tmp"), 0o1777)
os.chmod(os.path.join(root, "usr/bin/tool"), 0o755)
os.chmod(os.path.join(root, "etc/passwd"), 0o644)
os.chmod(os.path.join(root, "usr/bin/ping"), 0o755)
os.setxattr(os.path.join(root, "usr/bin/ping"), "security.capability", bytes.fromhex(sys.argv[4]))
os.setxattr(os.path.join(root, "usr/bin/ping"), "user.comment", b"dropped")
os.chown(os.path.join(root, "etc/passwd"), 0, 42)
os.chown(os.path.join(root, "usr/bin/sh"), 3_000_000, 3_000_001, follow_symlinks=False)
for dirpath, dirnames, filenames in os.walk(root, topdown=False):
    for n in dirnames + filenames:
        p = os.path.join(dirpath, n)
        os.utime(p, (1, 1_800_000_000 if n == "tool" else 1_600_000_000), follow_symlinks=False)
for d in ("usr", "usr/bin", "etc", "tmp", "d" * 60, ".", "usr/bin/.."):
    os.chmod(os.path.join(root, d), 0o1777 if d == "tmp" else 0o755)
    os.utime(os.path.join(root, d), (1, 1_650_000_000))
'''

WRITE = r'''
import sys
from pathlib import Path
from reprobuild.tree import write_canonical_tar
with open(sys.argv[2], "wb") as out:
    write_canonical_tar(Path(sys.argv[1]), out, epoch=int(sys.argv[3]))
'''


def _build(root: Path, *, order: str, umask: str, env: dict[str, str]) -> None:
    root.mkdir()
    subprocess.run(
        [sys.executable, "-c", BUILD, str(root), order, umask, CAPABILITY.hex()],
        check=True, env={**os.environ, **env},
    )


def _write(root: Path, out: Path, env: dict[str, str]) -> bytes:
    subprocess.run([sys.executable, "-c", WRITE, str(root), str(out), str(EPOCH)], check=True, env={**os.environ, **env})
    return out.read_bytes()


@needs_root
def test_identical_bytes_across_order_umask_tz_locale_and_path(tmp_path: Path) -> None:
    env_a = {"TZ": "UTC", "LC_ALL": "C.UTF-8"}
    env_b = {"TZ": "Asia/Tokyo", "LC_ALL": "POSIX", "LANG": "ja_JP.UTF-8"}
    a = tmp_path / "first-tree"
    b = tmp_path / "elsewhere" / "x"
    b.parent.mkdir()
    _build(a, order="forward", umask="022", env=env_a)
    _build(b, order="reverse", umask="077", env=env_b)
    data_a = _write(a, tmp_path / "a.tar", env_a)
    data_b = _write(b, tmp_path / "b.tar", env_b)
    assert data_a == data_b
    assert tree_digest(a, epoch=EPOCH) == tree_digest(b, epoch=EPOCH)
    assert len(data_a) % 10240 == 0


@needs_root
def test_format_details(tmp_path: Path) -> None:
    root = tmp_path / "t"
    _build(root, order="forward", umask="022", env={})
    buf = io.BytesIO()
    write_canonical_tar(root, buf, epoch=EPOCH)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue()), encoding="utf-8", errors="surrogateescape") as tar:
        members = tar.getmembers()
    names = [m.name.removeprefix("./") for m in members]
    # tar --sort=name order: pre-order, siblings sorted bytewise; root first
    assert names[0] == "."
    assert names.index("etc") < names.index("etc/abs") < names.index("usr") < names.index("usr/bin/atool")
    by_name = dict(zip(names, members, strict=True))
    assert all(m.uname == "" and m.gname == "" for m in members)
    assert all(m.mtime <= EPOCH for m in members)
    assert by_name["usr/bin/tool"].mtime == EPOCH  # clamped from the future
    assert by_name["etc/passwd"].mtime == 1_600_000_000  # kept
    assert by_name["usr/bin/su"].mode == 0o4755
    assert by_name["tmp"].mode == 0o1777
    assert by_name["etc/passwd"].gid == 42
    assert by_name["usr/bin/sh"].uid == 3_000_000  # beyond ustar: pax uid
    # the first of the three names in sorted order holds the data
    assert by_name["usr/bin/atool"].isreg() and by_name["usr/bin/atool"].size == 4 + 256 * 9
    assert by_name["usr/bin/tool"].islnk() and by_name["usr/bin/tool"].linkname == "./usr/bin/atool"
    assert by_name["usr/bin/tool2"].islnk() and by_name["usr/bin/tool2"].linkname == "./usr/bin/atool"
    assert by_name["etc/null"].ischr() and (by_name["etc/null"].devmajor, by_name["etc/null"].devminor) == (1, 3)
    assert by_name["tmp/fifo"].isfifo()
    assert by_name["etc/abs"].issym() and by_name["etc/abs"].linkname == "/usr/bin/tool"
    assert LONG in by_name
    assert by_name["usr/bin/ping"].pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape") == CAPABILITY
    assert "SCHILY.xattr.user.comment" not in by_name["usr/bin/ping"].pax_headers
    assert not any("atime" in m.pax_headers or "ctime" in m.pax_headers for m in members)
    # GNU tar reads it too
    listing = subprocess.run(["tar", "-tvf", "-"], input=buf.getvalue(), capture_output=True, check=True)
    assert b"./usr/bin/su" in listing.stdout


@needs_root
def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    root = tmp_path / "t"
    _build(root, order="forward", umask="022", env={})
    first = io.BytesIO()
    write_canonical_tar(root, first, epoch=EPOCH)
    copy = tmp_path / "copy"
    read_canonical_tar(io.BytesIO(first.getvalue()), copy)
    second = io.BytesIO()
    write_canonical_tar(copy, second, epoch=EPOCH)
    assert first.getvalue() == second.getvalue()
    st = os.lstat(copy / "usr/bin/su")
    assert stat.S_IMODE(st.st_mode) == 0o4755
    assert stat.S_ISCHR(os.lstat(copy / "etc/null").st_mode)
    assert os.lstat(copy / "etc/null").st_rdev == os.makedev(1, 3)
    assert os.getxattr(copy / "usr/bin/ping", "security.capability") == CAPABILITY
    assert os.lstat(copy / "usr/bin/tool").st_ino == os.lstat(copy / "usr/bin/tool2").st_ino
    assert os.lstat(copy / "usr/bin/sh").st_uid == 3_000_000
    assert stat.S_IMODE(os.lstat(copy).st_mode) == 0o755


def test_digest_changes_with_content_and_mode(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    (root / "a").write_bytes(b"1")
    os.utime(root / "a", (0, 100))
    first = tree_digest(root, epoch=EPOCH)
    assert first == tree_digest(root, epoch=EPOCH)
    (root / "a").chmod(0o600)
    assert tree_digest(root, epoch=EPOCH) != first


def test_socket_is_refused(tmp_path: Path) -> None:
    import socket

    root = tmp_path / "t"
    root.mkdir()
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(root / "s"))
        with pytest.raises(TreeError, match="socket"):
            write_canonical_tar(root, io.BytesIO(), epoch=EPOCH)
    finally:
        sock.close()


def test_extract_needs_empty_root(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "x").write_bytes(b"")
    with pytest.raises(TreeError, match="not empty"):
        read_canonical_tar(io.BytesIO(b""), tmp_path / "t")


@needs_root
def test_missing_privilege_is_named(tmp_path: Path) -> None:
    """As an unprivileged user, chown and mknod fail with an error naming the capability."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("./null")
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
        tar.addfile(info)
    import shutil
    import tempfile

    shared = Path(tempfile.mkdtemp(dir="/tmp"))  # pytest's tmp_path is private to root
    shared.chmod(0o755)
    target = shared / "unpriv"
    target.mkdir()
    os.chown(target, 65534, 65534)
    (shared / "in.tar").write_bytes(data.getvalue())
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from reprobuild.tree import read_canonical_tar, PrivilegeError\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "try:\n"
        "    read_canonical_tar(open(sys.argv[1], 'rb'), Path(sys.argv[2]))\n"
        "except PrivilegeError as e:\n"
        "    print(e.message)\n"
    )
    try:
        result = subprocess.run([sys.executable, "-c", script, str(shared / "in.tar"), str(target)], capture_output=True, text=True)
    finally:
        shutil.rmtree(shared)
    assert "CAP_MKNOD" in result.stdout, result.stderr
    assert PrivilegeError.__mro__[1].__name__ == "ReprobuildError"
