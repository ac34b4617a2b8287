#!/usr/bin/env python3
"""Start-up time of `reprobuild eval` on a small recipe, against `python -c pass`.

Prints the median wall time of each over N runs and their ratio; exits 1 when
reprobuild's median is over the 0.3 s budget (issue: Foundation). Also prints
``reprobuild --help`` (goal: under 0.2 s; the language, store and diff tools
are imported only by the commands that use them).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 15
BUDGET_S = 0.3
HELP_GOAL_S = 0.2
RECIPE = 'let x = { a = 1; b = [ "two" 3 ]; }; in x // { c = x.a + 1; }\n'


def median_wall(cmd: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        recipe = Path(tmp) / "small.repro"
        recipe.write_text(RECIPE)
        cmd = [sys.executable, "-m", "reprobuild", "eval", str(recipe)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)  # warm the parser cache
        ours = median_wall(cmd)
        base = median_wall([sys.executable, "-c", "pass"])
        helped = median_wall([sys.executable, "-m", "reprobuild", "--help"])
    print(f"python -c pass        {base * 1000:7.1f} ms")
    print(f"reprobuild eval small {ours * 1000:7.1f} ms")
    print(f"ratio                 {ours / base:7.2f}x  (budget {BUDGET_S * 1000:.0f} ms)")
    print(f"reprobuild --help     {helped * 1000:7.1f} ms  (goal {HELP_GOAL_S * 1000:.0f} ms)")
    return 0 if ours < BUDGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
