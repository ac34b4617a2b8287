"""Time OCI export of a realistic tree against ``tar | gzip -n`` of the same tree.

The tree is every package of the local mirror's pool unpacked into one root
(merged /usr, as a debootstrap would), about 140 MB. Run as root so owners
survive: ``.venv/bin/python bench/_export_oci.py [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from reprobuild.archives.debian.unpack import setup_merged_usr, unpack_data
from reprobuild.errors import ReprobuildError
from reprobuild.export.oci import ImageConfig, diff_layer, write_oci_layout
from reprobuild.tree import write_canonical_tar

POOL = Path("/work/shared/mirrors/debian/archive/debian/20260711T101637Z/pool")
EPOCH = 1783766197


def _timed(label: str, action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    elapsed = time.perf_counter() - start
    print(f"  {label:<34} {elapsed:8.2f} s", flush=True)
    return elapsed


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pool", type=Path, default=POOL)
    parser.add_argument("--keep", type=Path, help="work in DIR and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-oci-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        root = work / "root"
        if root.exists():
            shutil.rmtree(root)
        root.mkdir()
        setup_merged_usr(root, "amd64")
        debs = sorted(args.pool.rglob("*.deb"))
        skipped = 0
        start = time.perf_counter()
        lower = work / "lower.tar"
        for number, deb in enumerate(debs):
            if number == len(debs) * 4 // 5:  # a base layer: the first 80 % of packages
                with open(lower, "wb") as handle:
                    write_canonical_tar(root, handle, epoch=EPOCH)
            try:
                unpack_data(deb, root, conffiles_in_place=True)
            except ReprobuildError as exc:
                skipped += 1
                print(f"  skipped {deb.name}: {exc.message}", file=sys.stderr)
        print(
            f"unpacked {len(debs) - skipped}/{len(debs)} packages "
            f"in {time.perf_counter() - start:.1f} s"
        )
        tar = work / "tree.tar"
        with open(tar, "wb") as handle:
            write_canonical_tar(root, handle, epoch=EPOCH)
        mib = tar.stat().st_size / 2**20
        print(f"canonical tar: {mib:.1f} MiB\n")

        results: dict[str, tuple[float, int]] = {}
        config = ImageConfig(cmd=["/bin/sh"], tag="bench")

        def ours(compression: str) -> None:
            dest = work / f"oci-{compression}"
            shutil.rmtree(dest, ignore_errors=True)
            seconds = _timed(
                f"OCI layout, {compression}",
                lambda: write_oci_layout([tar], config, dest, compression=compression, epoch=EPOCH),  # type: ignore[arg-type]
            )
            results[compression] = (seconds, _size(dest))

        def tool(name: str, command: str, out: Path) -> None:
            seconds = _timed(name, lambda: subprocess.run(command, shell=True, check=True))
            results[name] = (seconds, out.stat().st_size)

        # each contender right after its reference (the machine is shared)
        ours("none")
        for level in ("", "-9"):
            out = work / f"plain{level}.tar.gz"
            tool(f"tar|gzip{level}", f"tar -C {root} -cf - . | gzip -n {level} > {out}", out)
            if not level:
                ours("gzip")
        out = work / "plain.tar.zst"
        tool("tar|zstd-19", f"tar -C {root} -cf - . | zstd -q -19 -T1 > {out}", out)
        ours("zstd")
        dest = work / "oci-two-layers"
        shutil.rmtree(dest, ignore_errors=True)
        seconds = _timed(
            "OCI layout, gzip, 2 layers (80/20)",
            lambda: write_oci_layout([lower, tar], config, dest, compression="gzip", epoch=EPOCH),
        )
        results["gzip 2 layers"] = (seconds, _size(dest))
        with open(work / "diff.tar", "wb") as handle:
            _timed("diff_layer alone (80/20)", lambda: diff_layer(lower, tar, handle))
        print(f"  diff layer: {(work / 'diff.tar').stat().st_size / 2**20:.1f} MiB")

        base_time, base_size = results["tar|gzip"]
        goals = (("gzip", "tar|gzip", 1.2), ("zstd", "tar|zstd-19", 1.0))
        print(f"\nload average now: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        for name, ref, goal in goals:
            ratio = results[name][0] / results[ref][0]
            verdict = "met" if ratio <= goal else "NOT met"
            print(f"GOAL {name} layer / {ref}: {ratio:.2f}x (goal {goal}x, {verdict})")
        print(f"\n{'variant':<14} {'seconds':>8} {'MiB':>8} {'time ratio':>11} {'size ratio':>11}")
        for name, (seconds, size) in results.items():
            print(
                f"{name:<14} {seconds:8.2f} {size / 2**20:8.1f} "
                f"{seconds / base_time:11.2f} {size / base_size:11.3f}"
            )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
