#!/usr/bin/env python3
"""A cold build against rebuilds of the unchanged recipe (the warm build).

Builds an `essential` Debian root from the shared mirror (or the embedded demo
snapshot when the mirror is absent) into a fresh store, as a zstd tarball and
as a 1 GiB ext4 disk image, then builds the unchanged recipe again, ROUNDS
times. Prints the cold time, each warm time, and, measured in the same run:

* the warm build against the cold one (budget 5%);
* the warm build against the 0.3 s goal, whatever the outputs' size (the
  outputs already in place are not copied again: reprobuild/outstate.py);
* the warm build against a new interpreter that only imports the CLI
  (``python -c 'import reprobuild.cli'``): the floor any CLI run pays;
* the warm build against the same rebuild after the outputs were deleted
  from the out directory (so they are copied out of the store again: what
  every rebuild did before), which shows what the outputs' size costs;
* CPU time (user + system, the build's children included) beside wall time:
  on a machine shared with other jobs the wall time is mostly waiting for a
  CPU.

Byte-code caching is left on (``PYTHONDONTWRITEBYTECODE`` is dropped from
the environment), as in an installed reprobuild: without it a third of a
warm build was spent compiling reprobuild's sources.

``.venv/bin/python bench/rebuild.py [ROUNDS]`` (default 5).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "mirrors" / "debian" / "archive" / "debian"
BUDGET = 0.05
GOAL_S = 0.3


def _timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds, stdout) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, out.stdout


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 5
    if SHARED.exists():
        mirror, variant, pkgs = SHARED.as_uri() + "/", "essential", '"busybox-static"'
    else:
        mirror = (ROOT / "snapshots" / "demo" / "archive" / "debian").as_uri() + "/"
        variant, pkgs = "none", '"busybox-static" "base-files" "netbase" "tzdata"'
    recipe = (
        'let snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; '
        'suites = [ "bookworm" ]; };\n'
        f'  root = rootfs {{ snapshot = snap; variant = "{variant}"; packages = [ {pkgs} ]; }};\n'
        'in { t = tarball { inherit root; compression = "zstd"; };\n'
        '     disk = disk_image { inherit root; size = "1G"; filesystem = "ext4"; }; }\n'
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("REPROBUILD_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="bench-rebuild-") as tmp:
        work = Path(tmp)
        (work / "r.repro").write_text(recipe)
        argv = [sys.executable, "-m", "reprobuild", "build", "--json"]
        argv += ["--store", str(work / "store"), "--mirror", f"debian={mirror}", "r.repro"]
        cold, _, stdout = _timed(argv, work, env)
        summary = json.loads(stdout)
        outputs = [work / o["path"] for o in summary["outputs"].values()]
        size = sum(p.stat().st_size for p in outputs)
        _timed([sys.executable, "-c", "import reprobuild.cli"], work, env)  # byte-code cached
        warm, warm_cpu, floor, copied, copied_cpu = [], [], [], [], []
        steps = summary["steps"]
        for _ in range(rounds):  # interleaved: the machine is shared
            t, c, stdout = _timed(argv, work, env)
            warm.append(t)
            warm_cpu.append(c)
            steps = json.loads(stdout)["steps"]
            t, _, _ = _timed([sys.executable, "-c", "import reprobuild.cli"], work, env)
            floor.append(t)
            for p in outputs:
                p.unlink()
            t, c, _ = _timed(argv, work, env)
            copied.append(t)
            copied_cpu.append(c)
    med = statistics.median
    w, f, c = med(warm), med(floor), med(copied)
    print(f"outputs                  {size / 2**30:7.2f} GiB (apparent), {len(outputs)} files")
    print(f"cold build ({variant})    {cold:7.2f} s")
    counts = f"{steps['run']} steps run, {steps['cached']} cached"
    rounds_text = ", ".join(f"{x:.2f}" for x in warm)
    print(f"rebuild, unchanged       {w:7.3f} s  median of {rounds} ({counts})")
    print(f"  rounds                 {rounds_text}")
    print(f"  its CPU time           {med(warm_cpu):7.3f} s")
    print(f"rebuild, outputs deleted {c:7.3f} s  (copied out of the store again)")
    print(f"  its CPU time           {med(copied_cpu):7.3f} s")
    print(f"import reprobuild.cli    {f:7.3f} s  (the floor of any CLI run)")
    print(f"warm / cold              {w / cold:7.1%}  (budget {BUDGET:.0%})")
    verdict = "met" if w <= GOAL_S else "NOT met"
    print(f"warm / goal {GOAL_S} s        {w / GOAL_S:7.2f}x  ({verdict})")
    print(f"warm / CLI import floor  {w / f:7.2f}x")
    print(f"warm / outputs deleted   {w / c:7.2f}x  (CPU {med(warm_cpu) / med(copied_cpu):.2f}x)")
    print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0 if w / cold < BUDGET and steps["run"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
