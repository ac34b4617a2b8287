"""Shared assertions: tree snapshots and leak checks."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from pathlib import Path

from tests.export_images.trees import EPOCH

Snapshot = dict[str, tuple[object, ...]]


def snapshot(root: Path, *, dir_times: bool = True) -> Snapshot:
    """path -> (type, mode, uid, gid, content/target/rdev, mtime) for a whole tree."""
    result: Snapshot = {}
    for path in sorted([root, *root.rglob("*")]):
        st = os.lstat(path)
        rel = "/" + str(path.relative_to(root)) if path != root else "/"
        if stat.S_ISREG(st.st_mode):
            what: object = path.read_bytes()
        elif stat.S_ISLNK(st.st_mode):
            what = os.readlink(path)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            what = (os.major(st.st_rdev), os.minor(st.st_rdev))
        else:
            what = None
        mtime = (
            None
            if stat.S_ISLNK(st.st_mode) or (stat.S_ISDIR(st.st_mode) and not dir_times)
            else int(st.st_mtime)
        )
        result[rel] = (
            stat.S_IFMT(st.st_mode),
            stat.S_IMODE(st.st_mode),
            st.st_uid,
            st.st_gid,
            what,
            mtime,
        )
    return result


def assert_no_leaks(data: bytes, *paths: Path) -> None:
    """The build directories and the host name do not appear in an artefact."""
    for path in paths:
        assert os.fsencode(path) not in data, f"{path} leaked into the artefact"
        assert os.fsencode(path.name) not in data, f"{path.name} leaked into the artefact"
    host = socket.gethostname().encode()
    if len(host) >= 6:
        assert host not in data, "the host name leaked into the artefact"


def run(*argv: str, stdin: bytes | None = None) -> str:
    proc = subprocess.run(argv, input=stdin, capture_output=True, check=False)
    assert proc.returncode == 0, (argv, proc.stderr.decode(errors="replace"))
    return proc.stdout.decode("utf-8", "surrogateescape")


__all__ = ["EPOCH", "assert_no_leaks", "run", "snapshot"]
