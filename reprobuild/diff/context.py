"""State shared by one comparison: scratch space, options, external tools.

External programs are optional (diffoscope's rule): :meth:`Context.run`
returns ``None`` and records why when a tool is missing or fails, and the
caller turns that reason into a comment on its :class:`Difference`.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from reprobuild.diff.model import Difference
from reprobuild.errors import ReprobuildError

__all__ = ["HEAD_SIZE", "Context", "Probe", "ToolProblem"]

#: Enough bytes to see every magic number we test (ISO 9660's is at 32769).
HEAD_SIZE: Final = 36 * 1024

_SBIN: Final = ("/usr/local/sbin", "/usr/sbin", "/sbin")
_PACKAGES: Final = {
    "xorriso": "xorriso",
    "debugfs": "e2fsprogs",
    "sfdisk": "fdisk",
    "unsquashfs": "squashfs-tools",
    "diffoscope": "diffoscope-minimal",
}


class ToolProblem(Exception):
    """An external tool is missing or failed; the message becomes a comment."""


SCRATCH_SETTING: Final = "REPROBUILD_DIFF_MAX_SCRATCH"
DEFAULT_SCRATCH: Final = 4 << 30


class ScratchLimit(ReprobuildError):
    """Decompressing what is compared would write more than the scratch limit."""


def scratch_limit() -> int:
    """Bytes a comparison may unpack in all (``REPROBUILD_DIFF_MAX_SCRATCH``, 4 GiB):
    a small compressed bomb must not fill the disk."""
    value = os.environ.get(SCRATCH_SETTING, "")
    return int(value) if value.isdigit() and int(value) > 0 else DEFAULT_SCRATCH


@dataclass(frozen=True)
class Probe:
    """A file or directory to compare, with the bytes that identify its format.

    *name* is the name a user would recognise (the member name inside an
    archive), since scratch copies carry meaningless names.
    """

    path: Path
    name: str
    is_dir: bool
    head: bytes

    @classmethod
    def of(cls, path: Path, name: str | None = None) -> Probe:
        is_dir = path.is_dir()
        head = b""
        if not is_dir:
            with open(path, "rb") as handle:
                head = handle.read(HEAD_SIZE)
        return cls(
            path=path, name=name if name is not None else path.name, is_dir=is_dir, head=head
        )

    def size(self) -> int:
        return 0 if self.is_dir else self.path.stat().st_size


CompareFn = Callable[["Context", Probe, Probe, str], Difference | None]


@dataclass
class Context:
    """Options and scratch space for one :func:`reprobuild.diff.compare` call."""

    workdir: Path
    compare_fn: CompareFn
    use_diffoscope: bool = False
    #: Said once at the top rather than on every file (e.g. diffoscope missing).
    notes: list[str] = field(default_factory=list)
    _counter: itertools.count[int] = field(default_factory=itertools.count)
    scratch_limit: int = field(default_factory=scratch_limit)
    scratch_used: int = 0

    def charge(self, n: int, what: str) -> None:
        """Count *n* more bytes written to scratch; past the limit, stop with an error."""
        self.scratch_used += n
        if self.scratch_used > self.scratch_limit:
            raise ScratchLimit(
                f"comparing needs more than {self.scratch_limit} bytes of scratch space "
                f"(unpacking {what}, {SCRATCH_SETTING}): does a small file expand without bound?",
                hint=f"raise {SCRATCH_SETTING} (bytes) if the inputs are genuine",
            )

    def compare(self, a: Probe, b: Probe, label: str) -> Difference | None:
        """Compare two nested things by content (the recursion entry point)."""
        return self.compare_fn(self, a, b, label)

    def scratch(self, what: str) -> Path:
        """A fresh directory under the work directory."""
        path = self.workdir / f"{next(self._counter):05d}-{what}"
        path.mkdir()
        return path

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    @staticmethod
    def which(tool: str) -> str | None:
        parts = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p]
        parts += [p for p in _SBIN if p not in parts]
        return shutil.which(tool, path=os.pathsep.join(parts))

    def run(self, argv: Sequence[str], *, what: str, ok_codes: Sequence[int] = (0,)) -> bytes:
        """Run a tool and return its stdout, or raise :class:`ToolProblem`."""
        exe = self.which(argv[0])
        if exe is None:
            package = _PACKAGES.get(argv[0], argv[0])
            raise ToolProblem(f"{argv[0]} is not installed, {what} (apt-get install {package})")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", "TZ": "UTC"}
        try:
            proc = subprocess.run(
                [exe, *argv[1:]], capture_output=True, env=env, check=False, timeout=3600
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ToolProblem(f"{argv[0]} could not run ({exc}), {what}") from exc
        if proc.returncode not in ok_codes:
            tail = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip()[-500:]
            raise ToolProblem(f"{argv[0]} exited with status {proc.returncode}, {what}: {tail}")
        return proc.stdout
