#!/usr/bin/env python3
"""How the store scales with what changed (issue 23), on the shared mirror.

One recipe: an ``essential`` root, a ``run`` step writing ``vN`` to ``/tag``
(its output is the whole root again, ~140 MB), and an OCI image of it (gzip
layers). Six variants differ by that one byte. Printed, all measured here in
this run:

* store growth per variant as a fraction of the variant's output bytes (the
  outputs of the steps the variant ran: the run step's tar, the OCI manifest
  and archive); goal <= 10%;
* bytes a push of one more variant adds to a git remote (same fraction; <= 10%);
* the store after ``gc --keep-builds 1`` against its size after the first
  build (<= 1.15x), and that ``store verify`` then passes;
* ``build --cache`` from a remote holding only the build against one that
  also holds 512 MiB of unrelated content: time and peak memory ratios (<= 1.5x);
* ingest and export throughput of the run step's tar and of the OCI archive
  against ``cp`` and ``cat`` of the same bytes.

``--variants N`` and ``--unrelated-mib M`` shrink it for a quick look.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import SHARED, clean_env, machine  # noqa: E402

RECIPE = """let
  snap = snapshot {{ archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ]; }};
  root = rootfs {{ snapshot = snap; variant = "essential"; }};
  tagged = run {{ inherit root; script = "echo v{n} > /tag"; }};
in {{ oci = oci_image {{ root = tagged; }}; }}
"""
_PEAK = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "r = subprocess.run(sys.argv[1:])\n"
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"
    " r.returncode)\n"
)


def du(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except FileNotFoundError:
                continue
    return total


def cli(cwd: Path, *args: str) -> tuple[float, int, str]:
    """Run reprobuild in a fresh wrapper: (seconds, peak RSS in KiB of the build, stdout)."""
    out = tempfile.NamedTemporaryFile(delete=False, dir=cwd)  # noqa: SIM115
    out.close()
    argv = [
        sys.executable,
        "-c",
        _PEAK,
        "sh",
        "-c",
        f'exec "$0" -m reprobuild "$@" > {out.name}',
        sys.executable,
        *args,
    ]
    r = subprocess.run(argv, cwd=cwd, env=clean_env(), capture_output=True, text=True, check=False)
    seconds, peak, rc = r.stdout.split()
    stdout = Path(out.name).read_text()
    os.unlink(out.name)
    if rc != "0":
        raise SystemExit(f"reprobuild {' '.join(args)} failed:\n{r.stderr}")
    return float(seconds), int(peak), stdout


def mb(n: float) -> str:
    return f"{n / 1e6:8.1f} MB"


def build(work: Path, store: Path, n: int, *extra: str) -> tuple[float, int, dict]:  # type: ignore[type-arg]
    (work / "r.repro").write_text(RECIPE.format(n=n))
    mirror = f"debian={SHARED.as_uri()}/"
    secs, peak, out = cli(
        work, "build", "--json", "--store", str(store), "--mirror", mirror, *extra, "r.repro"
    )
    return secs, peak, json.loads(out)


def variant_output_bytes(store: Path) -> int:
    from reprobuild.store import Store

    with Store.open(store, create=False) as s:
        info = s.read_build("r")
        total = 0
        for key in info.record.steps:
            rec = s.lookup_step(key)
            if rec is not None and rec.kind in ("run", "oci_image"):
                total += sum(o.size for o in rec.outputs)
        return total


def unrelated_remote(base: Path, remote: Path, mib: int) -> None:
    """Push ``mib`` MiB of unrelated step content (compressible text, 64 MiB objects)."""
    from reprobuild.store import Output, StepRecord, Store

    with Store.open(base / "unrelated-store") as s:
        for i in range(max(1, mib // 64)):
            path = base / "blob"
            with open(path, "wb") as f:
                for j in range(64):
                    f.write(os.urandom(512 << 10) + (b"unrelated %d %d\n" % (i, j)) * 30000)
            b = s.put_file(path)
            k = f"{0xABC000 + i:064x}"
            s.record_step(k, StepRecord("unrelated", k, outputs=(Output("x", b.sha256, b.size),)))
        path.unlink()
        s.push(str(remote))


def throughput(work: Path, store: Path) -> list[str]:
    from reprobuild.store import Store

    lines = []
    with Store.open(store, create=False) as s:
        info = s.read_build("r")
        picks = []
        for key in info.record.steps:
            rec = s.lookup_step(key)
            if rec is not None and rec.kind == "run":
                picks.append(("run-step tar", rec.outputs[0]))
            if rec is not None and rec.kind == "oci_image":
                picks.append(("OCI archive (gzip layer)", rec.output("oci.tar")))
        for label, o in picks:
            src = work / "sample"
            s.export(o.sha256, src)
            t = time.perf_counter()
            subprocess.run(["cp", str(src), str(work / "cp-copy")], check=True)
            t_cp = time.perf_counter() - t
            t = time.perf_counter()
            subprocess.run(["sh", "-c", f'cat "{src}" > "{work}/cat-copy"'], check=True)
            t_cat = time.perf_counter() - t
            fresh = work / "fresh-store"
            with Store.open(fresh) as f:
                t = time.perf_counter()
                f.put_file(src)
                t_in = time.perf_counter() - t
                t = time.perf_counter()
                f.export(o.sha256, work / "exported")
                t_out = time.perf_counter() - t
            shutil.rmtree(fresh)
            for p in ("sample", "cp-copy", "cat-copy", "exported"):
                (work / p).unlink()
            mbs = o.size / 1e6
            lines.append(
                f"{label:<26} {mbs:7.1f} MB: ingest {mbs / t_in:7.1f} MB/s (cp {mbs / t_cp:7.1f}, "
                f"{t_in / t_cp:5.1f}x its time); export {mbs / t_out:7.1f} MB/s "
                f"(cat {mbs / t_cat:7.1f}, {t_out / t_cat:5.1f}x)"
            )
    return lines


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", type=int, default=6)
    ap.add_argument("--unrelated-mib", type=int, default=512)
    ap.add_argument("--dir", type=Path, default=None, help="work here (default: a temp dir)")
    args = ap.parse_args()
    if not SHARED.exists():
        print("the shared mirror is absent: nothing measured")
        return 0
    print(machine())
    tmp = Path(tempfile.mkdtemp(prefix="store-scale-", dir=args.dir))
    ok = True
    try:
        work, store, remote = tmp / "w", tmp / "store", tmp / "remote.git"
        work.mkdir()
        subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
        secs, _, _ = build(work, store, 1)
        first = du(store)
        cli(work, "store", "push", str(remote), "--store", str(store))
        print(f"first build {secs:6.1f} s; store {mb(first)}; remote {mb(du(remote))}")
        growths, pushes = [], []
        for n in range(2, args.variants + 1):
            before, rbefore = du(store), du(remote)
            secs, _, _ = build(work, store, n)
            outputs = variant_output_bytes(store)
            grown = du(store) - before
            cli(work, "store", "push", str(remote), "--store", str(store))
            pushed = du(remote) - rbefore
            growths.append(grown / outputs)
            pushes.append(pushed / outputs)
            print(
                f"variant {n}: {secs:6.1f} s, outputs {mb(outputs)}, store +{mb(grown)} "
                f"({grown / outputs:6.1%}), push adds {mb(pushed)} ({pushed / outputs:6.1%})"
            )
        worst_g, worst_p = max(growths), max(pushes)
        print(f"growth per variant: worst {worst_g:.1%} of its outputs (goal <= 10%)")
        print(f"push of one more variant: worst {worst_p:.1%} of its outputs (goal <= 10%)")
        ok &= worst_g <= 0.10 and worst_p <= 0.10
        _, _, out = cli(
            work, "store", "gc", "--keep-builds", "1", "--grace", "0", "--store", str(store)
        )
        after = du(store)
        verify = subprocess.run(
            [sys.executable, "-m", "reprobuild", "store", "verify", "--store", str(store)],
            env=clean_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        print(
            f"gc --keep-builds 1 after {args.variants} variants: {mb(after)} = "
            f"{after / first:.3f}x the store after the first build (goal <= 1.15x); "
            f"verify: {'passes' if verify.returncode == 0 else 'FAILS'}  [{out.strip()}]"
        )
        ok &= after <= 1.15 * first and verify.returncode == 0

        only = tmp / "only.git"
        subprocess.run(["git", "init", "-q", "--bare", str(only)], check=True)
        cli(work, "store", "push", str(only), "--store", str(store))
        big = tmp / "big.git"
        shutil.copytree(only, big)
        unrelated_remote(tmp, big, args.unrelated_mib)
        print(f"remote with only the build {mb(du(only))}; with unrelated content {mb(du(big))}")
        results = {}
        for label, url in (("only", only), ("big", big)):
            runs = []
            for _ in range(2):
                fresh = tmp / f"cache-{label}"
                shutil.rmtree(fresh, ignore_errors=True)
                secs, peak, res = build(
                    work, fresh, args.variants, "--cache", str(url), "--allow-unsigned-cache",
                    "-o", str(work / "out"),
                )  # records pushed unsigned: this measures the transfer, not the trust
                runs.append((secs, peak, res["steps"]))
            results[label] = (min(r[0] for r in runs), min(r[1] for r in runs), runs[0][2])
        (t1, m1, s1), (t2, m2, _s2) = results["only"], results["big"]
        print(
            f"build --cache, remote with only the build: {t1:6.1f} s, peak {m1 / 1024:6.0f} MiB "
            f"({s1['run']} steps run, {s1['cached']} cached)"
        )
        print(
            f"build --cache, remote + {args.unrelated_mib} MiB unrelated: {t2:6.1f} s, peak "
            f"{m2 / 1024:6.0f} MiB; ratios: time {t2 / t1:.2f}x, memory {m2 / m1:.2f}x "
            "(goal <= 1.5x)"
        )
        ok &= t2 / t1 <= 1.5 and m2 / m1 <= 1.5
        for line in throughput(work, store):
            print(line)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("all goals met" if ok else "some goals NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
