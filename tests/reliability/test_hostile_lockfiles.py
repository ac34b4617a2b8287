"""Hostile lockfiles (issue 8): refused on read, with an error naming the package and field.

A lockfile travels between organisations, so reading one is where a
package URL on another host, a path with ``..`` or a hash of the wrong
length must stop: before anything is fetched or trusted. Each case edits
the demo's genuine lockfile in one place; the commands that read a
lockfile (``build --locked``, ``replay``, ``sbom``) exit 2 without a traceback.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reprobuild import lockfile as lf
from reprobuild.errors import LockfileError
from tests.support.cli import reprobuild

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "recipes" / "demo.repro"
LOCK = json.loads((ROOT / "recipes" / "demo.repro.lock").read_text())
BASE_FILES = "package base-files=12.4+deb12u15:amd64"  # the first package of the lock
SHA = LOCK["packages"][0]["sha256"]

Edit = Callable[[dict[str, Any]], None]


def _package(field: str, value: object) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        data["packages"][0][field] = value

    return edit


def _snapshot(field: str, value: object) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        data["snapshots"]["snap"][field] = value

    return edit


def _suite(field: str, value: object) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        data["snapshots"]["snap"]["suites"]["bookworm"][field] = value

    return edit


def _top(field: str, value: object) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        data[field] = value

    return edit


def _drop_member(data: dict[str, Any]) -> None:
    data["packages"] = data["packages"][1:]


CASES: dict[str, tuple[Edit, list[str]]] = {
    "url on another host": (
        _package("filename", "https://evil.example/pool/base-files.deb"),
        [BASE_FILES, "field 'filename' is a URL", "would leave its host"],
    ),
    "scheme-relative url": (
        _package("filename", "//evil.example/pool/base-files.deb"),
        [BASE_FILES, "field 'filename' is a URL"],
    ),
    "dotdot": (
        _package("filename", "pool/../../../../etc/passwd"),
        [BASE_FILES, "field 'filename' has an empty, '.' or '..' component"],
    ),
    "absolute path": (
        _package("filename", "/etc/passwd"),
        [BASE_FILES, "field 'filename' is absolute"],
    ),
    "query string": (
        _package("filename", "pool/main/b/base-files.deb?redirect=https://evil.example/"),
        [BASE_FILES, "field 'filename'"],
    ),
    "percent-encoded dotdot": (
        _package("filename", "pool/%2e%2e/%2e%2e/etc/passwd"),
        [BASE_FILES, "field 'filename' contains characters outside a plain path"],
    ),
    "short sha256": (
        _package("sha256", SHA[:-1]),
        [BASE_FILES, "field 'sha256' must be 64 lowercase hex digits", "(63 characters)"],
    ),
    "long sha256": (
        _package("sha256", SHA + "00"),
        [BASE_FILES, "field 'sha256'", "(66 characters)"],
    ),
    "sha256 not hex": (
        _package("sha256", "z" * 64),
        [BASE_FILES, "field 'sha256' must be 64 lowercase hex digits"],
    ),
    "negative size": (
        _package("size", -1),
        ["package 'base-files'", "field 'size' must be a non-negative integer, not -1"],
    ),
    "size as a string": (
        _package("size", "70936"),
        ["package 'base-files'", "field 'size' must be a non-negative integer, not '70936'"],
    ),
    "fractional size": (
        _package("size", 1.5),
        ["package 'base-files'", "field 'size'"],
    ),
    "name with a slash": (
        _package("name", "../base-files"),
        ["field 'name' is not a valid name"],
    ),
    "unknown snapshot": (
        _package("snapshot", "elsewhere"),
        [BASE_FILES, "field 'snapshot' names no snapshot"],
    ),
    "snapshot on another host": (
        _snapshot("url", "https://evil.example/archive/debian/20260711T101637Z/"),
        ["snapshot 'snap'", "on host 'evil.example'", "is on 'snapshot.debian.org'"],
    ),
    "snapshot url not http": (
        _snapshot("url", "ftp://snapshot.debian.org/archive/debian/20260711T101637Z/"),
        ["snapshot 'snap'", "field 'url' is not an http(s) or file URL"],
    ),
    "short inrelease sha256": (
        _suite("inrelease_sha256", "abc"),
        ["suite 'bookworm'", "field 'inrelease_sha256' is not a sha256"],
    ),
    "index path with dotdot": (
        _suite("indexes", {"../../Packages.xz": SHA}),
        ["suite 'bookworm'", "index '../../Packages.xz'"],
    ),
    "bad fingerprint": (
        _suite("fingerprint", "not-a-key"),
        ["suite 'bookworm'", "field 'fingerprint'"],
    ),
    "recipe hash": (
        _top("recipe", "0" * 63),
        ["field 'recipe' is not a sha256"],
    ),
    "unknown version": (
        _top("version", 2),
        ["format version 2 is not supported"],
    ),
    "version true": (
        _top("version", True),
        ["format version True is not supported"],
    ),
    "rootfs member not listed": (
        _drop_member,
        ["rootfs 'root' lists base-files=12.4+deb12u15:amd64, which the lockfile does not"],
    ),
}


def _write(where: Path, edit: Edit) -> Path:
    data = copy.deepcopy(LOCK)
    edit(data)
    path = where / "demo.repro.lock"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def test_the_genuine_lockfiles_are_accepted() -> None:
    for path in sorted((ROOT / "recipes").rglob("*.lock")):
        assert lf.load(path).packages


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_lockfile_is_refused_on_read(tmp_path: Path, case: str) -> None:
    edit, expected = CASES[case]
    path = _write(tmp_path, edit)
    with pytest.raises(LockfileError) as caught:
        lf.load(path)
    message = caught.value.render()
    assert message.startswith(f"error: {path}: ")
    for text in expected:
        assert text in message, message


@pytest.fixture
def demo_dir(tmp_path: Path) -> Path:
    work = tmp_path / "w"
    work.mkdir()
    shutil.copy(DEMO, work / "demo.repro")
    return work


@pytest.mark.parametrize(
    ("command", "case"),
    [
        (("build", "--locked"), "url on another host"),
        (("build", "--locked"), "short sha256"),
        (("replay",), "dotdot"),
        (("sbom",), "negative size"),
    ],
)
def test_commands_exit_2_without_traceback(
    demo_dir: Path, tmp_path: Path, command: tuple[str, ...], case: str
) -> None:
    edit, expected = CASES[case]
    lock = _write(demo_dir, edit)
    store = tmp_path / "store"
    target = "demo.repro" if command[0] == "build" else lock.name
    args = [*command, target]
    if command[0] != "sbom":
        mirror = (ROOT / "snapshots" / "demo" / "archive" / "debian").as_uri() + "/"
        args[1:1] = ["--store", str(store), "--mirror", f"debian={mirror}"]
    r = reprobuild(demo_dir, *args, timeout=120)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    for text in expected:
        assert text in r.stderr, r.stderr
    assert not (demo_dir / "out").exists()  # refused before anything was built
