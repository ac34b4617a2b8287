"""Outputs already in place are recognised without reading them (reprobuild/outstate.py)."""

from __future__ import annotations

import os
from pathlib import Path

from reprobuild.outstate import STATE_NAME, OutputState


def _record(out: Path, name: str, paths: list[str], sha: str = "a" * 64) -> None:
    state = OutputState(out)
    state.exported(name, "tarball", sha, paths)
    state.save()


def test_unchanged_output_is_current(tmp_path: Path) -> None:
    (tmp_path / "t.tar").write_bytes(b"bytes")
    _record(tmp_path, "t", ["t.tar"])
    state = OutputState(tmp_path)
    assert state.current("t", "tarball", "a" * 64)
    assert not state.current("t", "tarball", "b" * 64)  # other bytes recorded now
    assert not state.current("t", "cpio", "a" * 64)
    assert not state.current("other", "tarball", "a" * 64)


def test_any_change_makes_it_stale(tmp_path: Path) -> None:
    f = tmp_path / "t.tar"
    changes = {
        "rewritten, same size and mtime": lambda: (
            f.write_bytes(b"BYTES"),
            os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns)),
        ),
        "chmod": lambda: f.chmod(0o600),
        "replaced": lambda: (f.unlink(), f.write_bytes(b"bytes")),
        "removed": lambda: f.unlink(),
    }
    for what, change in changes.items():
        f.unlink(missing_ok=True)
        f.write_bytes(b"bytes")
        st = f.stat()
        _record(tmp_path, "t", ["t.tar"])
        assert OutputState(tmp_path).current("t", "tarball", "a" * 64), what
        change()
        assert not OutputState(tmp_path).current("t", "tarball", "a" * 64), what


def test_a_layout_directory_is_stamped_whole(tmp_path: Path) -> None:
    layout = tmp_path / "oci"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "index.json").write_text("{}")
    (layout / "blobs" / "sha256" / "ab").write_text("x")
    (tmp_path / "oci.tar").write_bytes(b"tar")
    _record(tmp_path, "oci", ["oci.tar", "oci"])
    assert OutputState(tmp_path).current("oci", "tarball", "a" * 64)
    (layout / "blobs" / "sha256" / "extra").write_text("y")  # an added file
    assert not OutputState(tmp_path).current("oci", "tarball", "a" * 64)


def test_a_damaged_state_file_means_copy_again(tmp_path: Path) -> None:
    (tmp_path / "t.tar").write_bytes(b"bytes")
    for junk in ("", "{", '{"version": 1, "outputs": {"t": {"paths": [["t.tar", [1]]]}}}', "[]"):
        (tmp_path / STATE_NAME).write_text(junk)
        assert not OutputState(tmp_path).current("t", "tarball", "a" * 64)
