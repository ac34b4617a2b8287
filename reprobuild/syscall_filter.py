"""The seccomp filter every sandboxed command runs under.

Capabilities decide what root may do to files; a few system calls reach the
kernel itself whatever the capabilities say, or would let a command leave
the namespaces bwrap made. They fail with ``EPERM`` inside the sandbox, as
they do in Docker's and Flatpak's default profiles:

* mounting (``mount``, ``umount2``, ``pivot_root`` and the new mount API),
* the kernel keyrings (``keyctl``, ``add_key``, ``request_key``),
* other processes' memory (``ptrace``, ``process_vm_readv``/``writev``),
* kernels and modules (``kexec_load``, ``kexec_file_load``,
  ``init_module``, ``finit_module``, ``delete_module``),
* namespace escapes (``unshare``, ``setns``, ``clone`` with any
  ``CLONE_NEW*`` flag), ``open_by_handle_at``, ``bpf``,
  ``perf_event_open``, ``userfaultfd``, swap, reboot, the clock, ``acct``,
  ``syslog``, ``iopl``/``ioperm``, ``quotactl``.

``clone3`` answers ``ENOSYS``: its flags sit in memory a filter cannot read,
and glibc then falls back to ``clone``, whose flags it can.

The program is compiled by libseccomp (through the ``pyseccomp`` ctypes
binding, since Debian's ``python3-seccomp`` exists only for the system
Python): it knows every architecture's system call numbers and the x32 and
i386 entry points of an x86-64 kernel, which a hand-written BPF program
would have to get right by itself. bwrap loads it (``--seccomp FD``) just
before it runs the command.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from functools import cache
from typing import Any, Final

from reprobuild.errors import ReprobuildError

DENIED: Final = (
    "mount",
    "umount2",
    "pivot_root",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "keyctl",
    "add_key",
    "request_key",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "unshare",
    "setns",
    "open_by_handle_at",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "swapon",
    "swapoff",
    "reboot",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "acct",
    "syslog",
    "iopl",
    "ioperm",
    "quotactl",
)
"""System calls that fail with EPERM inside the sandbox."""

CLONE_NEW_FLAGS: Final = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}


class SeccompUnavailable(ReprobuildError):
    """libseccomp (or its Python binding) is missing: no sandbox without a filter."""


def _library() -> Any:
    try:
        import pyseccomp
    except (ImportError, OSError, AttributeError, TypeError) as exc:
        raise SeccompUnavailable(
            f"the seccomp library cannot be loaded ({exc}); sandboxed steps need it",
            hint="install the Debian package libseccomp2 and the Python package pyseccomp",
        ) from None
    return pyseccomp


@cache
def compiled_filter() -> bytes:
    """The BPF program (``struct sock_filter`` array) for this machine's architecture."""
    sc = _library()
    filt = sc.SyscallFilter(sc.ALLOW)
    native = sc.system_arch()
    if native == sc.Arch.X86_64:  # the 32-bit entry points reach the same kernel
        for extra in (sc.Arch.X86, sc.Arch.X32):
            if not filt.exist_arch(extra):
                filt.add_arch(extra)
    eperm = sc.ERRNO(errno.EPERM)
    for name in DENIED:
        try:
            filt.add_rule(eperm, name)
        except (OSError, ValueError, RuntimeError):  # not a system call on this architecture
            continue
    for flag in CLONE_NEW_FLAGS.values():
        filt.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    with contextlib.suppress(OSError, ValueError, RuntimeError):
        filt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    with tempfile.TemporaryFile() as handle:
        filt.export_bpf(handle)
        handle.seek(0)
        return handle.read()


def filter_fd() -> int:
    """A new descriptor to read the compiled filter from (bwrap's ``--seccomp FD``).

    The caller passes it to bwrap (``pass_fds``) and closes it afterwards.
    """
    program = compiled_filter()
    fd = os.memfd_create("reprobuild-seccomp", os.MFD_CLOEXEC)
    try:
        os.write(fd, program)
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd
