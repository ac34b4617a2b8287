"""Running the real ``reprobuild`` command as a user would, for the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path


def reprobuild(
    cwd: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    prefix: Sequence[str] = (),
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    """``python -m reprobuild ARGS`` in ``cwd``, with the caller's REPROBUILD_*
    settings cleared (a test names its mirrors and stores itself)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("REPROBUILD_")}
    full.update(env or {})
    return subprocess.run(
        [*prefix, sys.executable, "-m", "reprobuild", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=full,
        timeout=timeout,
    )
