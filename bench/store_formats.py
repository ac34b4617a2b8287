#!/usr/bin/env python3
"""Store ingest and export of the files a build really stores, against coreutils.

Issue 23's store_scale.py found two slow cases: a canonical tar full of
``.gz`` members (each one a candidate for re-compression) was ingested at
2.8 MB/s, and an OCI archive's gzip layer, kept as its decompressed bytes and
re-made with zlib level 9 on one CPU, was ingested and exported at 0.4 to
0.5 MB/s. Here, on the same machine in the same run, for

* ``tree.tar``: the canonical tar of ``/usr/share/doc`` (thousands of ``.gz``
  files, each aligned where a tar member starts);
* ``layer.tar.gz``: that tar compressed by reprobuild (gzip-blocks, kept as
  its decompressed chunks and re-made on read);
* ``old.tar.gz``: the same as a zlib level 9 stream (what reprobuild wrote
  before; still derived, method ``gzip``);

``Store.put_file`` is timed against ``sha256sum FILE && cp FILE DEST && sync``
and ``Store.export`` against ``cat FILE > DEST && sync``, interleaved, ROUNDS
times (medians). Ratios above 1 mean the store is slower. A derived gzip
file is decompressed and compressed again by the store (at ingest, to check
that it re-makes byte for byte, and on every export), so for those the
intrinsic reference is also printed: ``gzip -dc FILE | gzip -n > /dev/null``
(one CPU; the store compresses on all of them).
Usage: ``.venv/bin/python bench/store_formats.py [ROUNDS]`` (default 3).
"""

from __future__ import annotations

import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from reprobuild.export.tar import export_tarball
from reprobuild.store import Store
from reprobuild.tree import write_canonical_tar

SOURCE = Path("/usr/share/doc")


def _timed(fn: Callable[[], object]) -> float:
    subprocess.run(["sync"], check=True)
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _old_gzip(src: Path, dest: Path) -> None:
    data = src.read_bytes()
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS, 9)
    body = comp.compress(data) + comp.flush()
    trailer = struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    dest.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + body + trailer)


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="bench-store-formats-") as tmp:
        root = Path(tmp)
        tree = root / "tree.tar"
        with open(tree, "wb") as handle:
            write_canonical_tar(SOURCE, handle, epoch=0)
        export_tarball(tree, root / "layer.tar.gz", "gzip")
        _old_gzip(tree, root / "old.tar.gz")
        rows = []
        dest = root / "cp.bin"
        for name in ("tree.tar", "layer.tar.gz", "old.tar.gz"):
            src = root / name
            size = src.stat().st_size
            put, cp, out, cat, regz = [], [], [], [], []
            for _ in range(rounds):
                if name.endswith(".gz"):

                    def regzip(src: Path = src) -> None:
                        command = f"gzip -dc {src} | gzip -n > /dev/null"
                        subprocess.run(command, shell=True, check=True)

                    regz.append(_timed(regzip))

                def coreutils(src: Path = src) -> None:
                    subprocess.run(["sha256sum", str(src)], check=True, stdout=subprocess.DEVNULL)
                    subprocess.run(["cp", str(src), str(dest)], check=True)
                    subprocess.run(["sync"], check=True)

                cp.append(_timed(coreutils))
                dest.unlink()
                with Store.open(root / "store") as store:
                    blob = None

                    def ingest(store: Store = store, src: Path = src) -> None:
                        nonlocal blob
                        blob = store.put_file(src)

                    put.append(_timed(ingest))
                    assert blob is not None
                    sha = blob.sha256

                    def cat_out(src: Path = src) -> None:
                        with open(dest, "wb") as f:
                            subprocess.run(["cat", str(src)], check=True, stdout=f)
                        subprocess.run(["sync"], check=True)

                    cat.append(_timed(cat_out))
                    dest.unlink()

                    def export(store: Store = store, sha: str = sha) -> None:
                        store.export(sha, dest)

                    out.append(_timed(export))
                    dest.unlink()
                subprocess.run(["rm", "-rf", str(root / "store")], check=True)  # fresh each round
            med = statistics.median
            rows.append((name, size, med(put), med(cp), med(out), med(cat), regz and med(regz)))
    print(
        f"{'file':14} {'MB':>6} {'ingest MB/s':>12} {'cp MB/s':>9} {'ratio':>6}"
        f" {'export MB/s':>12} {'cat MB/s':>9} {'ratio':>6}"
    )
    for name, size, put_s, cp_s, out_s, cat_s, regz_s in rows:
        mb = size / 1e6
        line = (
            f"{name:14} {mb:6.0f} {mb / put_s:12.1f} {mb / cp_s:9.1f} {put_s / cp_s:6.2f}"
            f" {mb / out_s:12.1f} {mb / cat_s:9.1f} {out_s / cat_s:6.2f}"
        )
        if regz_s:
            line += f" {mb / regz_s:13.1f} {put_s / regz_s:15.2f} {out_s / regz_s:15.2f}"
        print(line)
    print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
