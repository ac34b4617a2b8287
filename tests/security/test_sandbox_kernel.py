"""Row 'medium' of issue 18: the sandbox's kernel surface (busybox root, real bwrap).

The sandbox shared the host's session keyring; as root it had no user
namespace and no seccomp filter. Now: a seccomp filter refuses mount,
keyctl, ptrace, namespace escapes...; the command has a keyring of its own;
as root it runs in a new user namespace.
"""

from __future__ import annotations

import ctypes
import os
import platform
from pathlib import Path

import pytest

from reprobuild.sandbox import SandboxSpec, run

EPOCH = 1_783_765_000
SYS_ADD_KEY = {"x86_64": 248, "aarch64": 217}
SYS_KEYCTL = {"x86_64": 250, "aarch64": 219}
KEY_SPEC_SESSION_KEYRING = -3
KEYCTL_SETPERM, KEYCTL_REVOKE = 5, 3


def sh(root: Path, script: str) -> tuple[int, str]:
    result = run(SandboxSpec(root=root, command=("/bin/sh", "-c", script), epoch=EPOCH), check=False)
    return result.returncode, (result.stdout + result.stderr).decode()


def test_a_seccomp_filter_refuses_mount_namespaces_and_keyrings(busybox_root: Path) -> None:
    code, out = sh(busybox_root, "grep Seccomp: /proc/self/status")
    assert code == 0 and out.split() == ["Seccomp:", "2"], out
    for script in (
        "unshare -n true",  # a new network namespace: a way out of the sandbox's
        "unshare -U true",  # a user namespace of its own, with every capability in it
        "mount -t tmpfs none /tmp",
    ):
        code, out = sh(busybox_root, script)
        assert code != 0 and ("not permitted" in out or "permission denied" in out), (script, out)


@pytest.mark.skipif(os.geteuid() != 0, reason="only as root: as another user bwrap always makes a user namespace")
def test_as_root_the_sandbox_has_its_own_user_namespace(busybox_root: Path) -> None:
    code, out = sh(busybox_root, "readlink /proc/self/ns/user; cat /proc/self/uid_map")
    assert code == 0, out
    inside, *mapping = out.splitlines()
    assert inside != os.readlink("/proc/self/ns/user")
    # every id maps to itself: owners in the tree stay what they were
    assert mapping[0].split() == ["0", "0", "4294967295"]


def test_the_hosts_session_keyring_is_out_of_reach(busybox_root: Path) -> None:
    machine = platform.machine()
    if machine not in SYS_ADD_KEY:
        pytest.skip(f"no keyctl numbers for {machine}")
    libc = ctypes.CDLL(None, use_errno=True)
    name = f"reprobuild-test-secret-{os.getpid()}".encode()
    key = libc.syscall(
        SYS_ADD_KEY[machine], b"user", name, b"s3cret", 6, KEY_SPEC_SESSION_KEYRING
    )
    if key < 0:
        pytest.skip(f"cannot add a key here (errno {ctypes.get_errno()})")
    try:
        # only a possessor (through the session keyring) may see it
        assert libc.syscall(SYS_KEYCTL[machine], KEYCTL_SETPERM, key, 0x3F000000) == 0
        assert name.decode() in Path("/proc/keys").read_text()
        code, out = sh(busybox_root, "cat /proc/keys")
        assert code == 0, out
        assert name.decode() not in out
    finally:
        libc.syscall(SYS_KEYCTL[machine], KEYCTL_REVOKE, key)
