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
``file://`` mirror; debian-vm and debian-live from the same genuine snapshot
index with the packages the shared mirror lacks fetched by ``apt-get
download`` and checked against the lockfile; go-hello from the signed test mirror it was locked
against (the shared mirror plus golang from ``apt-get download``, signed
with the fixed test key: the same packages give the same ``InRelease``).
"""

from __future__ import annotations

import argparse
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
# lockfile: a plain `build` refuses to overwrite recorded digests (exit 1);
# `build --record` is the explicit way to replace them.
RECORD_ARGS: tuple[str, ...] = ("build", "--record")
# How the test checks them: never writes the lockfile, exits 1 on a difference.
CHECK_ARGS: tuple[str, ...] = ("build", "--locked")


class GoldenUnavailable(Exception):
    """A golden recipe's packages cannot be served here (the reason is the message)."""


@dataclass(frozen=True)
class Golden:
    """One committed recipe whose lockfile records its output digests."""

    name: str
    recipe: Path  # relative to ROOT
    mirror: Callable[[Path, Path], Mirror]  # (lockfile, scratch dir) -> where its packages are
    slow: bool  # marked slow: run by `make test-slow` / `make test-long`, not `make test`

    @property
    def path(self) -> Path:
        return ROOT / self.recipe

    @property
    def lockfile(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")


@dataclass(frozen=True)
class Mirror:
    """``--mirror debian=URL``, and ``--keyring debian=PATH`` for a test mirror's own key."""

    url: str
    keyring: Path | None = None

    def args(self) -> list[str]:
        where = ["--mirror", f"debian={self.url}"]
        return where + (["--keyring", f"debian={self.keyring}"] if self.keyring else [])


def demo_mirror(lockfile: Path, scratch: Path) -> Mirror:
    return Mirror((ROOT / "snapshots" / "demo" / "archive" / "debian").as_uri() + "/")


def shared_mirror(lockfile: Path, scratch: Path) -> Mirror:
    if not SHARED_ARCHIVE.is_dir():
        raise GoldenUnavailable(f"the shared Debian mirror is missing ({SHARED_ARCHIVE})")
    return Mirror(SHARED_ARCHIVE.as_uri() + "/")


def test_mirror(lockfile: Path, scratch: Path) -> Mirror:
    """The signed test mirror (tests/support/debmirror.py) the lockfile was made with.

    ``build --locked`` checks every package against the signed index the
    lockfile names, so the mirror must serve that very ``InRelease``: the test
    mirror is deterministic (a fixed test key, signed at the Release's date),
    so the same packages from apt give the same bytes.
    """
    if not SHARED_ARCHIVE.is_dir():
        raise GoldenUnavailable(f"the shared Debian mirror is missing ({SHARED_ARCHIVE})")
    from tests.support.debmirror import MirrorUnavailable, build_mirror

    lock = json.loads(lockfile.read_text())
    shared = {p.name for p in SHARED_ARCHIVE.rglob("*.deb")}
    extra = sorted(p["name"] for p in lock["packages"] if Path(p["filename"]).name not in shared)
    try:
        m = build_mirror(scratch / "mirror", extra)
    except MirrorUnavailable as exc:
        raise GoldenUnavailable(str(exc)) from None
    return Mirror(m.url, m.keyring)


def snapshot_mirror(lockfile: Path, scratch: Path) -> Mirror:
    """Debian's genuine signed snapshot index (shared mirror) with every package the
    lockfile names, the missing ones from ``apt-get download NAME=VERSION``
    (tests/support/snapmirror.py): the lockfile's InRelease and keys hold as committed."""
    from tests.support.debmirror import MirrorUnavailable
    from tests.support.snapmirror import locked_mirror

    snaps = json.loads(lockfile.read_text())["snapshots"]
    try:
        url = locked_mirror(
            scratch / "mirror", [lockfile], next(iter(snaps.values()))["timestamp"]
        )
    except MirrorUnavailable as exc:
        raise GoldenUnavailable(str(exc)) from None
    return Mirror(url)


GOLDEN: tuple[Golden, ...] = (
    # slow too: in `make test`, tests/check/test_check.py compares the demo's
    # digests with its lockfile at no extra cost (check builds it anyway).
    Golden("demo", Path("recipes/demo.repro"), demo_mirror, slow=True),
    Golden("debian-minimal", Path("recipes/debian-minimal.repro"), shared_mirror, slow=True),
    Golden("go-hello", Path("recipes/go-hello/go-hello.repro"), test_mirror, slow=True),
    # The default run checks these two too, in tests/boot (one shared rootfs).
    Golden("debian-vm", Path("recipes/debian-vm.repro"), snapshot_mirror, slow=True),
    Golden("debian-live", Path("recipes/debian-live.repro"), snapshot_mirror, slow=True),
    Golden(
        "debian-debuerreotype",
        Path("recipes/debian-debuerreotype.repro"),
        shared_mirror,
        slow=True,
    ),
)

# Committed lockfiles deliberately outside the golden set, with the reason.
NOT_GOLDEN: dict[Path, str] = {}


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
            *mirror.args(),
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
