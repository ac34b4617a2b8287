"""Make ``store-v1.tar.gz``: a store and a git remote in the first store format.

Run once with the code of format 1 (before content-defined chunks) from the
repository root: ``.venv/bin/python tests/store/data/make_store_v1.py``. The
tarball is committed; tests/store/test_migrate.py reads it with today's code.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
import tempfile
from pathlib import Path

from reprobuild.store import BuildRecord, Output, StepRecord, Store

HERE = Path(__file__).resolve().parent


def payload(seed: int, size: int) -> bytes:
    """Sparse (so the tarball stays small): a numbered line every 4 KiB, zeros between."""
    out = bytearray(size)
    for i in range(0, size, 4096):
        line = b"%d:%d:%s\n" % (seed, i, hashlib.sha256(b"%d-%d" % (seed, i)).hexdigest().encode())
        out[i : i + len(line)] = line[: size - i]
    return bytes(out)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with Store.open(root / "store") as s:
            small = s.put_bytes(b"hello v1\n")
            big = s.put_bytes(payload(1, 5 << 20 | 12345))
            big2 = s.put_bytes(payload(2, 9 << 20 | 777))
            k1, k2 = "a" * 64, "b" * 64
            s.record_step(k1, StepRecord("fetch", k1, outputs=(Output("x", small.sha256, small.size),)))
            s.record_step(
                k2,
                StepRecord(
                    "run",
                    k2,
                    inputs=(k1,),
                    outputs=(Output("root.tar", big.sha256, big.size),
                             Output("img", big2.sha256, big2.size)),
                ),
            )
            s.record_build(
                "demo",
                BuildRecord("demo", steps=(k1, k2), outputs=(Output("img", big2.sha256, big2.size),)),
                timestamp=1700000000,
            )
            s.push(str(root / "remote.git"))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as t:
            for name in ("store", "remote.git"):
                t.add(root / name, arcname=name)
        (HERE / "store-v1.tar.gz").write_bytes(buf.getvalue())
        print(f"wrote {HERE / 'store-v1.tar.gz'}: {len(buf.getvalue())} bytes; "
              f"big {big.sha256} big2 {big2.sha256} small {small.sha256}", file=sys.stderr)
        os.sync()


if __name__ == "__main__":
    main()
