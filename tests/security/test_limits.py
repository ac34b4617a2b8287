"""Row 'medium-low' of issue 18: resource limits of the sandbox, a bounded diff."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from reprobuild.errors import ReprobuildError
from reprobuild.sandbox import SandboxSpec, run
from tests.support.cli import reprobuild

EPOCH = 1_783_765_000


@pytest.mark.parametrize(
    ("script", "setting", "value"),
    [
        # a 64 MiB file in /tmp: the tmpfs holds 16 MiB
        ("dd if=/dev/zero of=/tmp/fill bs=1M count=64", "REPROBUILD_SANDBOX_TMPFS", "16M"),
        # a 64 MiB file in the tree: no file may pass 8 MiB
        ("dd if=/dev/zero of=/big bs=1M count=64", "REPROBUILD_SANDBOX_FILE_SIZE", "8M"),
        # a 512 MiB buffer: at most 64 MiB of memory per process
        ("dd if=/dev/zero of=/dev/null bs=512M count=1", "REPROBUILD_SANDBOX_MEMORY", "64M"),
        # 200 processes at once: at most 20
        (
            "i=0; while [ $i -lt 200 ]; do sleep 2 & i=$((i+1)); done; wait",
            "REPROBUILD_SANDBOX_PROCESSES",
            "20",
        ),
    ],
    ids=["tmpfs", "file-size", "memory", "processes"],
)
def test_a_run_step_meets_its_limits_with_an_error_naming_it(
    busybox_root: Path, monkeypatch: pytest.MonkeyPatch, script: str, setting: str, value: str
) -> None:
    monkeypatch.setenv(setting, value)
    spec = SandboxSpec(
        root=busybox_root,
        command=("/bin/sh", "-c", "set -e; " + script),
        epoch=EPOCH,
        what="run step 'hog'",
    )
    with pytest.raises(ReprobuildError) as info:  # SandboxLimitExceeded
        run(spec, timeout=120)
    assert "run step 'hog'" in info.value.message and setting in info.value.message


def test_diff_does_not_decompress_without_bound(tmp_path: Path) -> None:
    zeros = bytes(64 << 20)
    (tmp_path / "a.gz").write_bytes(gzip.compress(zeros, mtime=0))
    (tmp_path / "b.gz").write_bytes(gzip.compress(zeros + b"!", mtime=0))
    assert (tmp_path / "a.gz").stat().st_size < 1 << 20  # a small input
    r = reprobuild(
        tmp_path, "diff", "a.gz", "b.gz", env={"REPROBUILD_DIFF_MAX_SCRATCH": str(16 << 20)}
    )
    # compared as bytes instead, saying why; nothing larger than the limit was written
    assert r.returncode == 1, r.stdout + r.stderr
    assert "REPROBUILD_DIFF_MAX_SCRATCH" in r.stdout + r.stderr and "Traceback" not in r.stderr
