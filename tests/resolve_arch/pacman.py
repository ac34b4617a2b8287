"""The real pacman on private sync databases: what it would install on an empty root.

``pacman -Sp --print-format '%n %v'`` prints the package set without
checking conflicts (``--print`` sets ``ALPM_TRANS_FLAG_NOCONFLICTS``), so
requests whose packages conflict are asked with ``pacman -S --noconfirm``
instead: its ``Packages (N) name-ver ...`` line and its warnings are read,
and the download it then attempts fails harmlessly (the server is a
directory that does not exist).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
ARCHIVE_2022 = SHARED / "fixtures" / "arch-archive"
DAY_2022 = ARCHIVE_2022 / "repos" / "2022" / "09" / "12"
REPOS_2022 = ("core", "extra")
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C", "TZ": "UTC"}


def need_pacman() -> str:
    found = shutil.which("pacman")
    if found is None:
        pytest.skip("pacman is not installed (Debian package pacman-package-manager)")
    return found


def db_2022(repo: str) -> Path:
    path = DAY_2022 / repo / "os" / "x86_64" / f"{repo}.db"
    if not path.is_file():
        pytest.skip(f"{path} is absent (the shared fixtures are not beside the repository)")
    return path


@dataclass(frozen=True)
class Answer:
    """pacman's package set ("name version"), or None with its error output."""

    packages: frozenset[str] | None
    warnings: tuple[str, ...] = ()
    output: str = ""
    timed_out: bool = False  # pacman did not answer in time (see print_set)


class Pacman:
    """pacman with its own root, database directory and ``pacman.conf``."""

    def __init__(self, work: Path, dbs: Sequence[tuple[str, Path]]) -> None:
        self.binary = need_pacman()
        self.work = work
        (work / "db" / "sync").mkdir(parents=True, exist_ok=True)
        (work / "root").mkdir(exist_ok=True)
        for repo, path in dbs:
            shutil.copy(path, work / "db" / "sync" / f"{repo}.db")
        self.conf = work / "pacman.conf"
        self.conf.write_text(
            "[options]\n"
            f"RootDir = {work}/root\nDBPath = {work}/db/\nCacheDir = {work}/cache/\n"
            f"LogFile = {work}/log\nGPGDir = {work}/gnupg/\nHookDir = {work}/hooks/\n"
            "Architecture = x86_64\nSigLevel = Never\n\n"
            + "".join(f"[{repo}]\nServer = file:///nonexistent\n\n" for repo, _ in dbs)
        )

    def _run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, "--config", str(self.conf), "--noconfirm", *args],
            capture_output=True,
            text=True,
            env=ENV,
            timeout=timeout,
            check=False,
        )

    def print_set(self, targets: Sequence[str], *, timeout: float = 600) -> Answer:
        """``pacman -Sp``: the set, conflicts unchecked.

        libalpm retries a failing dependency subtree each time it is needed,
        which grows exponentially: for some unsatisfiable requests pacman runs
        for many minutes. Past ``timeout`` the answer says so.
        """
        try:
            proc = self._run("-Sp", "--print-format", "%n %v", *targets, timeout=timeout)
        except subprocess.TimeoutExpired:
            return Answer(None, output=f"pacman ran for more than {timeout:g} s", timed_out=True)
        said = proc.stdout + proc.stderr
        if proc.returncode != 0:
            return Answer(None, output=said)
        return Answer(frozenset(ln.strip() for ln in proc.stdout.splitlines() if ln.strip()))

    def install_set(self, targets: Sequence[str]) -> Answer:
        """``pacman -S``: the set it would install after its conflict rules, and warnings."""
        proc = self._run("-S", *targets)
        said = proc.stdout + proc.stderr
        warnings = tuple(
            ln.removeprefix("warning: ")
            for ln in said.splitlines()
            if ln.startswith("warning: removing ")
        )
        for line in said.splitlines():
            if line.startswith("Packages ("):
                found = set()
                for item in line.split(")", 1)[1].split():
                    rel = item.rfind("-")
                    ver = item.rfind("-", 0, rel)
                    found.add(f"{item[:ver]} {item[ver + 1 :]}")
                return Answer(frozenset(found), warnings, said)
        return Answer(None, warnings, said)
