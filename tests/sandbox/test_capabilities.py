"""The exact capability set inside the sandbox: what is documented, nothing more.

A deny list (no SYS_ADMIN, no MKNOD, ...) passes a sandbox that keeps one
capability too many; this reads ``/proc/self/status`` from inside a real
bwrap sandbox and compares every capability set with the documented kept set
bit for bit. Changing what the sandbox keeps means changing the set below,
``reprobuild.sandbox.KEPT_CAPABILITIES`` and docs/reliability.md together.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from reprobuild.sandbox import KEPT_CAPABILITIES, SandboxSpec, run

ROOT = Path(__file__).resolve().parents[2]
BUSYBOX_DEB = next((ROOT / "snapshots" / "demo").rglob("busybox-static_*.deb"))

# The set docs/reliability.md documents ("the sandbox drops every capability but ...").
DOCUMENTED = {
    "chown", "dac_override", "fowner", "fsetid", "kill", "setuid", "setgid", "setfcap",
    "sys_chroot",
}  # fmt: skip

# linux/capability.h
NUMBERS = {
    "chown": 0, "dac_override": 1, "dac_read_search": 2, "fowner": 3, "fsetid": 4, "kill": 5,
    "setgid": 6, "setuid": 7, "setpcap": 8, "linux_immutable": 9, "net_bind_service": 10,
    "net_broadcast": 11, "net_admin": 12, "net_raw": 13, "ipc_lock": 14, "ipc_owner": 15,
    "sys_module": 16, "sys_rawio": 17, "sys_chroot": 18, "sys_ptrace": 19, "sys_pacct": 20,
    "sys_admin": 21, "sys_boot": 22, "sys_nice": 23, "sys_resource": 24, "sys_time": 25,
    "sys_tty_config": 26, "mknod": 27, "lease": 28, "audit_write": 29, "audit_control": 30,
    "setfcap": 31, "mac_override": 32, "mac_admin": 33, "syslog": 34, "wake_alarm": 35,
    "block_suspend": 36, "audit_read": 37, "perfmon": 38, "bpf": 39, "checkpoint_restore": 40,
}  # fmt: skip

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="bwrap is not installed (Debian package bubblewrap)"
)


def names(mask: int) -> set[str]:
    by_number = {n: name for name, n in NUMBERS.items()}
    return {by_number.get(bit, f"cap_{bit}") for bit in range(64) if mask >> bit & 1}


@pytest.fixture(scope="module")
def status(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """``/proc/self/status`` of a process inside the sandbox, as a run step sees it."""
    root = tmp_path_factory.mktemp("caps") / "root"
    subprocess.run(["dpkg-deb", "-x", str(BUSYBOX_DEB), str(root)], check=True)
    (root / "bin" / "sh").symlink_to("busybox")
    spec = SandboxSpec(
        root=root, command=("/bin/sh", "-c", "/bin/busybox cat /proc/self/status"), epoch=0
    )
    text = run(spec).stdout.decode()
    return dict(re.findall(r"^(\w+):\s*(.*)$", text, re.M))


def test_the_documented_set_is_what_the_code_keeps() -> None:
    assert {c.removeprefix("CAP_").lower() for c in KEPT_CAPABILITIES} == DOCUMENTED
    docs = (ROOT / "docs" / "reliability.md").read_text()
    line = next(ln for ln in docs.splitlines() if "drops every capability but" in ln)
    listed = re.search(r"drops every capability but ([a-z_, ]+)", line)
    assert listed is not None
    assert {c.strip() for c in listed.group(1).split(",")} == DOCUMENTED


def test_capabilities_inside_are_exactly_the_documented_set(status: dict[str, str]) -> None:
    expected = sum(1 << NUMBERS[c] for c in DOCUMENTED) if os.geteuid() == 0 else 0
    for field in ("CapEff", "CapPrm"):
        got = int(status[field], 16)
        assert got == expected, (
            f"{field} {status[field]}: extra {sorted(names(got) - names(expected))}, "
            f"missing {sorted(names(expected) - names(got))}"
        )
    # Ambient (and so inheritable) capabilities are how the kept set survives the
    # execve of the script and its children; they must hold nothing more.
    for field in ("CapInh", "CapAmb"):
        assert int(status[field], 16) & ~expected == 0, (
            field,
            sorted(names(int(status[field], 16))),
        )
    # As root, bwrap leaves the bounding set full; no_new_privs (below) is what keeps
    # an execve (root's implicit file capabilities, setuid, setcap files) from
    # raising the permitted set above: the kernel intersects it with the old one.


def test_no_new_privileges_inside(status: dict[str, str]) -> None:
    """A setuid binary in the tree cannot give back what was dropped."""
    assert status["NoNewPrivs"] == "1"


def test_capsh_reads_the_same_set(status: dict[str, str]) -> None:
    """An independent decoder of the mask (libcap's capsh) agrees with the table above."""
    if shutil.which("capsh") is None:
        pytest.skip("capsh is not installed (Debian package libcap2-bin)")
    mask = int(status["CapEff"], 16)
    out = subprocess.run(
        ["capsh", f"--decode={mask:x}"], capture_output=True, text=True, check=True
    ).stdout
    decoded = out.strip().split("=", 1)[1] if "=" in out else ""
    assert {c.removeprefix("cap_") for c in decoded.split(",") if c} == names(mask)
