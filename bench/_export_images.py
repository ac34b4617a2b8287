#!/usr/bin/env python3
"""Image exports of a real ~140 MB tree, against the bare tools on the same tree.

All .deb files of the shared bookworm mirror are unpacked (merged /usr) into
a temporary root and written as a canonical tar. Then, ROUNDS times each,
median wall time of:

* ISO: ``export_iso`` vs ``xorriso -map TREE / -commit`` (no fixed dates,
  no sorted insertion);
* ext4: ``export_disk(filesystem="ext4")`` vs ``mkfs.ext4 -d TREE`` on a
  file of the partition's size (no GPT, no debugfs pass, no copy into the
  disk);
* squashfs: ``export_squashfs`` vs ``mksquashfs TREE IMG``;
* cpio: ``export_cpio`` vs ``find . | cpio -o -H newc`` (both uncompressed).

Our exports include extracting the canonical tar (the reference tools start
from the already extracted tree) and hashing the artefact; the ratio prints
what determinism and the tar-as-input interface cost. Run as root:
``.venv/bin/python bench/_export_images.py [ROUNDS]`` (default 3).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from reprobuild.archives.debian.unpack import setup_merged_usr, unpack_data
from reprobuild.export.cpio import export_cpio
from reprobuild.export.disk import export_disk
from reprobuild.export.iso import export_iso
from reprobuild.export.squashfs import export_squashfs
from reprobuild.export.tools import tool_env
from reprobuild.tree import write_canonical_tar

POOL = (
    Path(__file__).resolve().parents[1].parent
    / "shared/mirrors/debian/archive/debian/20260711T101637Z/pool"
)
EPOCH = 1_783_000_000
DISK = "1G"


def _median(fn: Callable[[], object], rounds: int, reset: Callable[[], None]) -> float:
    times = []
    for _ in range(rounds):
        reset()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _run(argv: list[str], **kw: object) -> None:
    subprocess.run(argv, check=True, capture_output=True, env=tool_env(), **kw)  # type: ignore[call-overload]


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    debs = sorted(POOL.rglob("*.deb"))
    if not debs:
        sys.exit(f"no .deb files under {POOL}")
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        base = Path(tmp)
        tree = base / "tree"
        tree.mkdir()
        setup_merged_usr(tree, "amd64")
        for deb in debs:
            unpack_data(deb, tree, conffiles_in_place=True)
        tar = base / "tree.tar"
        with open(tar, "wb") as handle:
            write_canonical_tar(tree, handle, epoch=EPOCH)
        members = sum(1 for _ in tree.rglob("*"))
        print(
            f"tree: {len(debs)} packages, {members} entries, tar {tar.stat().st_size / 1e6:.0f} MB"
        )
        out = base / "out"
        out.mkdir()

        def reset() -> None:
            shutil.rmtree(out)
            out.mkdir()

        rows: list[tuple[str, float, float]] = []
        ours = _median(
            lambda: export_iso(tar, out / "a.iso", epoch=EPOCH, seed="b", volume_id="BENCH"),
            rounds,
            reset,
        )
        ref = _median(
            lambda: _run(
                [
                    "xorriso",
                    "-no_rc",
                    "-outdev",
                    str(out / "r.iso"),
                    "-joliet",
                    "on",
                    "-map",
                    str(tree),
                    "/",
                    "-commit",
                ]
            ),
            rounds,
            reset,
        )
        rows.append(("iso (xorriso)", ours, ref))

        ext4 = export_disk(tar, base / "probe.raw", epoch=EPOCH, seed="b", size=DISK)
        (base / "probe.raw").unlink()
        part = ext4.partition_size

        def mkfs() -> None:
            with open(out / "r.ext4", "wb") as handle:
                handle.truncate(part)
            _run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(out / "r.ext4")])

        ours = _median(
            lambda: export_disk(tar, out / "a.raw", epoch=EPOCH, seed="b", size=DISK),
            rounds,
            reset,
        )
        rows.append((f"ext4 disk {DISK} (mkfs.ext4 -d)", ours, _median(mkfs, rounds, reset)))

        ours = _median(lambda: export_squashfs(tar, out / "a.sqfs", epoch=EPOCH), rounds, reset)
        ref = _median(
            lambda: _run(["mksquashfs", str(tree), str(out / "r.sqfs"), "-comp", "zstd", "-quiet"]),
            rounds,
            reset,
        )
        rows.append(("squashfs zstd (mksquashfs)", ours, ref))

        ours = _median(lambda: export_cpio(tar, out / "a.cpio", epoch=EPOCH), rounds, reset)

        def gnu_cpio() -> None:
            with open(out / "r.cpio", "wb") as handle:
                names = subprocess.run(
                    ["find", "."], cwd=tree, capture_output=True, check=True
                ).stdout
                subprocess.run(
                    ["cpio", "-o", "-H", "newc", "--quiet"],
                    cwd=tree,
                    input=names,
                    stdout=handle,
                    check=True,
                )

        rows.append(("cpio newc (GNU cpio)", ours, _median(gnu_cpio, rounds, reset)))

        print(f"{'format (reference)':34} {'ours':>8} {'ref':>8} {'ratio':>7}")
        for name, a, b in rows:
            print(f"{name:34} {a:7.2f}s {b:7.2f}s {a / b:6.2f}x")
    os.sync()


if __name__ == "__main__":
    main()
