#!/usr/bin/env python3
"""Store throughput on a generated file, against plain coreutils.

Ingest (``Store.put_file``: sha256 + copy + fsync + rename) is compared with
``sha256sum FILE && cp FILE DEST && sync`` on the same file, alternating
ROUNDS times because the disk's state drifts; medians and their ratio are
printed. Export, verify, push and pull (to/from a bare git repository on a
local path) are timed once. Usage: ``bench/store.py [SIZE_MB]`` (default 1024).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from reprobuild.store import Blob, Output, StepRecord, Store

ROUNDS = 3


def _gen(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for i in range(size >> 20):  # distinct 1 MiB blocks, cheap to make
            f.write(i.to_bytes(8, "little") + block[8:])
        f.flush()
        os.fsync(f.fileno())


def _timed(label: str, size: int, fn: Callable[[], object]) -> float:
    subprocess.run(["sync"], check=True)
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    print(f"{label:44s} {dt:7.2f} s {size / dt / 1e6:8.0f} MB/s", flush=True)
    return dt


def main() -> int:
    size_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    size = size_mb << 20
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        root = Path(tmp)
        src = root / "input.bin"
        _gen(src, size)
        print(f"file: {size_mb} MiB (incompressible), {os.cpu_count()} CPUs")

        def coreutils() -> None:
            subprocess.run(["sha256sum", str(src)], check=True, stdout=subprocess.DEVNULL)
            subprocess.run(["cp", str(src), str(root / "cp.bin")], check=True)
            subprocess.run(["sync"], check=True)

        store = Store.open(root / "store")
        blobs: list[Blob] = []
        base_runs: list[float] = []
        our_runs: list[float] = []
        for _ in range(ROUNDS):
            base_runs.append(_timed("sha256sum FILE && cp FILE DEST && sync", size, coreutils))
            (root / "cp.bin").unlink()
            our_runs.append(
                _timed(
                    "Store.put_file (sha256 + copy + fsync)",
                    size,
                    lambda: blobs.append(store.put_file(src)),
                )
            )
            store.content.remove(blobs[-1].sha256)
        blob = store.put_file(src)
        _timed(
            "Store.export (copy + verify + fsync)",
            size,
            lambda: store.export(blob.sha256, root / "out.bin"),
        )
        (root / "out.bin").unlink()
        _timed("Store.verify (re-hash everything)", size, store.verify)
        key = "0" * 64
        out = Output("big", blob.sha256, blob.size)
        store.record_step(key, StepRecord(kind="bench", key=key, outputs=(out,)))
        remote = root / "remote.git"
        _timed("Store.push to a bare repo (path)", size, lambda: store.push(str(remote)))
        other = Store.open(root / "other")
        _timed("Store.pull from it into an empty store", size, lambda: other.pull(str(remote)))
        assert other.verify().ok
        store.close()
        other.close()
        base, ours = statistics.median(base_runs), statistics.median(our_runs)
        print(
            f"ingest, median of {ROUNDS}: coreutils {size / base / 1e6:.0f} MB/s, "
            f"Store.put_file {size / ours / 1e6:.0f} MB/s, "
            f"ratio {base / ours:.2f}x (above 1: the store is faster)"
        )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of this process: {peak:.0f} MiB (counts mmapped pack pages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
