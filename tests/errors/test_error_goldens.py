"""Error messages found after evaluation point into the recipe (issue 15).

Each ``NAME.repro`` here is run through the real CLI (``lock``, or ``build
--locked`` for ``locked-*``) against the embedded demo snapshot; its whole
standard error must equal ``NAME.exp.err``: FILE:LINE:COL, the source line
with a caret, the message and the hint. ``REPROBUILD_UPDATE_GOLDEN=1``
rewrites the expectations (review the diff).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support.cli import reprobuild

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MIRROR = f"debian=file://{ROOT}/snapshots/demo/archive/debian/"
CASES = sorted(p.stem for p in HERE.glob("*.repro"))


@pytest.mark.parametrize("name", CASES)
def test_error_golden(name: str, tmp_path: Path) -> None:
    shutil.copy(HERE / f"{name}.repro", tmp_path / f"{name}.repro")
    if name.startswith("locked-"):
        args = ["build", "--locked", "--store", str(tmp_path / "store")]
    else:
        args = ["lock"]
    r = reprobuild(
        tmp_path,
        *args,
        "--mirror",
        MIRROR,
        f"{name}.repro",
        env={"XDG_CONFIG_HOME": "/nonexistent"},
    )
    assert r.returncode == 2, r.stdout + r.stderr
    expected = HERE / f"{name}.exp.err"
    got = r.stderr
    if "future" in name:  # the clock is part of the message
        got = "\n".join(
            line.split(" (now ")[0] + ": locking" + line.split("): locking", 1)[1]
            if " (now " in line
            else line
            for line in got.split("\n")
        )
    if os.environ.get("REPROBUILD_UPDATE_GOLDEN"):
        expected.write_text(got)
    assert got == expected.read_text()
    assert not (tmp_path / f"{name}.repro.lock").exists()
