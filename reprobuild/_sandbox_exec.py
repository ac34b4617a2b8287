"""Trampoline between reprobuild and bwrap: what bwrap itself cannot set up.

Run as ``python -I -S _sandbox_exec.py [OPTIONS] -- BWRAP-ARGV...`` (a fresh,
single-threaded interpreter, so forking here is safe, unlike in a build with
worker threads). In order, before it becomes bwrap with ``execv``:

* ``--cgroup DIR``: move into this pids cgroup (the process limit).
* ``--rlimit NAME=N``: setrlimit, inherited by bwrap and the command.
* always: join a new anonymous session keyring, so nothing run later can
  reach the caller's keys (the seccomp filter then refuses keyctl anyway).
* ``--userns``: as root, a new user namespace whose ids map one to one onto
  the host's (so files keep their owners and the bytes do not change), made
  by unshare(2) here and mapped by a forked helper still outside it. Every
  capability bwrap keeps is then a capability over that namespace only: no
  module loading, raw I/O or mounting of the host's devices whatever is kept.
  Where the kernel refuses (user namespaces disabled), it goes on without.

Imports only the standard library: this file is run by path, not imported.
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import signal
import sys

CLONE_NEWUSER = 0x10000000
KEYCTL_JOIN_SESSION_KEYRING = 1
SYS_KEYCTL = {"x86_64": 250, "aarch64": 219, "i686": 288, "i386": 288}
FULL_MAP = "0 0 4294967295\n"


def _user_namespace(libc: ctypes.CDLL) -> bool:
    """unshare(CLONE_NEWUSER) and have a helper outside write the identity maps."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    helper = os.fork()
    if helper == 0:
        os.close(ready_w)
        os.close(done_r)
        ok = os.read(ready_r, 1) == b"1"
        status = 1
        if ok:
            parent = os.getppid()
            try:
                for name in ("uid_map", "gid_map"):
                    with open(f"/proc/{parent}/{name}", "w") as handle:
                        handle.write(FULL_MAP)
                status = 0
            except OSError:
                status = 1
        os.write(done_w, b"0" if status == 0 else b"1")
        os._exit(status)
    os.close(ready_r)
    os.close(done_w)
    made = libc.unshare(CLONE_NEWUSER) == 0
    os.write(ready_w, b"1" if made else b"0")
    os.close(ready_w)
    mapped = os.read(done_r, 1) == b"0"
    os.waitpid(helper, 0)
    if made and not mapped:
        sys.stderr.write("reprobuild: cannot map the ids of the sandbox's user namespace\n")
        sys.exit(125)
    return bool(made)


def main(argv: list[str]) -> None:
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1 :]
    libc = ctypes.CDLL(None, use_errno=True)
    userns = False
    i = 0
    while i < len(options):
        opt = options[i]
        if opt == "--userns":
            userns = True
        elif opt == "--cgroup":
            i += 1
            try:
                with open(os.path.join(options[i], "cgroup.procs"), "w") as handle:
                    handle.write(f"{os.getpid()}\n")
            except OSError as exc:  # the limit is then not enforced; the build goes on
                sys.stderr.write(f"reprobuild: cannot join the pids cgroup: {exc}\n")
        elif opt == "--rlimit":
            i += 1
            name, _, value = options[i].partition("=")
            limit = int(value)
            resource.setrlimit(getattr(resource, f"RLIMIT_{name}"), (limit, limit))
        i += 1
    number = SYS_KEYCTL.get(platform.machine())
    if number is not None and libc.syscall(number, KEYCTL_JOIN_SESSION_KEYRING, None) < 0:
        sys.stderr.write("reprobuild: cannot give the sandbox its own session keyring\n")
        sys.exit(125)
    if userns:
        _user_namespace(libc)
    # Python ignores these at start-up; what runs next must get the defaults, as
    # subprocess's restore_signals gives a child (a pipeline's writer dies of SIGPIPE).
    for name in ("SIGPIPE", "SIGXFSZ", "SIGXFZ"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
