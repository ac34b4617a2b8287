"""Resource limits of the sandbox: settings, how they are applied, what broke them.

A command from a package or a recipe must not exhaust the build machine.
Four settings, each an environment variable with a default (sizes take
``K``/``M``/``G``/``T`` binary suffixes):

=============================  =========  =====================================
``REPROBUILD_SANDBOX_MEMORY``     8G      data + anonymous memory of each process
                                          (``RLIMIT_DATA``)
``REPROBUILD_SANDBOX_PROCESSES``  4096    processes at once (a pids cgroup where
                                          one can be made, else ``RLIMIT_NPROC``)
``REPROBUILD_SANDBOX_FILE_SIZE``  16G     largest file written (``RLIMIT_FSIZE``)
``REPROBUILD_SANDBOX_TMPFS``      1G      size of each tmpfs (``/tmp``, ``/run``)
=============================  =========  =====================================

``RLIMIT_NPROC`` is not enforced for uid 0 of the host, so as root the
process limit comes from a pids cgroup (cgroup v1 ``pids`` hierarchy, made
per command and removed after it); where none can be made (cgroup v2
without delegation) the limit is not enforced as root, which SECURITY.md says.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from reprobuild.errors import UsageError

SETTINGS: Final = {
    "memory": ("REPROBUILD_SANDBOX_MEMORY", "8G"),
    "processes": ("REPROBUILD_SANDBOX_PROCESSES", "4096"),
    "file_size": ("REPROBUILD_SANDBOX_FILE_SIZE", "16G"),
    "tmpfs": ("REPROBUILD_SANDBOX_TMPFS", "1G"),
}
_SIZE: Final = re.compile(r"^\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
_UNITS: Final = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_PIDS_V1: Final = Path("/sys/fs/cgroup/pids")
SIGXFSZ_EXIT: Final = 128 + 25  # bwrap exits 128+N when its command dies of signal N


def _parse(name: str, value: str, *, size: bool) -> int:
    match = _SIZE.match(value)
    if match is None or (not size and match.group(2)):
        raise UsageError(
            f"{name}={value!r} is not a {'size' if size else 'count'}",
            hint=f"e.g. {name}={'2G' if size else '1024'}",
        )
    number = int(match.group(1)) * _UNITS[match.group(2).upper()]
    if number <= 0:
        raise UsageError(f"{name} must be positive (got {value!r})")
    return number


@dataclass(frozen=True)
class SandboxLimits:
    memory: int
    processes: int
    file_size: int
    tmpfs: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SandboxLimits:
        env = os.environ if environ is None else environ
        values = {}
        for field_, (var, default) in SETTINGS.items():
            values[field_] = _parse(var, env.get(var) or default, size=field_ != "processes")
        return cls(**values)

    def rlimits(self, *, cgroup: bool) -> dict[str, int]:
        """setrlimit(2) resources (names without ``RLIMIT_``) for the trampoline."""
        limits = {"DATA": self.memory, "FSIZE": self.file_size}
        if not cgroup:
            limits["NPROC"] = self.processes
        return limits


@contextlib.contextmanager
def pids_cgroup(limit: int) -> Iterator[Path | None]:
    """A fresh pids cgroup (v1) limited to *limit* processes, or None if none can be made.

    The command moves itself in (``cgroup.procs``); afterwards the group is removed.
    """
    if os.geteuid() != 0 or not (_PIDS_V1 / "cgroup.procs").is_file():
        yield None
        return
    group = _PIDS_V1 / "reprobuild" / uuid.uuid4().hex
    try:
        group.mkdir(parents=True)
        (group / "pids.max").write_text(f"{limit}\n")
    except OSError:
        with contextlib.suppress(OSError):
            group.rmdir()
        yield None
        return
    try:
        yield group
    finally:
        for _ in range(50):  # the kernel frees the group once its last zombie is reaped
            try:
                group.rmdir()
                break
            except OSError:
                import time

                time.sleep(0.01)


def pids_limit_hit(group: Path | None) -> bool:
    """Whether a fork in *group* was refused for the process limit."""
    if group is None:
        return False
    try:
        text = (group / "pids.events").read_text()
    except OSError:
        return False
    return any(line.split()[:1] == ["max"] and line.split()[1] != "0" for line in text.splitlines())


def explain(
    limits: SandboxLimits, returncode: int, stderr: bytes, *, pids_hit: bool
) -> str | None:
    """Which limit a failed command most likely ran into, as a sentence, or None."""
    text = stderr.decode(errors="replace")
    if returncode == SIGXFSZ_EXIT or any(
        s in text for s in ("File size limit exceeded", "File too large")
    ):
        var = SETTINGS["file_size"][0]
        return f"a file grew past the file size limit of {limits.file_size} bytes ({var})"
    if pids_hit or "fork: Resource temporarily unavailable" in text:
        var = SETTINGS["processes"][0]
        return f"it ran into the limit of {limits.processes} processes ({var})"
    if "No space left on device" in text:
        var = SETTINGS["tmpfs"][0]
        return (
            f"a file system filled up (/tmp and /run hold at most {limits.tmpfs} bytes each, "
            f"{var})"
        )
    if any(s in text for s in ("Cannot allocate memory", "MemoryError", "out of memory")):
        var = SETTINGS["memory"][0]
        return f"it ran out of memory (at most {limits.memory} bytes per process, {var})"
    return None
