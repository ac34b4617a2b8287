"""Run the real ``apt-get`` as the ground truth for the resolver.

apt is pointed at a private root (``Dir``) that holds the decompressed index
as an already-downloaded list, a minimal Release file and an EMPTY dpkg
status, so ``apt-get -s install --no-install-recommends`` shows what it would
install on an empty system. Nothing touches the machine's own apt state.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = ROOT.parent / "shared/mirrors/debian/archive/debian/20260711T101637Z"
PACKAGES_XZ = SNAPSHOT / "dists/bookworm/main/binary-amd64/Packages.xz"
APT_SETS = ROOT / "tests/data/apt-sets"

_LIST = "127.0.0.1_debian_dists_bookworm_main_binary-amd64_Packages"
_RELEASE = """\
Origin: Debian
Label: Debian
Suite: oldstable
Codename: bookworm
Date: Sat, 11 Jul 2026 10:16:37 UTC
Architectures: amd64
Components: main
"""
_INST = re.compile(r"^Inst (\S+) \((\S+) ", re.MULTILINE)


def apt_get() -> str | None:
    """Path of apt-get, or None where apt is not installed (tests then skip)."""
    return shutil.which("apt-get")


class AptRoot:
    """A private apt configuration over one decompressed Packages index."""

    def __init__(self, root: Path, packages: bytes, architecture: str = "amd64") -> None:
        self.root = root
        for sub in (
            "etc/apt/apt.conf.d",
            "etc/apt/preferences.d",
            "etc/apt/sources.list.d",
            "var/lib/apt/lists/partial",
            "var/lib/dpkg",
            "var/cache/apt/archives/partial",
        ):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "var/lib/dpkg/status").write_bytes(b"")
        lists = root / "var/lib/apt/lists"
        (lists / _LIST).write_bytes(packages)
        (lists / "127.0.0.1_debian_dists_bookworm_Release").write_text(_RELEASE)
        (root / "etc/apt/sources.list").write_text(
            "deb [trusted=yes] http://127.0.0.1/debian bookworm main\n"
        )
        conf = root / "apt.conf"
        conf.write_text(
            f'Dir "{root}/";\n'
            f'Dir::State::status "{root}/var/lib/dpkg/status";\n'
            f'Dir::Etc::sourcelist "{root}/etc/apt/sources.list";\n'
            f'Dir::Etc::sourceparts "{root}/etc/apt/sources.list.d";\n'
            f'Dir::Etc::preferencesparts "{root}/etc/apt/preferences.d";\n'
            f'Dir::Cache "{root}/var/cache/apt";\n'
            f'APT::Architecture "{architecture}";\n'
            f'APT::Architectures {{ "{architecture}"; }};\n'
            'Debug::NoLocking "1";\n'
            'APT::Install-Recommends "0";\n'
            'APT::Get::Assume-Yes "1";\n'
        )
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("APT_")}
        self.env["APT_CONFIG"] = str(conf)
        self.env["LC_ALL"] = "C"

    def install(self, packages: Sequence[str]) -> subprocess.CompletedProcess[str]:
        """Run ``apt-get -s install --no-install-recommends PACKAGES``."""
        return subprocess.run(
            ["apt-get", "-s", "install", "--no-install-recommends", *packages],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def resolve(self, packages: Sequence[str]) -> dict[str, str]:
        """The name -> version set apt installs; raises if apt refuses."""
        proc = self.install(packages)
        if proc.returncode != 0:
            raise RuntimeError(
                f"apt-get failed for {' '.join(packages)}:\n{proc.stdout}{proc.stderr}"
            )
        return dict(_INST.findall(proc.stdout))


def read_set(path: Path) -> dict[str, str]:
    """Read a checked-in expected set: ``NAME VERSION`` lines."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split()
            out[name] = version
    return out


def format_set(request: Sequence[str], pkgs: dict[str, str]) -> str:
    """The text of an expected-set file; the first line records the apt request."""
    lines = [f"# apt-get install --no-install-recommends {' '.join(request)}"]
    lines += [f"{n} {v}" for n, v in sorted(pkgs.items())]
    return "\n".join(lines) + "\n"
