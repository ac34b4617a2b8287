#!/usr/bin/env python3
"""Lock and build time against the package count, on a generated archive.

Generates a signed Debian-format snapshot of ARCHIVE tiny packages (one
file each, gzip members written directly, no dpkg-deb), half of them in deep
chains (each package depends on the next, CHAIN long, with versioned
relations) and half in wide fans (a root depending on FAN-1 leaves, the
leaves carrying alternatives into the chains' tails). It is served on
loopback and signed with a throwaway key (tests/support/debmirror.py).

For images of increasing size (heads of chains plus roots of fans), it
times the resolution alone (in this process, best of 3), ``reprobuild lock``
(index cache warm; fetching and checking the signed index is a fixed cost
that dominates it) and a
cold ``reprobuild build`` of the root tarball (fresh store: fetch, verify,
unpack, canonical tar, store). A least-squares line through each series
prints its slope (seconds per package), R^2 (close to 1: linear) and the
largest case's time. Usage: ``bench/scaling.py [--quick]``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from _common import (
    SHARED_DATE,
    SHARED_TS,
    best_of,
    clean_env,
    fit_line,
    machine,
    reprobuild,
    served,
)

from reprobuild.archives.debian.index import parse_packages
from reprobuild.archives.debian.resolve import DebianUniverse, Request, resolve

SUITE = "bookworm"


def _tar_gz(members: list[tuple[str, bytes, int]], dirs: list[str]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as t:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1700000000
            t.addfile(info)
        for name, data, mode in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 1700000000
            t.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)


def _ar(members: list[tuple[str, bytes]]) -> bytes:
    out = [b"!<arch>\n"]
    for name, data in members:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n"
        out.append(header.encode() + data + (b"\n" if len(data) % 2 else b""))
    return b"".join(out)


def make_deb(name: str, version: str, depends: str) -> tuple[bytes, str]:
    """A minimal valid .deb and its control stanza (without index fields)."""
    control = (
        f"Package: {name}\nVersion: {version}\nArchitecture: amd64\n"
        f"Maintainer: bench <bench@reprobuild.invalid>\nPriority: optional\n"
        + (f"Depends: {depends}\n" if depends else "")
        + f"Description: generated package {name}\n"
    )
    payload = f"{name} {version}\n".encode()
    md5 = hashlib.md5(payload).hexdigest()
    ctl = _tar_gz(
        [
            ("./control", control.encode(), 0o644),
            ("./md5sums", f"{md5}  usr/share/bench/{name}\n".encode(), 0o644),
        ],
        ["./"],
    )
    data = _tar_gz(
        [(f"./usr/share/bench/{name}", payload, 0o644)],
        ["./", "./usr/", "./usr/share/", "./usr/share/bench/"],
    )
    deb = _ar([("debian-binary", b"2.0\n"), ("control.tar.gz", ctl), ("data.tar.gz", data)])
    return deb, control


def generate(dest: Path, total: int, chain: int, fan: int) -> tuple[Path, int, int]:
    """Write the archive under *dest*; returns (keyring, number of chains, number of fans)."""
    from tests.support.debmirror import sign_release, write_release

    snap = dest / "archive" / SHARED_TS
    pool = snap / "pool" / "main" / "b"
    pool.mkdir(parents=True)
    chains = total // 2 // chain
    fans = total // 2 // fan
    specs: list[tuple[str, str]] = []
    for c in range(chains):
        for j in range(chain):
            nxt = f"c{c}-{j + 1} (>= 1.0)" if j + 1 < chain else ""
            specs.append((f"c{c}-{j}", nxt))
    for f in range(fans):
        leaves = [f"f{f}-{i}" for i in range(1, fan)]
        specs.append((f"f{f}-0", ", ".join(f"{leaf} (>= 1.0-1)" for leaf in leaves)))
        tail = f"c{f % max(chains, 1)}-{chain - 1}"
        specs += [(leaf, f"{tail} (>= 1.0) | bench-missing") for leaf in leaves]
    stanzas = []
    for name, depends in specs:
        deb, control = make_deb(name, "1.0-1", depends)
        rel = f"pool/main/b/{name}_1.0-1_amd64.deb"
        (snap / rel).write_bytes(deb)
        stanzas.append(
            control + f"Filename: {rel}\nSize: {len(deb)}\nMD5sum: {hashlib.md5(deb).hexdigest()}\n"
            f"SHA256: {hashlib.sha256(deb).hexdigest()}\n"
        )
    index = snap / "dists" / SUITE / "main" / "binary-amd64"
    index.mkdir(parents=True)
    text = "\n".join(stanzas).encode()
    (index / "Packages").write_bytes(text)
    (index / "Packages.xz").write_bytes(lzma.compress(text, preset=6))
    release = write_release(snap, SUITE, "Sat, 11 Jul 2026 10:16:37 +0000")
    keyring = dest / "bench-keyring.gpg"
    sign_release(release, keyring)
    return keyring, chains, fans


def recipe(packages: list[str]) -> str:
    names = " ".join(f'"{n}"' for n in packages)
    return (
        f'let snap = snapshot {{ archive = "debian"; date = "{SHARED_DATE}"; '
        f'suites = [ "{SUITE}" ]; }};\n'
        f'in {{ t = tarball {{ root = rootfs {{ snapshot = snap; variant = "none"; '
        f"packages = [ {names} ]; }}; }}; }}\n"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a 2,000-package archive, images to 400")
    a = p.parse_args()
    if os.geteuid() != 0:
        print("bench/scaling.py: needs root (device nodes in the root); skipped")
        return 0
    total, chain, fan = (2000, 20, 20) if a.quick else (10000, 50, 50)
    # Images of k chains and k fans: k * (chain + fan) packages.
    ks = (2, 5, 10) if a.quick else (3, 5, 10, 20)
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        keyring, chains, fans = generate(work / "mirror", total, chain, fan)
        print(
            f"archive: {total:,} packages ({chains} chains of {chain}, {fans} fans of {fan}), "
            f"generated and signed in {time.perf_counter() - start:.1f} s"
        )
        env = clean_env(XDG_CACHE_HOME=str(work / "cache"))
        os.environ["XDG_CACHE_HOME"] = env["XDG_CACHE_HOME"]
        with served(work / "mirror" / "archive") as url:
            where = ("--mirror", f"debian={url}", "--keyring", f"debian={keyring}")
            locks: list[float] = []
            builds: list[float] = []
            counts: list[int] = []
            solves: list[float] = []
            index = work / "mirror/archive" / SHARED_TS / "dists" / SUITE / "main/binary-amd64"
            universe = DebianUniverse(parse_packages((index / "Packages").read_bytes()))
            for k in ks:
                n = k * (chain + fan)
                want = [f"c{i}-0" for i in range(k)] + [f"f{i}-0" for i in range(k)]
                request = Request(packages=tuple(want))
                solves.append(best_of(3, lambda r=request: resolve(universe, r)))
                proj = work / f"img{n}"
                proj.mkdir()
                (proj / "r.repro").write_text(recipe(want))
                if not locks:  # parse the index once: the series times resolution
                    reprobuild(proj, "lock", *where, "r.repro")
                    (proj / "r.repro.lock").unlink()
                t0 = time.perf_counter()
                reprobuild(proj, "lock", *where, "r.repro")
                t1 = time.perf_counter()
                r = reprobuild(
                    proj, "build", "--json", "--store", str(proj / "store"), *where, "r.repro"
                )
                t2 = time.perf_counter()
                got = len(json.loads((proj / "r.repro.lock").read_text())["packages"])
                assert (proj / json.loads(r.stdout)["outputs"]["t"]["path"]).stat().st_size > 0
                counts.append(got)
                locks.append(t1 - t0)
                builds.append(t2 - t1)
                print(
                    f"image {got:5d} packages: resolve {solves[-1]:6.3f} s   lock {t1 - t0:6.2f} s"
                    f"   cold build {t2 - t1:7.2f} s"
                )
                sys.stdout.flush()
                shutil.rmtree(proj, ignore_errors=True)
    for label, ys in (("resolve", solves), ("lock", locks), ("build", builds)):
        slope, intercept, r2 = fit_line(counts, ys)
        print(
            f"{label:7s}: {slope * 1000:7.2f} ms/package + {intercept:5.2f} s, R^2 {r2:.3f}; "
            f"largest ({counts[-1]} packages) {ys[-1]:.2f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
