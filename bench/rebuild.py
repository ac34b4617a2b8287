#!/usr/bin/env python3
"""A cold build against a rebuild of the unchanged recipe (issue: store and executor).

Builds an `essential` Debian root from the shared mirror (or the embedded demo
snapshot when the mirror is absent) into a fresh store, then builds it again:
prints both wall times and the ratio; the budget is 5%.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "mirrors" / "debian" / "archive" / "debian"
BUDGET = 0.05


def main() -> int:
    if SHARED.exists():
        mirror, variant, pkgs = SHARED.as_uri() + "/", "essential", '"busybox-static"'
    else:
        mirror = (ROOT / "snapshots" / "demo" / "archive" / "debian").as_uri() + "/"
        variant, pkgs = "none", '"busybox-static" "base-files" "netbase" "tzdata"'
    recipe = (
        'let snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; '
        'suites = [ "bookworm" ]; };\n'
        f'in {{ t = tarball {{ root = rootfs {{ snapshot = snap; variant = "{variant}"; '
        f'packages = [ {pkgs} ]; }}; compression = "zstd"; }}; }}\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPROBUILD_")}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "r.repro").write_text(recipe)
        argv = [
            sys.executable,
            "-m",
            "reprobuild",
            "build",
            "--json",
            "--store",
            str(work / "store"),
            "--mirror",
            f"debian={mirror}",
            "r.repro",
        ]
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            out = subprocess.run(
                argv, cwd=work, env=env, check=True, capture_output=True, text=True
            )
            times.append(time.perf_counter() - t0)
            steps = json.loads(out.stdout)["steps"]
        cold, warm = times
    print(f"cold build ({variant})    {cold:7.2f} s")
    counts = f"{steps['run']} steps run, {steps['cached']} cached"
    print(f"rebuild, unchanged       {warm:7.2f} s  ({counts})")
    print(f"ratio                    {warm / cold:7.1%}  (budget {BUDGET:.0%})")
    return 0 if warm / cold < BUDGET and steps["run"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
