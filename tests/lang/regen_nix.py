#!/usr/bin/env python3
"""Regenerate the golden ``eval-okay-*.exp.json`` files with the reference evaluator.

The reference is Nix 2.8 (Debian's ``nix-bin``).  Every ``eval-okay-NAME.repro``
in this directory is evaluated with::

    nix-instantiate --eval --strict --json FILE

and the output is normalised (``json.dumps(obj, sort_keys=True, indent=2) + "\\n"``)
into ``eval-okay-NAME.exp.json``.  With ``--check-fail`` it also checks that every
``eval-fail-*.repro`` really fails under Nix, except ``eval-fail-step-*`` (they
use reprobuild's step constructors) and those whose first line says
``reprobuild only`` (failures Nix does not share, such as leaving the tree).

This script is run by hand; it is not part of the test suite.  It exits 0 with a
message when ``nix-instantiate`` is not installed.

Usage::

    python3 tests/lang/regen_nix.py [--check] [--check-fail] [NAME_GLOB]

``--check`` compares instead of writing (exit 1 on a difference).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def nix_env(state: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["NIX_REMOTE"] = ""
    env["NIX_STATE_DIR"] = str(state / "state")
    env["NIX_STORE_DIR"] = str(state / "store")
    env["NIX_LOG_DIR"] = str(state / "log")
    (state / "state").mkdir(parents=True, exist_ok=True)
    (state / "store").mkdir(parents=True, exist_ok=True)
    (state / "log").mkdir(parents=True, exist_ok=True)
    return env


def run_nix(nix: str, path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [nix, "--eval", "--strict", "--json", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=HERE,
        timeout=60,
        check=False,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument("--check-fail", action="store_true", help="also check eval-fail-*")
    parser.add_argument("glob", nargs="?", default="*", help="NAME glob (default: all)")
    args = parser.parse_args()

    nix = shutil.which("nix-instantiate")
    if nix is None:
        print("regen_nix: nix-instantiate not found; skipping (apt-get install nix-bin)")
        return 0

    problems = 0
    with tempfile.TemporaryDirectory(prefix="regen-nix-") as tmp:
        env = nix_env(Path(tmp))
        for src in sorted(HERE.glob(f"eval-okay-{args.glob}.repro")):
            exp = src.with_name(src.name[: -len(".repro")] + ".exp.json")
            proc = run_nix(nix, src, env)
            if proc.returncode != 0:
                print(f"FAIL  {src.name}: nix failed:\n{proc.stderr}", file=sys.stderr)
                problems += 1
                continue
            text = json.dumps(json.loads(proc.stdout), sort_keys=True, indent=2) + "\n"
            if args.check:
                old = exp.read_text(encoding="utf-8") if exp.exists() else None
                if old != text:
                    print(f"DIFF  {exp.name}", file=sys.stderr)
                    problems += 1
            else:
                exp.write_text(text, encoding="utf-8")
                print(f"wrote {exp.name}")

        if args.check_fail:
            for src in sorted(HERE.glob(f"eval-fail-{args.glob}.repro")):
                first = src.read_text(encoding="utf-8").split("\n", 1)[0]
                if src.name.startswith("eval-fail-step-") or "reprobuild only" in first:
                    continue
                proc = run_nix(nix, src, env)
                if proc.returncode == 0:
                    print(f"FAIL  {src.name}: nix succeeded: {proc.stdout}", file=sys.stderr)
                    problems += 1
                else:
                    last = proc.stderr.strip().splitlines()
                    print(f"ok    {src.name}: {last[0] if last else '?'}")

    if problems:
        print(f"regen_nix: {problems} problem(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
