"""External tools: diffoscope handoff, and a missing tool never crashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from reprobuild.diff import compare, render_json, render_text
from reprobuild.diff.diffoscope import MISSING
from tests.diff.conftest import Member, need, write_tar


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    a = write_tar(
        tmp_path / "a.tar", [Member("etc/motd", b"hello\n"), Member("etc/blob", b"\x00\x01\x02")]
    )
    b = write_tar(
        tmp_path / "b.tar", [Member("etc/motd", b"world\n"), Member("etc/blob", b"\x00\x01\x03")]
    )
    return a, b


def test_diffoscope_handoff(tmp_path: Path) -> None:
    need("diffoscope")
    a, b = _pair(tmp_path)
    diff = compare(a, b, use_diffoscope=True)
    assert diff is not None
    motd = {d.source: d for d in diff.children}["etc/motd"]
    views = [c for c in motd.children if c.origin == "diffoscope"]
    assert len(views) == 1
    assert all(node.origin == "diffoscope" for node in views[0].walk())
    assert any("+world" in (n.unified_diff or "") for n in views[0].walk())
    assert "[diffoscope]" in render_text(diff)
    data = render_json(diff)["difference"]
    assert any(c["origin"] == "diffoscope" for c in data["children"][1]["children"])
    assert not any("diffoscope" in c for c in diff.comments)


def test_diffoscope_missing_is_a_comment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _pair(tmp_path)
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    diff = compare(a, b, use_diffoscope=True)
    assert diff is not None
    assert diff.comments == (MISSING,)
    assert not any(d.origin == "diffoscope" for d in diff.walk())
    assert render_text(diff).startswith(f"note: {MISSING}\n")


def test_without_flag_diffoscope_is_not_used(tmp_path: Path) -> None:
    a, b = _pair(tmp_path)
    diff = compare(a, b)
    assert diff is not None
    assert not any(d.origin == "diffoscope" for d in diff.walk()) and not diff.comments


def test_corrupt_archive_falls_back_to_bytes(tmp_path: Path) -> None:
    a, _ = _pair(tmp_path)
    broken = tmp_path / "broken.tar"
    data = bytearray(a.read_bytes())
    data[148:156] = b"0000000\0"  # bad header checksum
    broken.write_bytes(bytes(data))
    diff = compare(a, broken)
    assert diff is not None
    assert diff.summary.startswith("content differs (binary, ")
    assert any("could not compare as tar" in c for c in diff.comments)
