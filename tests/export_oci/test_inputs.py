"""The recipe's file inputs an image carries: the same bytes from any checkout,
and unpacked they are what the step keys hashed (well under a second)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from reprobuild.errors import LockfileError
from reprobuild.export.inputs import input_paths, pack_inputs, unpack_inputs
from reprobuild.plan import _hash_tree


def _tree(root: Path, umask: int, mtime: int) -> Path:
    old = os.umask(umask)
    try:
        (root / "lib" / "tools" / "sub").mkdir(parents=True)
        (root / "lib" / "tools" / "run.sh").write_text("#!/bin/sh\necho hi\n")
        (root / "lib" / "tools" / "run.sh").chmod(0o777 & ~umask)
        (root / "lib" / "tools" / "sub" / "data").write_bytes(b"\x00\x01")
        (root / "lib" / "tools" / "link").symlink_to("sub/data")
        (root / "motd").write_text("hello\n")
        (root / "unused").write_text("not an input\n")
    finally:
        os.umask(old)
    for p in root.rglob("*"):
        os.utime(p, (mtime, mtime), follow_symlinks=False)
    return root


def _params() -> list[object]:
    return [
        {"files": {"/etc/motd": {"path": "./motd", "sha256": "x"}}},
        {"inputs": {"tools": {"path": "./lib/tools", "tree-sha256": "y"}}},
        {"script": "true", "nested": [{"path": "./missing", "sha256": "z"}]},
        {"path": "./../outside", "sha256": "w"},  # never outside the recipe tree
    ]


def test_inputs_are_reproducible_and_round_trip(tmp_path: Path) -> None:
    a = _tree(tmp_path / "a", 0o022, 1_000_000)
    b = _tree(tmp_path / "b", 0o077, 2_000_000)
    assert input_paths(_params(), a) == ["lib/tools", "motd"]
    packed = pack_inputs(a, input_paths(_params(), a))
    assert packed is not None and packed == pack_inputs(b, input_paths(_params(), b))
    with tarfile.open(fileobj=io.BytesIO(packed)) as t:
        names = t.getnames()
    assert names == [
        "lib", "lib/tools", "lib/tools/link", "lib/tools/run.sh", "lib/tools/sub",
        "lib/tools/sub/data", "motd",
    ]  # fmt: skip
    dest = tmp_path / "rebuilt"
    dest.mkdir()
    unpack_inputs(packed, dest)
    assert _hash_tree(dest / "lib" / "tools") == _hash_tree(a / "lib" / "tools")
    assert (dest / "motd").read_text() == "hello\n" and not (dest / "unused").exists()
    assert pack_inputs(a, []) is None


def test_hostile_inputs_are_refused(tmp_path: Path) -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        info = tarfile.TarInfo("../escape")
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(LockfileError, match="cannot be unpacked"):
        unpack_inputs(out.getvalue(), tmp_path)
    assert not (tmp_path.parent / "escape").exists()
