"""debuerreotype 0.15 itself, run against the shared mirror on loopback.

The loopback server (:mod:`tests.support.mirror`) serves as the HTTP proxy
of debootstrap's wget, so debuerreotype is given snapshot.debian.org's own
URL for the snapshot, ``http://snapshot.debian.org/archive/debian/TIMESTAMP``
(what its ``.snapshot-url.sh`` makes), and nothing leaves the machine. The
URL ends up in the image's ``/etc/apt/sources.list``, so the tarball does
not depend on the loopback port: its digest is the same in every run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "mirrors" / "debian"
KEYRING = SHARED / "debian-archive-keyring.gpg"
TIMESTAMP = "20260711T101637Z"
SNAPSHOT_URL = f"http://snapshot.debian.org/archive/debian/{TIMESTAMP}"
TOOLS = ("debuerreotype-init", "debootstrap", "wget")


def unavailable() -> str | None:
    """Why debuerreotype cannot run here (for ``pytest.skip``), or None."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} not installed (apt-get install debuerreotype debootstrap)"
    if os.geteuid() != 0:
        return "debuerreotype (debootstrap) needs root"
    if not (SHARED / "archive" / "debian" / TIMESTAMP).exists():
        return "the shared Debian mirror is not beside the repository"
    return None


def run_debuerreotype(
    work: Path,
    *,
    proxy: str,
    include: Sequence[str] = (),
    slim: bool = False,
    mirror: str = SNAPSHOT_URL,
    keyring: Path = KEYRING,
    suite: str = "bookworm",
) -> Path:
    """``debuerreotype-init --non-debian``, ``-minimizing-config``, ``-slimify``
    (if *slim*) and ``-tar``; returns the tarball (the root is removed)."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(http_proxy=proxy, no_proxy="")
    root = work / "rootfs"
    init = ["debuerreotype-init", "--non-debian", f"--keyring={keyring}"]
    if include:
        init.append("--include=" + ",".join(include))
    steps = [[*init, str(root), suite, mirror], ["debuerreotype-minimizing-config", str(root)]]
    if slim:
        steps.append(["debuerreotype-slimify", str(root)])
    tar = work / "rootfs.tar"
    steps.append(["debuerreotype-tar", str(root), str(tar)])
    try:
        for argv in steps:
            r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800)
            if r.returncode != 0:
                raise RuntimeError(f"{argv[0]} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return tar
