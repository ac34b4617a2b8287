"""Boot an image under QEMU (software emulation) and watch the serial console."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

OVMF = Path("/usr/share/ovmf/OVMF.fd")


def boot_and_wait(
    image: Path, *, firmware: str, media: str, marker: str, log: Path, timeout: float = 600
) -> float:
    """Seconds until *marker* appeared on the serial console; fail with the log's tail.

    QEMU is killed at the end whatever happens.
    """
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        pytest.skip("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
    argv = [qemu, "-accel", "tcg", "-m", "512", "-display", "none", "-monitor", "none"]
    argv += ["-serial", f"file:{log}", "-no-reboot", "-net", "none"]
    if firmware == "uefi":
        if not OVMF.is_file():
            pytest.skip(f"{OVMF} is missing (apt-get install ovmf)")
        argv += ["-bios", str(OVMF)]
    if media == "cdrom":
        argv += ["-drive", f"file={image},media=cdrom,readonly=on"]
    else:
        argv += ["-drive", f"file={image},format=raw,snapshot=on"]
    start = time.monotonic()
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        while time.monotonic() - start < timeout:
            if log.exists() and marker.encode() in log.read_bytes():
                return time.monotonic() - start
            if proc.poll() is not None:
                break
            time.sleep(0.5)
        if log.exists() and marker.encode() in log.read_bytes():
            return time.monotonic() - start
        text = log.read_bytes().decode("utf-8", "replace") if log.exists() else ""
        err = (
            proc.stderr.read().decode("utf-8", "replace")
            if proc.poll() is not None and proc.stderr
            else ""
        )
        pytest.fail(
            f"{marker} did not appear within {timeout:.0f} s ({firmware}, {media}); "
            f"{_stalled(log, proc)}:\n{text[-3000:]}\n{err}"
        )
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stderr:
            proc.stderr.close()


def _stalled(log: Path, proc: subprocess.Popen[bytes]) -> str:
    """What tells a slow machine from a hung guest: did the console stop, was QEMU busy?

    A guest that is merely starved keeps writing and QEMU keeps using CPU;
    a hung one (or a full disk, where the serial file stops growing) does not.
    """
    if not log.exists():
        return "no serial log was written"
    st = log.stat()
    quiet = time.time() - st.st_mtime
    cpu = ""
    if proc.poll() is None:
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks = int(fields[11]) + int(fields[12])  # utime + stime
            cpu = f", QEMU used {ticks / os.sysconf('SC_CLK_TCK'):.0f} s of CPU"
        except (OSError, IndexError, ValueError):
            pass
    load = os.getloadavg()[0]
    return (
        f"serial log {st.st_size} bytes, last written {quiet:.0f} s ago{cpu}, "
        f"load average {load:.1f}"
    )
