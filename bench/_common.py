"""Helpers shared by the benchmarks (not a benchmark: ``make bench`` skips ``_*.py``).

A loopback HTTP server for a mirror directory, timing, the reprobuild CLI
run in a subprocess (so the server thread in the bench process does not
share a GIL with the build), and a least-squares line fit (numpy is not a
dependency).
"""

from __future__ import annotations

import http.server
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "mirrors" / "debian" / "archive" / "debian"
SHARED_TS = "20260711T101637Z"
SHARED_DATE = "2026-07-11T10:16:37Z"
KEYRING = ROOT / "snapshots" / "keyrings" / "debian-archive-keyring.gpg"
EPOCH = "1783765000"

if str(ROOT) not in sys.path:  # tests.support lives beside reprobuild
    sys.path.insert(0, str(ROOT))


def machine() -> str:
    """One line naming where the figures come from (for the README)."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = os.getloadavg()[0]
    return (
        f"{os.cpu_count()} CPUs ({model}), {mem:.0f} GiB RAM, Linux {platform.release()}, "
        f"Python {platform.python_version()}, load average {load:.1f} at start"
    )


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPROBUILD_")}
    env.update(extra)
    return env


@contextmanager
def served(root: Path) -> Iterator[str]:
    """Serve *root* over HTTP on 127.0.0.1; yields the base URL (ending in /).

    The standard library's file server (apt, unlike reprobuild, needs its
    conditional and HEAD requests, which tests/support/mirror.py lacks).
    """

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, directory=str(root), **kw)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def best_of(rounds: int, action: Callable[[], object]) -> float:
    return min(timed(action) for _ in range(rounds))


def reprobuild(cwd: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    """Run the real CLI; raise with its stderr when it fails."""
    r = subprocess.run(
        [sys.executable, "-m", "reprobuild", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=timeout,
        check=False,
    )
    if r.returncode != 0:
        raise SystemExit(f"reprobuild {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
    return r


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float]:
    """Least squares y = a*x + b: (slope a, intercept b, R^2)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx if sxx else 0.0
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (slope * x + intercept)) ** 2 for x, y in zip(xs, ys, strict=True))
    r2 = 1.0 - ss_res / ss_tot if ss_tot else 1.0
    return slope, intercept, r2
