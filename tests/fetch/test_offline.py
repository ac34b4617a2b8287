"""Offline, a build fails fast (issue 15): a host that cannot be resolved or
reached fails the first request (with its retries) and every later one at once."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from reprobuild.errors import FetchError
from reprobuild.fetch import Fetcher, FetchPolicy
from tests.support.cli import reprobuild
from tests.support.mirror import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_an_unreachable_host_is_tried_once_per_run() -> None:
    slept: list[float] = []
    fetcher = Fetcher(FetchPolicy(retries=2, backoff=0.01, timeout=2.0), sleep=slept.append)
    port = free_port()  # nothing listens there: connection refused
    with pytest.raises(FetchError, match="gave up after 3 attempts"):
        fetcher.get(f"http://127.0.0.1:{port}/a.deb")
    assert len(slept) == 2
    with pytest.raises(FetchError, match="already failed in this run"):
        fetcher.get(f"http://127.0.0.1:{port}/b.deb")
    assert len(slept) == 2  # no retries the second time


def test_offline_build_locked_fails_in_seconds(tmp_path: Path) -> None:
    shutil.copy(ROOT / "recipes" / "demo.repro", tmp_path / "demo.repro")
    shutil.copy(ROOT / "recipes" / "demo.repro.lock", tmp_path / "demo.repro.lock")
    start = time.monotonic()
    r = reprobuild(
        tmp_path,
        "build",
        "--locked",
        "--store",
        str(tmp_path / "store"),
        "--mirror",
        "debian=http://reprobuild-offline.invalid/archive/debian/",
        "demo.repro",
    )
    elapsed = time.monotonic() - start
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert "reprobuild-offline.invalid" in r.stderr
    assert elapsed < 30, elapsed
