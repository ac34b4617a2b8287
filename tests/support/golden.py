"""Golden digests: the output sha256 recorded in each committed lockfile is an oracle.

``tests/golden/test_golden.py`` builds every recipe of :data:`GOLDEN` with
``reprobuild build --locked`` from its lockfile alone (a fresh store, a copy of
the recipe elsewhere) and compares every output's sha256 with the one the
committed lockfile records. A change of output bytes (a compression level, a
timestamp, an order) therefore fails a test instead of passing silently.

``make golden`` (``python -m tests.support.golden``) rewrites the recorded
digests on purpose: it builds each recipe the same way with
:data:`RECORD_ARGS`, checks that nothing but ``outputs`` changed in the
lockfile, and copies the lockfile back. Commit the result with the reason the
bytes changed in the commit message.

Where the packages come from (never the network for the Debian snapshot
itself): the demo from its embedded snapshot (``snapshots/demo``);
debian-minimal from the shared bookworm mirror (``../shared``) as a
``file://`` mirror; go-hello from the shared mirror plus the golang packages
the lockfile names, fetched with ``apt-get download NAME=VERSION`` and
placed where the lockfile says (their sha256 is checked by the build).
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED_ARCHIVE = ROOT.parent / "shared" / "mirrors" / "debian" / "archive" / "debian"

# The one place `make golden` names the command that records digests into a
# lockfile. Issue 15 makes plain `build` refuse to overwrite recorded digests
# and adds `build --record`; switch this tuple to ("build", "--record") then.
RECORD_ARGS: tuple[str, ...] = ("build",)
# How the test checks them: never writes the lockfile, exits 1 on a difference.
CHECK_ARGS: tuple[str, ...] = ("build", "--locked")


class GoldenUnavailable(Exception):
    """A golden recipe's packages cannot be served here (the reason is the message)."""


@dataclass(frozen=True)
class Golden:
    """One committed recipe whose lockfile records its output digests."""

    name: str
    recipe: Path  # relative to ROOT
    mirror: Callable[[Path, Path], str]  # (lockfile, scratch dir) -> --mirror debian=URL value
    slow: bool  # marked slow: run by `make test-slow` / `make test-long`, not `make test`

    @property
    def path(self) -> Path:
        return ROOT / self.recipe

    @property
    def lockfile(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")


def demo_mirror(lockfile: Path, scratch: Path) -> str:
    return (ROOT / "snapshots" / "demo" / "archive" / "debian").as_uri() + "/"


def shared_mirror(lockfile: Path, scratch: Path) -> str:
    if not SHARED_ARCHIVE.is_dir():
        raise GoldenUnavailable(f"the shared Debian mirror is missing ({SHARED_ARCHIVE})")
    return SHARED_ARCHIVE.as_uri() + "/"


def shared_plus_apt_mirror(lockfile: Path, scratch: Path) -> str:
    """The shared mirror's pool plus what the lockfile names beyond it, from apt.

    Only the pool is needed: ``build --locked`` fetches each package by the
    lockfile's path and checks its size and sha256; the index was checked
    when the lockfile was made.
    """
    shared_url = shared_mirror(lockfile, scratch)  # raises when ../shared is missing
    lock = json.loads(lockfile.read_text())
    ((_, snap),) = lock["snapshots"].items()
    shared_snapshot = SHARED_ARCHIVE / snap["timestamp"]
    archive = scratch / "mirror" / "archive" / "debian"
    dest = archive / snap["timestamp"]
    missing = []
    for pkg in lock["packages"]:
        src = shared_snapshot / pkg["filename"]
        target = dest / pkg["filename"]
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_file():
            _link(src, target)
        else:
            missing.append(pkg)
    if not missing:
        return shared_url
    from tests.support.debmirror import MirrorUnavailable, apt_download

    downloads = scratch / "apt"
    wanted = [f"{p['name']}:{p['architecture']}={p['version']}" for p in missing]
    wanted = [w.replace(":all=", "=") for w in wanted]
    try:
        files = apt_download(wanted, downloads)
    except MirrorUnavailable as exc:
        raise GoldenUnavailable(str(exc)) from None
    by_sha = {_sha256(f): f for f in files}
    for pkg in missing:
        got = by_sha.get(pkg["sha256"])
        if got is None:
            raise GoldenUnavailable(
                f"apt-get download {pkg['name']}={pkg['version']} did not give the file the "
                f"lockfile names (sha256 {pkg['sha256']}); has apt's archive moved on?"
            )
        os.replace(got, dest / pkg["filename"])
    return archive.as_uri() + "/"


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


GOLDEN: tuple[Golden, ...] = (
    Golden("demo", Path("recipes/demo.repro"), demo_mirror, slow=False),
    Golden("debian-minimal", Path("recipes/debian-minimal.repro"), shared_mirror, slow=True),
    Golden("go-hello", Path("recipes/go-hello/go-hello.repro"), shared_plus_apt_mirror, slow=True),
)

# Committed lockfiles deliberately outside the golden set, with the reason.
NOT_GOLDEN: dict[Path, str] = {
    # Issue 14: the image carries openssh host keys generated at configure
    # time, so two builds differ; add it to GOLDEN once issue 14 lands.
    Path("recipes/debian-vm.repro"): "not reproducible yet (openssh host keys, issue 14)",
}


@dataclass(frozen=True)
class GoldenBuild:
    work: Path  # the copied recipe directory
    recipe: Path  # the copied recipe
    proc: subprocess.CompletedProcess[str]

    @property
    def summary(self) -> dict:  # type: ignore[type-arg]
        return json.loads(self.proc.stdout)  # type: ignore[no-any-return]


def build(golden: Golden, scratch: Path, args: Sequence[str] = CHECK_ARGS) -> GoldenBuild:
    """Build a copy of the recipe (elsewhere, fresh store) with ``reprobuild ARGS --json``."""
    work = scratch / "work" / golden.path.parent.name
    shutil.copytree(golden.path.parent, work, ignore=shutil.ignore_patterns("out", "*.tmp"))
    mirror = golden.mirror(golden.lockfile, scratch)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPROBUILD_")}
    env["XDG_CACHE_HOME"] = str(scratch / "cache")
    env.pop("SOURCE_DATE_EPOCH", None)  # the lockfile's snapshot sets the epoch
    proc = subprocess.run(
        [
            sys.executable, "-m", "reprobuild", *args, "--json",
            "--store", str(scratch / "store"),
            "--mirror", f"debian={mirror}",
            "-o", str(scratch / "out"),
            golden.path.name,
        ],
        cwd=work, env=env, capture_output=True, text=True, timeout=3600, check=False,
    )  # fmt: skip
    return GoldenBuild(work, work / golden.path.name, proc)


def recorded(lockfile: Path) -> dict[str, str]:
    """Output name -> sha256 as the lockfile records them."""
    data = json.loads(lockfile.read_text())
    return {name: o["sha256"] for name, o in data.get("outputs", {}).items()}


def update(golden: Golden) -> dict[str, str]:
    """Rebuild ``golden`` with :data:`RECORD_ARGS` and write its new digests into the
    committed lockfile; returns them. Refuses if anything but ``outputs`` would change."""
    with tempfile.TemporaryDirectory(prefix=f"golden-{golden.name}-") as tmp:
        b = build(golden, Path(tmp), RECORD_ARGS)
        if b.proc.returncode != 0:
            raise SystemExit(f"{golden.recipe}: build failed:\n{b.proc.stderr}")
        new = json.loads(b.recipe.with_name(b.recipe.name + ".lock").read_text())
        old = json.loads(golden.lockfile.read_text())
        new_outputs = new.pop("outputs", {})
        old.pop("outputs", None)
        if new != old:
            raise SystemExit(
                f"{golden.recipe}: the build changed more than the outputs of its lockfile "
                "(stale? run 'reprobuild lock' and commit that first)"
            )
        built = {n: o["sha256"] for n, o in b.summary["outputs"].items()}
        if {n: o["sha256"] for n, o in new_outputs.items()} != built:
            raise SystemExit(f"{golden.recipe}: {RECORD_ARGS} did not record the built digests")
        shutil.copyfile(b.recipe.with_name(b.recipe.name + ".lock"), golden.lockfile)
        return built


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make golden",
        description="Rewrite the output digests recorded in the golden recipes' lockfiles. "
        "Commit the result with the reason the bytes changed.",
    )
    parser.add_argument("names", nargs="*", help=f"only these (of {[g.name for g in GOLDEN]})")
    args = parser.parse_args(argv)
    unknown = set(args.names) - {g.name for g in GOLDEN}
    if unknown:
        parser.error(f"not in the golden set: {sorted(unknown)}")
    for g in GOLDEN:
        if args.names and g.name not in args.names:
            continue
        before = recorded(g.lockfile)
        try:
            after = update(g)
        except GoldenUnavailable as exc:
            print(f"{g.name}: cannot build here: {exc}", file=sys.stderr)
            return 2
        for name in sorted(after):
            state = "unchanged" if before.get(name) == after[name] else "CHANGED"
            print(f"{g.name:15} {name:10} sha256:{after[name]}  {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
