#!/usr/bin/env python3
"""Locking an Arch Linux root against ``pacman -Sp`` on the same databases.

Usage: ``bench/arch_lock.py [--quick] [ARCHIVE]`` (default: the shared
``fixtures/arch-archive``, the real core and extra databases of 2022-09-12).

For each target (``base``, ``vim``, ``base-devel``), interleaved round by
round so that a loaded machine slows every contender alike, best of RUNS:

* pacman: ``pacman --config C -Sp --print-format '%n %v' TARGET`` with the two
  databases in a private ``DBPath`` (it reads and parses both each run);
* reprobuild, warm: ``reprobuild lock --update`` of a one-root recipe with
  its parsed-database cache present (reads both databases, checks their
  sha256, resolves, checks every chosen package's signature against the
  archlinux keyring, writes the lockfile), as the CLI (a new interpreter
  each time) and in-process (``reprobuild.api.lock``, the same work without
  the interpreter's start and imports).

Prints each time and the ratios to pacman (goal: at most 2x), and checks
that both choose the same packages. Exits 0 with a note when pacman or the
databases are missing, so ``make bench`` keeps working.
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

from _common import ROOT, clean_env, machine

from reprobuild import api
from reprobuild.locking import Sources

ARCHIVE = ROOT.parent / "shared" / "fixtures" / "arch-archive"
DAY = ("2022", "09", "12")
TARGETS = ("base", "vim", "base-devel")
GOAL = 2.0


def pacman_conf(work: Path, archive: Path) -> Path:
    sync = work / "db" / "sync"
    sync.mkdir(parents=True)
    (work / "root").mkdir()
    for repo in ("core", "extra"):
        shutil.copy(archive.joinpath("repos", *DAY, repo, "os", "x86_64", f"{repo}.db"), sync)
    conf = work / "pacman.conf"
    conf.write_text(
        f"[options]\nRootDir = {work}/root\nDBPath = {work}/db/\nCacheDir = {work}/cache/\n"
        f"LogFile = {work}/log\nGPGDir = {work}/gnupg/\nHookDir = {work}/hooks/\n"
        "Architecture = x86_64\nSigLevel = Never\n\n[core]\nServer = file:///nonexistent\n\n"
        "[extra]\nServer = file:///nonexistent\n"
    )
    return conf


def recipe(work: Path, target: str) -> Path:
    path = work / f"{target}.repro"
    path.write_text(
        'let snap = snapshot { archive = "archlinux"; date = "2022-09-12"; '
        'repos = [ "core" "extra" ]; };\n'
        f'in {{ t = tarball {{ root = rootfs {{ snapshot = snap; variant = "none"; '
        f'packages = [ "{target}" ]; }}; }}; }}\n'
    )
    return path


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("archive", nargs="?", type=Path, default=ARCHIVE)
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 7")
    args = parser.parse_args()
    runs = 3 if args.quick else 7
    pacman = shutil.which("pacman")
    if pacman is None or not args.archive.joinpath("repos", *DAY).is_dir():
        print("arch_lock: skipped (pacman or the 2022 Arch databases are missing)")
        return 0
    print(f"arch_lock: {machine()}")
    with tempfile.TemporaryDirectory(prefix="rb-bench-arch-") as tmp:
        work = Path(tmp)
        conf = pacman_conf(work / "pacman", args.archive)
        cache = work / "cache"
        os.environ["XDG_CACHE_HOME"] = str(cache)  # the in-process locks use it too
        env = clean_env(XDG_CACHE_HOME=str(cache))
        mirror = f"archlinux={args.archive.as_uri()}/"
        sources = Sources.from_env(mirrors=[mirror], environ={}, allow_expired=True)
        cli = [sys.executable, "-m", "reprobuild", "lock", "--update", "--allow-expired"]
        cli.extend(("--mirror", mirror))
        recipes = {t: recipe(work, t) for t in TARGETS}
        cold = timed(lambda: api.lock(recipes["vim"], sources=sources, update=True))
        print(f"cold (empty parse cache) in-process lock of vim: {cold:.3f} s")
        best: dict[tuple[str, str], float] = {}
        sets: dict[tuple[str, str], set[str]] = {}

        def run_pacman(target: str) -> None:
            argv = [pacman, "--config", str(conf), "-Sp", "--noconfirm"]
            argv.extend(("--print-format", "%n %v", target))
            out = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            sets[("pacman", target)] = {line for line in out.splitlines() if line}

        def run_cli(target: str) -> None:
            subprocess.run([*cli, str(recipes[target])], env=env, capture_output=True, check=True)

        def run_lib(target: str) -> None:
            lock = api.lock(recipes[target], sources=sources, update=True).lockfile
            sets[("ours", target)] = {f"{p.name} {p.version}" for p in lock.packages}

        for _ in range(runs):
            for target in TARGETS:
                for kind, fn in (("pacman", run_pacman), ("cli", run_cli), ("lib", run_lib)):
                    t = timed(lambda fn=fn, target=target: fn(target))
                    best[(kind, target)] = min(best.get((kind, target), 9e9), t)
        print(f"best of {runs}, seconds (ratio to pacman -Sp; goal <= {GOAL:g}x):")
        worst_cli = worst_lib = 0.0
        for target in TARGETS:
            p, c, b = (best[(k, target)] for k in ("pacman", "cli", "lib"))
            same = sets[("pacman", target)] == sets[("ours", target)]
            worst_cli, worst_lib = max(worst_cli, c / p), max(worst_lib, b / p)
            print(
                f"  {target:<11} pacman {p:.3f}  reprobuild lock (CLI) {c:.3f} ({c / p:.1f}x)  "
                f"in-process {b:.3f} ({b / p:.2f}x)  "
                f"{len(sets[('ours', target)])} packages, "
                f"{'same set as pacman' if same else 'DIFFERENT SET FROM PACMAN'}"
            )
            if not same:
                return 1
        print(
            f"worst ratio: CLI {worst_cli:.1f}x ({'met' if worst_cli <= GOAL else 'not met'}), "
            f"in-process {worst_lib:.2f}x ({'met' if worst_lib <= GOAL else 'not met'})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
