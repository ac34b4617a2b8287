"""A VM under QEMU (software emulation) driven through its serial console.

QEMU's first serial port is its stdin/stdout; a thread copies what the guest
writes into a buffer and a log file, and :meth:`Vm.expect` waits for text
after what was already matched, as expect(1) does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType

OVMF = Path("/usr/share/ovmf/OVMF.fd")


class ConsoleTimeout(AssertionError):
    """The guest did not print what was expected in time (the message has the log's tail)."""


def qemu_argv(
    image: Path, *, firmware: str, media: str, fmt: str = "raw", memory: int = 1024
) -> list[str]:
    """QEMU's command line: TCG (no KVM here), serial on stdio, no network or display.

    *media*: ``disk`` (IDE hard disk), ``cdrom``, or ``usb`` (a USB mass-storage disk).
    """
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        raise FileNotFoundError("qemu-system-x86_64 (apt-get install qemu-system-x86)")
    argv = [qemu, "-accel", "tcg", "-m", str(memory), "-smp", "1"]
    argv += ["-display", "none", "-monitor", "none", "-serial", "stdio"]
    argv += ["-no-reboot", "-nic", "none"]
    if firmware == "uefi":
        if not OVMF.is_file():
            raise FileNotFoundError(f"{OVMF} (apt-get install ovmf)")
        argv += ["-bios", str(OVMF)]
    if media == "cdrom":
        argv += ["-drive", f"file={image},media=cdrom,readonly=on,format=raw"]
    elif media == "usb":
        argv += [
            "-drive", f"if=none,id=stick,file={image},format={fmt},snapshot=on",
            "-device", "qemu-xhci,id=xhci",
            "-device", "usb-storage,bus=xhci.0,drive=stick,bootindex=0",
        ]  # fmt: skip
    else:
        argv += ["-drive", f"file={image},format={fmt},snapshot=on"]
    return argv


class Vm:
    """A running QEMU; use as a context manager (it is killed on exit)."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = log
        self.started = time.monotonic()
        self._buf = bytearray()
        self._pos = 0
        self._last_output = self.started
        self._lock = threading.Lock()
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return
            with self._lock:
                self._buf += chunk
                self._last_output = time.monotonic()
            self._out.write(chunk)
            self._out.flush()

    def text(self) -> str:
        with self._lock:
            return self._buf.decode("utf-8", "replace")

    def expect(self, pattern: str | bytes, timeout: float) -> float:
        """Seconds since start when *pattern* (a regex) appeared after the last match."""
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                m = rx.search(self._buf, self._pos)
                if m:
                    self._pos = m.end()
                    return time.monotonic() - self.started
            if time.monotonic() > deadline or (
                self.proc.poll() is not None and not self._reader.is_alive()
            ):
                tail = self.text()[-4000:]
                state = "running" if self.proc.poll() is None else f"exited {self.proc.returncode}"
                quiet = time.monotonic() - self._last_output
                raise ConsoleTimeout(
                    f"{pattern!r} did not appear within {timeout:.0f} s (QEMU {state}; "
                    f"the console was quiet for the last {quiet:.0f} s, "
                    f"load average {os.getloadavg()[0]:.1f}); "
                    f"console log {self.log}, its end:\n{tail}"
                )
            time.sleep(0.2)

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def __enter__(self) -> Vm:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._reader.join(5)
        self._out.close()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


def log_in_and_use(vm: Vm, *, user: str, password: str, timeout: float) -> dict[str, float]:
    """Log in on the console, make a file in / with sudo, check that first boot
    made SSH host keys and ssh.service runs, show os-release, power off.

    Returns the seconds from QEMU's start at which each stage was reached.
    """
    times = {"login": vm.expect(r"login: ", timeout)}
    vm.send(user + "\n")
    vm.expect(r"Password: ", 120)
    vm.send(password + "\n")
    vm.expect(r"[$#] ", 300)  # typed ahead, a command would be lost while login works
    vm.send("echo RB-$((6*7))-SHELL\n")
    times["shell"] = vm.expect(r"RB-42-SHELL", 300)
    # sudo's own output can be lost on the serial console (use_pty); the
    # shell it starts reports, and the user's shell checks the result.
    vm.send(f"echo {password} | sudo -S sh -c 'touch /x && echo RB-$((2+3))-TOUCHED'\n")
    vm.expect(r"RB-5-TOUCHED", 180)
    # First boot made what the image must not hold: SSH host keys
    # (sshd-keygen.service, before ssh.service) and a machine ID. (As root:
    # the image has no D-Bus, so systemctl cannot ask systemd as a user.)
    check = (
        "for i in $(seq 60); do systemctl is-active -q ssh.service && break; sleep 2; done; "
        "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub; test -s /etc/machine-id && "
        "echo RB-FIRSTBOOT-$(systemctl is-active ssh.service)-$(hostname)-$(ls /etc/ssh | "
        'grep -c "^ssh_host_.*_key$")-keys'
    )
    vm.send(f"echo {password} | sudo -S sh -c '{check}'\n")
    times["sshd"] = vm.expect(r"RB-FIRSTBOOT-\S+-keys", 300)
    state = re.findall(r"RB-FIRSTBOOT-(\S+)-keys", vm.text())[-1]
    assert state.startswith("active-") and state.endswith("-3"), (
        f"after first boot: ssh.service-hostname-host keys is {state!r} (log {vm.log})"
    )
    vm.send("ls -l /x && cat /etc/os-release && echo RB-$((1+1))-DONE\n")
    vm.expect(r"PRETTY_NAME=\"Debian GNU/Linux 12 \(bookworm\)\"", 180)
    times["used"] = vm.expect(r"RB-2-DONE", 60)
    vm.send(f"echo {password} | sudo -S systemctl poweroff\n")
    vm.expect(r"reboot: Power down|Power down|System halted", 300)
    times["off"] = time.monotonic() - vm.started
    vm.wait_exit(60)
    return times
