#!/usr/bin/env python3
"""Cold and warm root tarballs against ``mmdebstrap --mode=root`` (issue: benchmarks).

The shared bookworm mirror is served over HTTP on 127.0.0.1 (so both tools
download, verify and parse the real 50 MB index); for each variant
(``essential``, ``minbase``) this times, best of ROUNDS each:

* mmdebstrap: ``--mode=root --variant=V`` to a .tar, ``SOURCE_DATE_EPOCH`` set;
* reprobuild cold: ``reprobuild build`` of ``tarball { root = rootfs { variant = V; }; }``
  with a fresh store and no lockfile (so it resolves, fetches, unpacks,
  configures, stores);
* reprobuild warm: the same command again on the same store and lockfile.

Rounds alternate between the two tools, so that both see the same machine
load; the best round of each is compared.

Prints the ratios (goal: cold at most 0.5 of mmdebstrap, warm under 2 s) and
whether reprobuild's tarball was identical in every round.
Usage: ``bench/rootfs.py [--quick] [--rounds N] [--tmpfs]``; ``--quick`` is one
round of ``essential`` only; ``--tmpfs`` puts both tools' build trees in
/dev/shm (TMPDIR) to show what the disk costs. Run as root.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import (
    EPOCH,
    KEYRING,
    SHARED,
    SHARED_DATE,
    SHARED_TS,
    best_of,
    clean_env,
    machine,
    reprobuild,
    served,
    timed,
)

COLD_GOAL, WARM_GOAL = 0.5, 2.0


def recipe(variant: str) -> str:
    return (
        f'let snap = snapshot {{ archive = "debian"; date = "{SHARED_DATE}"; '
        'suites = [ "bookworm" ]; };\n'
        f'in {{ t = tarball {{ root = rootfs {{ snapshot = snap; variant = "{variant}"; }}; }}; '
        "}\n"
    )


def mmdebstrap(url: str, variant: str, dest: Path, env: dict[str, str]) -> None:
    subprocess.run(
        [
            "mmdebstrap",
            "--mode=root",
            f"--variant={variant}",
            f"--keyring={KEYRING}",
            '--aptopt=Acquire::Check-Valid-Until "false"',
            "bookworm",
            str(dest),
            f"deb {url}{SHARED_TS} bookworm main",
        ],
        check=True,
        capture_output=True,
        env={**env, "SOURCE_DATE_EPOCH": EPOCH},
        timeout=1200,
    )


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def bench_variant(url: str, variant: str, rounds: int, work: Path, tmpfs: bool) -> None:
    env = clean_env(TMPDIR="/dev/shm") if tmpfs else clean_env()
    ref = work / f"mm-{variant}.tar"
    proj = work / variant
    proj.mkdir()
    (proj / "r.repro").write_text(recipe(variant))
    args = (
        "build",
        "--json",
        "--store",
        str(proj / "store"),
        "--mirror",
        f"debian={url}",
        "r.repro",
    )
    digests: set[str] = set()
    saved = os.environ.get("TMPDIR")
    if tmpfs:
        os.environ["TMPDIR"] = "/dev/shm"

    def cold() -> None:
        shutil.rmtree(proj / "store", ignore_errors=True)
        shutil.rmtree(proj / "out", ignore_errors=True)
        (proj / "r.repro.lock").unlink(missing_ok=True)
        r = reprobuild(proj, *args)
        digests.add(sha256(proj / json.loads(r.stdout)["outputs"]["t"]["path"]))

    # Rounds alternate between the tools, so that both see the same load.
    mm_times: list[float] = []
    cold_times: list[float] = []
    try:
        for _ in range(rounds):
            mm_times.append(timed(lambda: mmdebstrap(url, variant, ref, env)))
            ref.unlink(missing_ok=True)
            cold_times.append(timed(cold))
        t_warm = best_of(max(rounds, 3), lambda: reprobuild(proj, *args))
    finally:
        if tmpfs:
            if saved is None:
                os.environ.pop("TMPDIR", None)
            else:
                os.environ["TMPDIR"] = saved
    t_mm, t_cold = min(mm_times), min(cold_times)
    npkgs = len(json.loads((proj / "r.repro.lock").read_text())["packages"])
    shutil.rmtree(proj, ignore_errors=True)
    print(f"== {variant} ({npkgs} packages), best of {rounds}")
    print(f"mmdebstrap --mode=root      {t_mm:7.2f} s")
    print(
        f"reprobuild cold             {t_cold:7.2f} s   "
        f"ratio {t_cold / t_mm:.2f} (goal <= {COLD_GOAL})"
    )
    paired = sorted(c / m for c, m in zip(cold_times, mm_times, strict=True))
    print(f"per-round ratios (reprobuild / mmdebstrap): {', '.join(f'{r:.2f}' for r in paired)}")
    print(f"reprobuild warm             {t_warm:7.2f} s   (goal < {WARM_GOAL} s)")
    print(
        f"reprobuild tarball identical in every cold round: {'yes' if len(digests) == 1 else 'NO'}"
    )
    sys.stdout.flush()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="one round, essential only")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tmpfs", action="store_true", help="build trees of both tools in /dev/shm")
    a = p.parse_args()
    if not SHARED.exists():
        print(f"bench/rootfs.py: {SHARED} not found; skipped")
        return 0
    if shutil.which("mmdebstrap") is None or os.geteuid() != 0:
        print("bench/rootfs.py: needs mmdebstrap and root; skipped")
        return 0
    rounds = 1 if a.quick else a.rounds
    variants = ("essential",) if a.quick else ("essential", "minbase")
    print(f"machine: {machine()}")
    print(f"build trees in: {'/dev/shm (tmpfs)' if a.tmpfs else tempfile.gettempdir()}")
    with tempfile.TemporaryDirectory(prefix="bench-rootfs-") as tmp, served(SHARED) as url:
        for variant in variants:
            bench_variant(url, variant, rounds, Path(tmp), a.tmpfs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
