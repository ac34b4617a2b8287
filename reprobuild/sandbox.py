"""Running commands in a bubblewrap sandbox: no network, nothing undeclared.

Every command reprobuild runs on behalf of a recipe (maintainer scripts, a
``run`` step) goes through :func:`run`. The sandbox has its own network
namespace (only ``lo``, with nothing listening), its own PID, IPC and UTS
namespaces, a fixed hostname, a cleared environment with exactly the
variables below, the tree as ``/`` and only the declared inputs bound in.
When ``bwrap`` is missing, this is an error naming the package to install:
never a silent fallback to running unsandboxed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from reprobuild.errors import ReprobuildError

HOSTNAME = "reprobuild"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SandboxError(ReprobuildError):
    """The sandbox could not be set up, or the command in it failed."""


class SandboxUnavailable(SandboxError):
    """bwrap is missing or cannot create namespaces here."""


@dataclass(frozen=True)
class Bind:
    """A host path made visible at ``target`` inside the sandbox."""

    source: Path
    target: str
    mode: Literal["ro", "rw"] = "ro"


@dataclass(frozen=True)
class SandboxSpec:
    root: Path  # the tree that becomes "/"
    command: tuple[str, ...]
    epoch: int  # SOURCE_DATE_EPOCH
    env: Mapping[str, str] = field(default_factory=dict)  # added to the fixed set
    binds: tuple[Bind, ...] = ()
    root_writable: bool = True
    workdir: str = "/"
    home: str = "/root"
    stdin: bytes | None = None


@dataclass(frozen=True)
class SandboxResult:
    returncode: int
    stdout: bytes
    stderr: bytes


def bwrap_path() -> str:
    found = shutil.which("bwrap")
    if found is None:
        raise SandboxUnavailable(
            "bwrap (bubblewrap) is not installed; steps that run commands need it",
            hint="install the Debian package 'bubblewrap' (apt-get install bubblewrap)",
        )
    return found


def environment(spec: SandboxSpec) -> dict[str, str]:
    """The whole environment inside: nothing from the host leaks in."""
    env = {
        "PATH": PATH,
        "HOME": spec.home,
        "TZ": "UTC",
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        "SOURCE_DATE_EPOCH": str(spec.epoch),
        "HOSTNAME": HOSTNAME,
        "USER": "root",
        "LOGNAME": "root",
        "TERM": "dumb",
    }
    env.update(spec.env)
    return env


def namespace_args() -> list[str]:
    """New network, PID, IPC, UTS (and cgroup) namespaces always.

    As root, no user namespace: maintainer scripts chown files to system
    users (``mail``, ``shadow``), which a user namespace mapping only uid 0
    would refuse. As another user, a user namespace maps that user to root;
    ownership changes then fail, so configuring full systems needs root.
    """
    args = ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    args.append("--unshare-cgroup-try")
    if os.geteuid() != 0:
        args += ["--unshare-user", "--uid", "0", "--gid", "0"]
    return args


def bwrap_argv(spec: SandboxSpec) -> list[str]:
    """The bwrap command line for a spec (ordered and complete, so it is testable)."""
    argv = [
        bwrap_path(),
        *namespace_args(),
        "--die-with-parent",
        "--new-session",
        "--hostname",
        HOSTNAME,
        "--clearenv",
    ]
    for key, value in sorted(environment(spec).items()):
        argv += ["--setenv", key, value]
    argv += ["--bind" if spec.root_writable else "--ro-bind", str(spec.root), "/"]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run"]
    for b in spec.binds:
        argv += ["--bind" if b.mode == "rw" else "--ro-bind", str(b.source), b.target]
    argv += ["--chdir", spec.workdir, "--", *spec.command]
    return argv


def prepare_root(root: Path, binds: Sequence[Bind] = ()) -> None:
    """Create the mount points bwrap needs inside a directory root."""
    for d in ("proc", "dev", "tmp", "run"):
        p = root / d
        if not p.exists() and not p.is_symlink():
            p.mkdir(mode=0o755)
    for b in binds:
        target = root / b.target.lstrip("/")
        if target.exists() or target.is_symlink():
            continue
        if b.source.is_dir():
            target.mkdir(parents=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()


def run(spec: SandboxSpec, *, timeout: float | None = None, check: bool = True) -> SandboxResult:
    """Run a command in the sandbox; with ``check`` a non-zero exit is an error."""
    prepare_root(spec.root, spec.binds)
    argv = bwrap_argv(spec)
    try:
        proc = subprocess.run(
            argv,
            input=spec.stdin if spec.stdin is not None else b"",
            capture_output=True,
            timeout=timeout,
            env={"PATH": os.environ.get("PATH", PATH)},
        )
    except subprocess.TimeoutExpired:
        raise SandboxError(
            f"command timed out after {timeout:.0f} s in the sandbox: {' '.join(spec.command)}"
        ) from None
    stderr = proc.stderr
    if proc.returncode != 0 and stderr.startswith(b"bwrap:"):
        raise SandboxUnavailable(
            f"bwrap could not create the sandbox: {stderr.decode(errors='replace').strip()}",
            hint="user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone)",
        )
    if check and proc.returncode != 0:
        tail = stderr.decode(errors="replace").strip().splitlines()[-15:]
        raise SandboxError(
            f"command failed with exit code {proc.returncode} in the sandbox: "
            f"{' '.join(spec.command)}" + ("\n  " + "\n  ".join(tail) if tail else "")
        )
    return SandboxResult(proc.returncode, proc.stdout, stderr)
