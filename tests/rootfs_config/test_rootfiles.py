"""files entries: text, sources, symlinks, directories, modes and owners."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from reprobuild.errors import UsageError
from reprobuild.steps.rootfiles import apply_owners, write_files
from reprobuild.steps.treepaths import mkdirs, replaceable

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="setting owners needs root")


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1001:1002::/srv:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\napp:x:1002:\nusers:x:100:\n")
    return root


def test_every_kind(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    src = tmp_path / "tool"
    src.write_text("#!/bin/sh\n")
    files = {
        "/usr/local/bin/tool": {"source": {"path": "tool", "sha256": "x"}, "mode": "4755"},
        "/etc/motd": "hello\n",
        "/etc/app.conf": {"text": "k=v\n", "mode": "0640", "owner": "root:app"},
        "/srv/app": {"directory": True, "mode": "0750", "owner": "app"},
        "/srv/app/bin": {"symlink": "/usr/local/bin/tool", "owner": "1001:100"},
        "/etc": {"directory": True},  # already there: kept, mode set
    }
    owned = write_files(
        root, files, copy_source=lambda ref, dest: shutil.copyfile(src, dest), replaceable=replaceable, mkdirs=mkdirs
    )
    apply_owners(root, owned)

    def info(rel: str) -> tuple[int, int, int]:
        st = os.lstat(root / rel)
        return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid

    assert info("usr/local/bin/tool") == (0o4755, 0, 0)
    assert info("etc/motd") == (0o644, 0, 0)
    assert info("etc/app.conf") == (0o640, 0, 1002)
    assert info("srv/app") == (0o750, 1001, 1002)
    assert info("srv/app/bin")[1:] == (1001, 100)
    assert os.readlink(root / "srv/app/bin") == "/usr/local/bin/tool"
    assert (root / "etc/passwd").exists()


def test_setuid_survives_chown(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    owned = write_files(
        root,
        {"/usr/bin/x": {"text": "x", "mode": "4755", "owner": "app"}},
        copy_source=lambda ref, dest: None,
        replaceable=replaceable,
        mkdirs=mkdirs,
    )
    apply_owners(root, owned)
    st = os.stat(root / "usr/bin/x")
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o4755, 1001)


def test_unknown_owner(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    owned = write_files(
        root,
        {"/x": {"text": "x", "owner": "ghost"}},
        copy_source=lambda ref, dest: None,
        replaceable=replaceable,
        mkdirs=mkdirs,
    )
    with pytest.raises(UsageError, match="no user 'ghost'"):
        apply_owners(root, owned)


def test_no_writing_through_links_out(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    os.symlink(tmp_path, root / "out")
    with pytest.raises(UsageError, match="outside the tree"):
        write_files(
            root,
            {"/out/evil": "x"},
            copy_source=lambda ref, dest: None,
            replaceable=replaceable,
            mkdirs=mkdirs,
        )
