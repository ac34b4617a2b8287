"""Running commands in a bubblewrap sandbox: no network, nothing undeclared.

Every command reprobuild runs on behalf of a recipe (maintainer scripts, a
``run`` step) goes through :func:`run`. The sandbox has its own network
namespace (only ``lo``, with nothing listening), its own PID, IPC and UTS
namespaces, a fixed hostname, a cleared environment with exactly the
variables below, the tree as ``/`` and only the declared inputs bound in.
When ``bwrap`` is missing, this is an error naming the package to install:
never a silent fallback to running unsandboxed.

What a hostile script meets (the tests in tests/reliability/ craft them):

* **Capabilities.** As root bwrap keeps every capability, which would let a
  script load kernel modules, mount the host's disk or reach any host file
  through ``open_by_handle_at`` (CAP_DAC_READ_SEARCH). Only
  :data:`KEPT_CAPABILITIES`, what maintainer scripts use on files of the
  tree (chown, chmod, setcap, su), survive; bwrap sets no-new-privs.
* **Devices.** The tree is bound ``nodev,nosuid`` (bwrap's ``--bind``), so a
  device node in it opens nothing, and mknod is not permitted.
* **Processes.** The command is PID 1's only child in a new PID namespace:
  when it exits (or bwrap is killed, ``--die-with-parent``) the kernel kills
  everything left in the namespace, daemons that double-forked, ``setsid``
  or ``nohup`` included, so nothing outlives the step or holds its pipes.
* **The kernel.** A seccomp filter (:mod:`reprobuild.syscall_filter`)
  refuses mount, keyctl, ptrace, kexec, module loading and namespace
  escapes; the command has its own session keyring; as root it runs in a
  new user namespace mapping every id to itself (see
  :mod:`reprobuild._sandbox_exec`), so even the kept capabilities are
  capabilities over that namespace, not over the host's kernel.
* **Resources.** Memory, processes, file size and tmpfs size are bounded
  (:mod:`reprobuild.sandbox_limits`); a command that runs into a limit fails
  with an error naming the step and the setting.
* **One sandbox.** Every binary that came from a package goes through
  :func:`run`: run steps, maintainer scripts, and the exporters' helpers
  from the tree (``grub-mkimage``, with no capabilities at all).
* **Links left behind.** A script may leave ``/etc -> /`` style symlinks in
  the tree; they point into the tree inside, but at the host's files from
  outside. Code that touches the tree afterwards goes through
  :func:`inside`, which resolves paths as the sandbox saw them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from reprobuild.errors import ReprobuildError
from reprobuild.sandbox_limits import SandboxLimits, explain, pids_cgroup, pids_limit_hit
from reprobuild.tree import SafeRoot, TreeError, UnsafePathError, member_parts

HOSTNAME = "reprobuild"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SandboxError(ReprobuildError):
    """The sandbox could not be set up, or the command in it failed."""


class SandboxUnavailable(SandboxError):
    """bwrap is missing or cannot create namespaces here."""


class SandboxLimitExceeded(SandboxError):
    """A command ran into one of the sandbox's resource limits."""


@dataclass(frozen=True)
class Bind:
    """A host path made visible at ``target`` inside the sandbox."""

    source: Path
    target: str
    mode: Literal["ro", "rw"] = "ro"


@dataclass(frozen=True)
class SandboxSpec:
    root: Path | None  # the tree that becomes "/"; None: an empty tmpfs
    command: tuple[str, ...]
    epoch: int  # SOURCE_DATE_EPOCH
    env: Mapping[str, str] = field(default_factory=dict)  # added to the fixed set
    binds: tuple[Bind, ...] = ()
    root_writable: bool = True
    workdir: str = "/"
    home: str = "/root"
    stdin: bytes | None = None
    what: str = "a command"  # named in errors: "run step 'x'", "grub-mkimage"
    capabilities: tuple[str, ...] | None = None  # None: KEPT_CAPABILITIES
    symlinks: tuple[tuple[str, str], ...] = ()  # (target, path) made inside
    limits: SandboxLimits | None = None  # None: from the environment
    # Fresh tmpfs mounts over the tree's own directories. An installer that
    # must leave /tmp and /run as its reference tool does (debootstrap mounts
    # nothing there) passes ().
    tmpfs: tuple[str, ...] = ("/tmp", "/run")


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


KEPT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SYS_CHROOT",
)
"""What root keeps inside: enough to own, chmod, setcap files and change user.
Dropped among others: SYS_ADMIN (mount), SYS_MODULE, MKNOD, SYS_RAWIO,
SYS_TIME, NET_ADMIN, DAC_READ_SEARCH (open_by_handle_at escapes a chroot)."""


def capability_args(kept: Sequence[str] = KEPT_CAPABILITIES) -> list[str]:
    """As root, drop every capability but *kept* (all of them for an empty tuple).

    Without root bwrap gives the sandbox none beyond its user namespace.
    """
    if os.geteuid() != 0:
        return []
    args = ["--cap-drop", "ALL"]
    for cap in kept:
        args += ["--cap-add", cap]
    return args


def namespace_args() -> list[str]:
    """New network, PID, IPC, UTS (and cgroup) namespaces always.

    As root, the user namespace is made before bwrap starts, mapping every
    id to itself (maintainer scripts chown files to system users such as
    ``mail`` or ``shadow``, which bwrap's own one-id mapping would refuse).
    As another user, bwrap's user namespace maps that user to root;
    ownership changes then fail, so configuring full systems needs root.
    """
    args = ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    args.append("--unshare-cgroup-try")
    if os.geteuid() != 0:
        args += ["--unshare-user", "--uid", "0", "--gid", "0"]
    return args


def bwrap_argv(spec: SandboxSpec, *, seccomp_fd: int | None = None) -> list[str]:
    """The bwrap command line for a spec (ordered and complete, so it is testable)."""
    kept = KEPT_CAPABILITIES if spec.capabilities is None else spec.capabilities
    tmpfs = str((spec.limits or SandboxLimits.from_env()).tmpfs)
    argv = [
        bwrap_path(),
        *namespace_args(),
        *capability_args(kept),
        "--die-with-parent",
        "--new-session",
        "--hostname",
        HOSTNAME,
        "--clearenv",
    ]
    for key, value in sorted(environment(spec).items()):
        argv += ["--setenv", key, value]
    if spec.root is not None:
        argv += ["--bind" if spec.root_writable else "--ro-bind", str(spec.root), "/"]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    for scratch in spec.tmpfs:
        argv += ["--size", tmpfs, "--tmpfs", scratch]
    for b in spec.binds:
        argv += ["--bind" if b.mode == "rw" else "--ro-bind", str(b.source), b.target]
    for target, link in spec.symlinks:
        argv += ["--symlink", target, link]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    argv += ["--chdir", spec.workdir, "--", *spec.command]
    return argv


def _trampoline(limits: SandboxLimits, cgroup: Path | None) -> list[str]:
    """The interpreter and options of :mod:`reprobuild._sandbox_exec` before bwrap's argv."""
    argv = [sys.executable, "-I", "-S", str(Path(__file__).with_name("_sandbox_exec.py"))]
    if os.geteuid() == 0:
        argv.append("--userns")
    if cgroup is not None:
        argv += ["--cgroup", str(cgroup)]
    for name, value in sorted(limits.rlimits(cgroup=cgroup is not None).items()):
        argv += ["--rlimit", f"{name}={value}"]
    return [*argv, "--"]


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
    from reprobuild.syscall_filter import filter_fd

    if spec.root is not None:
        prepare_root(spec.root, spec.binds)
    limits = spec.limits or SandboxLimits.from_env()
    spec = replace(spec, limits=limits)
    bwrap_argv(spec)  # bwrap missing: say so before anything is set up
    seccomp = filter_fd()
    try:
        with pids_cgroup(limits.processes) as cgroup:
            argv = [*_trampoline(limits, cgroup), *bwrap_argv(spec, seccomp_fd=seccomp)]
            try:
                proc = subprocess.run(
                    argv,
                    input=spec.stdin if spec.stdin is not None else b"",
                    capture_output=True,
                    timeout=timeout,
                    env={"PATH": os.environ.get("PATH", PATH)},
                    pass_fds=(seccomp,),
                )
            except subprocess.TimeoutExpired:
                raise SandboxError(
                    f"{spec.what}: timed out after {timeout:.0f} s in the sandbox: "
                    f"{' '.join(spec.command)}"
                ) from None
            pids_hit = pids_limit_hit(cgroup)
    finally:
        with contextlib.suppress(OSError):
            os.close(seccomp)
    stderr = proc.stderr
    if check and proc.returncode != 0 and not stderr.startswith(b"bwrap:"):
        reason = explain(limits, proc.returncode, stderr, pids_hit=pids_hit)
        if reason is not None:
            tail = stderr.decode(errors="replace").strip().splitlines()[-5:]
            raise SandboxLimitExceeded(
                f"{spec.what} failed in the sandbox (exit code {proc.returncode}): {reason}"
                + ("\n  " + "\n  ".join(tail) if tail else ""),
                hint="raise the setting if the step really needs more",
            )
    if proc.returncode != 0 and stderr.startswith(b"bwrap: execvp "):
        # The sandbox was made; the root lacks the program to run in it.
        missing = stderr[len(b"bwrap: execvp ") :].split(b":", 1)[0].decode(errors="replace")
        raise SandboxError(
            f"the root has no {missing} to run: {stderr.decode(errors='replace').strip()}",
            hint=f"add a package that provides {missing} to the rootfs "
            '(e.g. "dash" for /bin/sh, "busybox-static" for /bin/busybox)',
        )
    if proc.returncode != 0 and stderr.startswith(b"bwrap:"):
        raise SandboxUnavailable(
            f"bwrap could not create the sandbox: {stderr.decode(errors='replace').strip()}",
            hint="user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone)",
        )
    if check and proc.returncode != 0:
        tail = stderr.decode(errors="replace").strip().splitlines()[-15:]
        raise SandboxError(
            f"{spec.what}: command failed with exit code {proc.returncode} in the sandbox: "
            f"{' '.join(spec.command)}" + ("\n  " + "\n  ".join(tail) if tail else "")
        )
    return SandboxResult(proc.returncode, proc.stdout, stderr)


def inside(root: Path, path: str) -> Path | None:
    """The host path of *path* as a command in the sandbox saw it, or None if missing.

    Symlinks on the way are followed inside *root* (absolute targets restart
    at it, ``..`` stops there), so the result lies in the tree whatever links
    a script left; the last component is not followed. Safe to use after
    :func:`run` because nothing it started is still running.
    """
    parts = member_parts(path.lstrip("/"), context=str(path))
    try:
        with SafeRoot(root) as safe:
            stack, st = safe.resolve(parts, follow_last=False, context=path)
    except (TreeError, UnsafePathError):  # a parent is missing or a link loops
        return None
    if st is None:
        return None
    return root.joinpath(*(os.fsdecode(p) for p in stack))


def remove_inside(root: Path, path: str) -> None:
    """Remove *path* (a file, a link or a whole directory) as the sandbox sees it."""
    found = inside(root, path)
    if found is None or found == root:
        return
    if found.is_dir() and not found.is_symlink():
        shutil.rmtree(found)
    else:
        found.unlink()
