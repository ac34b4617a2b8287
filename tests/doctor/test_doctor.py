"""Two commands on a fresh machine: `make deps` / scripts/deps, `reprobuild doctor`,
and every command checking its tools before any work (issue 15)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from reprobuild.doctor import TOOLS
from tests.support.cli import reprobuild
from tests.support.recipes import LIGHT_DEMO

ROOT = Path(__file__).resolve().parents[2]
DEPS = ROOT / "scripts" / "deps"


def _packages(*groups: str) -> list[str]:
    r = subprocess.run([str(DEPS), "--list", *groups], capture_output=True, text=True, check=True)
    return r.stdout.split()


def test_every_tool_doctor_knows_is_in_the_run_packages() -> None:
    run = set(_packages("run"))
    assert {t.package for t in TOOLS} <= run
    assert "bubblewrap" in run and "zstd" not in run
    assert set(_packages("run", "test")) > run


def test_deps_is_silent_and_quick_when_everything_is_installed(tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("run  coreutils  # surely here\ntest dpkg\n")
    r = subprocess.run(
        [str(DEPS), "run", "test"],
        capture_output=True,
        text=True,
        env={**os.environ, "REPROBUILD_DEPS_LIST": str(listing)},
    )
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_deps_as_a_user_stops_at_once_with_the_apt_get_command() -> None:
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to run the script as another user")
    # A directory the unprivileged user can read (pytest's tmp_path is root-only).
    work = Path(tempfile.mkdtemp(prefix="reprobuild-deps-"))
    try:
        work.chmod(0o755)
        listing = work / "list.txt"
        listing.write_text("run  coreutils\nrun  reprobuild-no-such-package  # missing\n")
        listing.chmod(0o644)
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        start = time.monotonic()
        r = subprocess.run(
            [*(prefix if os.geteuid() == 0 else []), "sh", str(DEPS), "run"],
            capture_output=True,
            text=True,
            env={"PATH": os.environ["PATH"], "REPROBUILD_DEPS_LIST": str(listing)},
        )
        elapsed = time.monotonic() - start
    finally:
        shutil.rmtree(work)
    assert r.returncode == 1
    assert "missing Debian packages: reprobuild-no-such-package" in r.stderr
    assert "apt-get install -y --no-install-recommends reprobuild-no-such-package" in r.stderr
    assert elapsed < 5  # "in the first second" on an idle machine; this one is shared


def test_doctor_json_lists_every_tool_with_version_and_features() -> None:
    r = reprobuild(ROOT, "doctor", "--json")
    report = json.loads(r.stdout)
    assert [t["name"] for t in report["tools"]] == [t.name for t in TOOLS]
    for t in report["tools"]:
        assert t["features"] and t["package"]
        assert t["found"] == (shutil.which(t["name"], path=os.environ["PATH"] + ":/usr/sbin:/sbin") is not None)
        if t["found"]:
            assert t["version"]
    assert r.returncode == (0 if report["ok"] else 1)


def test_doctor_names_what_is_missing(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    r = reprobuild(ROOT, "doctor", env={"PATH": str(empty)})
    assert r.returncode == 1
    assert "bwrap        bubblewrap" in r.stdout and "MISSING" in r.stdout
    assert "sandbox: DOES NOT WORK (bwrap is not installed)" in r.stdout
    assert "as root: apt-get install -y --no-install-recommends" in r.stdout
    assert "bubblewrap" in r.stdout.splitlines()[-1]
    data = json.loads(reprobuild(ROOT, "doctor", "--json", env={"PATH": str(empty)}).stdout)
    assert data["ok"] is False
    assert {"bubblewrap", "gpgv", "xorriso"} <= set(data["install"].split())


def test_build_checks_its_tools_before_any_work(tmp_path: Path) -> None:
    """With bwrap, gpgv and xorriso missing, nothing is fetched or stored: the
    mirror is a closed port, so any fetch would fail differently and later."""
    (tmp_path / "light.repro").write_text(LIGHT_DEMO)
    empty = tmp_path / "bin"
    empty.mkdir()
    start = time.monotonic()
    r = reprobuild(
        tmp_path,
        "build",
        "--store",
        str(tmp_path / "store"),
        "--mirror",
        "debian=http://127.0.0.1:9/",
        "light.repro",
        env={"PATH": str(empty)},
    )
    assert r.returncode == 2, r.stderr
    assert "build needs programs that are not installed" in r.stderr
    assert "xorriso (Debian package xorriso), for iso9660 'iso'" in r.stderr
    assert "gpgv (Debian package gpgv), for snapshot 'snap'" in r.stderr
    assert "hint: as root: apt-get install -y --no-install-recommends gpgv xorriso " in r.stderr
    assert "bwrap" not in r.stderr  # an unconfigured root runs nothing in the sandbox
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "store").exists() and not (tmp_path / "light.repro.lock").exists()
    assert time.monotonic() - start < 30
