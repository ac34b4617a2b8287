"""Row 'low' of issue 18: hostile lockfiles and replay inputs get a clear refusal
(exit 1 or 2), never ``internal error`` (exit 70)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.cli import reprobuild

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "recipes" / "demo.repro"
LOCK = json.loads((ROOT / "recipes" / "demo.repro.lock").read_text())


def _set(*path: str | int, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        for key in path[:-1]:
            data = data[key]  # type: ignore[index]
        data[path[-1]] = value  # type: ignore[index]

    return edit


EDITS = {
    "timestamp not a time": _set("snapshots", "snap", "timestamp", value="x"),
    "archive not a string": _set("snapshots", "snap", "archive", value=None),
    "rootfs without snapshots": _set("rootfs", "root", "snapshots", value=[]),
    "package snapshot a list": _set("packages", 0, "snapshot", value=[]),
    "outputs not a mapping": _set("outputs", "iso", value="x"),
    "embedded file with an empty name": _set("embedded", value={"": "{ }"}),
}


def test_hostile_lockfiles_and_replay_inputs_are_refused_cleanly(tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    (work / "demo.repro").write_text(DEMO.read_text())
    for name, edit in EDITS.items():
        data = json.loads(json.dumps(LOCK))
        edit(data)
        (work / "demo.repro.lock").write_text(json.dumps(data))
        # (build --locked reads a lockfile through the same code as replay)
        r = reprobuild(work, "replay", "demo.repro.lock", "--store", str(tmp_path / "store"),
                       "--mirror", "debian=http://127.0.0.1:9/")  # fmt: skip
        assert r.returncode in (1, 2), (name, r.stderr)
        assert "internal error" not in r.stderr and "Traceback" not in r.stderr, (name, r.stderr)
    # replay inputs that are not lockfiles
    (work / "binary.lock").write_bytes(b"\xff\xfe\x00garbage")
    (work / "dir.lock").mkdir()
    for target in ("binary.lock", "dir.lock", "refs/builds/../../x", "nosuch/1"):
        r = reprobuild(work, "replay", "--store", str(tmp_path / "store"), target)
        assert r.returncode in (1, 2), (target, r.stderr)
        assert "internal error" not in r.stderr and "Traceback" not in r.stderr, (target, r.stderr)
