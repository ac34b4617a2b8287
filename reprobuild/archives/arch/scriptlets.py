"""Arch packages' ``post_install`` scriptlets and the hooks pacstrap's pacman runs
after them (ldconfig, systemd-sysusers), in the sandbox (split from
:mod:`.install`, which unpacks and registers the packages first)."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from reprobuild.sandbox import Bind, SandboxSpec, run
from reprobuild.tree import SafeRoot, TreeError, UnsafePathError

if TYPE_CHECKING:
    from reprobuild.archives.arch.install import AlpmUnpackResult

__all__ = ["run_scriptlets"]

#: Arch builds pacman with ``-D scriptlet-shell=/usr/bin/bash -D ldconfig=/usr/bin/ldconfig``.
SCRIPTLET_SHELLS: Final = ("/usr/bin/bash", "/bin/bash")
LDCONFIG: Final = "/usr/bin/ldconfig"
SYSUSERS: Final = "/usr/bin/systemd-sysusers"
SCRIPTLET_TIMEOUT: Final = 900.0
#: Fixed stand-in for the ``mkdtemp("alpm_XXXXXX")`` name pacman uses.
SCRIPTLET_DIR: Final = "/tmp/alpm_000000"


# --------------------------------------------------------------------------
# Scriptlets and hooks
# --------------------------------------------------------------------------


def _in_tree(root: Path, path: str, *, executable: bool) -> bool:
    """Whether *path* exists in the tree (symlinks resolved inside it)."""
    parts = tuple(p for p in path.encode().split(b"/") if p)
    with SafeRoot(root) as safe:
        try:
            _, st = safe.resolve(parts, follow_last=True, context=f"looking for {path}")
        except (TreeError, UnsafePathError):
            return False
    if st is None or not stat.S_ISREG(st.st_mode):
        return False
    return not executable or bool(st.st_mode & 0o111)


def _mentions(script: bytes, function: str) -> bool:
    """trans.c ``grep()``: the name outside ``#`` comments, line by line."""
    needle = function.encode()
    return any(needle in line.split(b"#", 1)[0] for line in script.split(b"\n"))


@dataclass(frozen=True)
class _Ran:
    label: str
    returncode: int
    stderr: bytes = field(repr=False, default=b"")


def run_scriptlets(
    root: Path,
    packages: Sequence[AlpmUnpackResult],
    *,
    epoch: int,
    strict: bool = False,
) -> list[str]:
    """Run ``post_install`` scriptlets in order, then ldconfig and sysusers.

    Only when the tree has bash (``/usr/bin/bash``, else ``/bin/bash``);
    without it nothing runs and the list is empty (unpack only). Each
    scriptlet runs as pacman runs it: ``bash -c ". /tmp/alpm_XXXXXX/.INSTALL;
    post_install VERSION"`` chrooted, with umask 022 (here: in the sandbox,
    the directory name fixed, ``umask 022;`` put in front since bwrap keeps
    ours). Like pacman, a failing scriptlet does not stop the others; it is
    reported in the returned line, or raised with *strict*.

    Then ``ldconfig`` when ``/etc/ld.so.conf`` and ``/usr/bin/ldconfig`` exist
    (pacman's ``_alpm_ldconfig``), and ``systemd-sysusers`` when present
    (systemd's pacman hook; it writes ``/etc/passwd``, ``group``, ``shadow``,
    whose dates normalisation fixes). Not run: ``systemd-tmpfiles --create``
    and other hooks, which look at the clock or the host's devices.
    """
    shell = next((s for s in SCRIPTLET_SHELLS if _in_tree(root, s, executable=True)), None)
    if shell is None:
        return []
    ran: list[str] = []
    for result in packages:
        script = result.install_script
        if script is None or not _mentions(script, "post_install"):
            continue
        label = f"post_install {result.name} {result.version}"
        outcome = _run_scriptlet(root, shell, script, result.version, epoch)
        ran.append(_describe(label, outcome, strict))
    if _in_tree(root, "/etc/ld.so.conf", executable=False) and _in_tree(
        root, LDCONFIG, executable=True
    ):
        outcome = _sandboxed(root, (LDCONFIG,), epoch)
        ran.append(_describe("ldconfig", outcome, strict))
    if _in_tree(root, SYSUSERS, executable=True):
        outcome = _sandboxed(root, (SYSUSERS,), epoch)
        ran.append(_describe("systemd-sysusers", outcome, strict))
    return ran


def _describe(label: str, outcome: _Ran, strict: bool) -> str:
    if outcome.returncode == 0:
        return label
    tail = outcome.stderr.decode("utf-8", "replace").strip().splitlines()[-5:]
    text = f"{label}: failed with exit code {outcome.returncode}"
    if tail:
        text += " (" + " / ".join(tail) + ")"
    if strict:
        raise TreeError(text)
    return text


def _sandboxed(
    root: Path, command: tuple[str, ...], epoch: int, binds: tuple[Bind, ...] = ()
) -> _Ran:
    result = run(
        SandboxSpec(
            root=root, command=command, epoch=epoch, binds=binds, what="a package scriptlet"
        ),
        timeout=SCRIPTLET_TIMEOUT,
        check=False,
    )
    return _Ran(command[-1], result.returncode, result.stderr)


def _scriptlet_mount(root: Path) -> Path:
    """``$root/tmp`` as pacman makes it (mode 1777 when missing) and the mount point.

    The mount point is created here, inside a real ``tmp`` directory, so that
    nothing on the way is a symlink the sandbox set-up could follow out of the
    tree.
    """
    tmp = root / "tmp"
    st = os.lstat(tmp) if tmp.exists() or tmp.is_symlink() else None
    if st is None:
        tmp.mkdir()
        os.chown(tmp, 0, 0)
        os.chmod(tmp, 0o1777)
    elif not stat.S_ISDIR(st.st_mode):
        raise TreeError(f"cannot run scriptlets: /tmp in {root} is not a directory (a symlink?)")
    mount = tmp / SCRIPTLET_DIR.rsplit("/", 1)[1]
    if mount.exists() or mount.is_symlink():
        raise TreeError(f"cannot run scriptlets: {SCRIPTLET_DIR} already exists in {root}")
    mount.mkdir(mode=0o700)
    return mount


def _run_scriptlet(root: Path, shell: str, script: bytes, version: str, epoch: int) -> _Ran:
    staging = Path(tempfile.mkdtemp(prefix="reprobuild-alpm-"))
    mount = _scriptlet_mount(root)
    try:
        (staging / ".INSTALL").write_bytes(script)
        os.chmod(staging, 0o755)
        os.chmod(staging / ".INSTALL", 0o644)
        line = f"umask 022; . {SCRIPTLET_DIR}/.INSTALL; post_install {version}"
        return _sandboxed(root, (shell, "-c", line), epoch, (Bind(staging, SCRIPTLET_DIR, "ro"),))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        os.rmdir(mount)
