"""Fixtures for the image exporters: canonical tars and a second, hostile run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from reprobuild.archives.debian.unpack import setup_merged_usr, unpack_data
from tests.export_images.trees import canonical_tar_of, make_tree

REPO = Path(__file__).resolve().parents[2]
DEMO_POOL = REPO / "snapshots" / "demo" / "archive" / "debian" / "20260711T101637Z" / "pool"

Need = Callable[..., None]


@pytest.fixture(scope="session")
def need() -> Need:
    """Skip (with the package to install) when an external tool is missing."""

    def check(*tools: str) -> None:
        path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
        for tool in tools:
            if shutil.which(tool, path=path) is None:
                pytest.skip(f"{tool} is not installed (CI installs it)")

    return check


@pytest.fixture(scope="session")
def tree_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("building the test tree needs root (device nodes, owners)")
    base = tmp_path_factory.mktemp("tree")
    make_tree(base / "root")
    return canonical_tar_of(base / "root", base / "tree.tar")


@pytest.fixture(scope="session")
def deb_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The genuine demo .deb files unpacked (merged /usr) into one canonical tar."""
    if os.geteuid() != 0:
        pytest.skip("unpacking packages with their owners needs root")
    debs = sorted(DEMO_POOL.rglob("*.deb"))
    if not debs:
        pytest.skip(f"no demo packages under {DEMO_POOL}")
    base = tmp_path_factory.mktemp("debs")
    root = base / "root"
    root.mkdir()
    setup_merged_usr(root, "amd64")
    for deb in debs:
        unpack_data(deb, root, conffiles_in_place=True)
    return canonical_tar_of(root, base / "debs.tar")


def export_elsewhere(
    where: Path, module: str, function: str, tar: Path, dest_name: str, **kwargs: object
) -> Path:
    """Run one export in a fresh process: other directory, umask 077, TZ=Asia/Tokyo,
    another locale, SOURCE_DATE_EPOCH set to a wrong value and, where faketime is
    installed, a clock ten years ahead. Returns the artefact's path."""
    where.mkdir(parents=True)
    dest = where / "nested dir" / dest_name
    code = (
        "import importlib, json, os, sys\n"
        "from pathlib import Path\n"
        "os.umask(0o077)\n"
        "mod = importlib.import_module(sys.argv[1])\n"
        "kw = json.loads(sys.argv[5])\n"
        "getattr(mod, sys.argv[2])(Path(sys.argv[3]), Path(sys.argv[4]), **kw)\n"
    )
    env = dict(os.environ)
    env.update(
        TZ="Asia/Tokyo",
        LC_ALL="POSIX",
        SOURCE_DATE_EPOCH="1234567890",
        PYTHONPATH=str(REPO),
    )
    argv = [sys.executable, "-c", code, module, function, str(tar), str(dest), json.dumps(kwargs)]
    faketime = shutil.which("faketime")
    if faketime:
        argv = [faketime, "-f", "+3650d", *argv]
    proc = subprocess.run(argv, cwd=where, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return dest
