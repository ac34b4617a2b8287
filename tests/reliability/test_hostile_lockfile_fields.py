"""Hostile lockfile fields, one by one: every check of lockfile.validate meets its case.

test_hostile_lockfiles.py covers the package and snapshot fields; this file
covers the rest of what a lockfile's sender controls (the embedded recipe
files, the rootfs's snapshots, the recorded sources and outputs, index
digests), and then replaces every field of the genuine demo lockfile in
turn with values of the wrong type or shape: reading it must either accept
it or refuse it with a LockfileError, never fail with another exception
(which the CLI reports as an internal error, exit 70).
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reprobuild import lockfile as lf
from reprobuild.errors import LockfileError
from tests.support.cli import reprobuild

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "recipes" / "demo.repro"
GENUINE = json.loads((ROOT / "recipes" / "demo.repro.lock").read_text())
SHA = "0" * 64


def _with(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(GENUINE)
    data.update(changes)
    return data


def _rootfs(field: str, value: object) -> dict[str, Any]:
    data = copy.deepcopy(GENUINE)
    data["rootfs"]["root"][field] = value
    return data


def _suite(field: str, value: object) -> dict[str, Any]:
    data = copy.deepcopy(GENUINE)
    data["snapshots"]["snap"]["suites"]["bookworm"][field] = value
    return data


def _package(field: str, value: object) -> dict[str, Any]:
    data = copy.deepcopy(GENUINE)
    data["packages"][0][field] = value
    return data


def _snapshot(field: str, value: object) -> dict[str, Any]:
    data = copy.deepcopy(GENUINE)
    data["snapshots"]["snap"][field] = value
    return data


RECIPE = DEMO.read_text()
CASES: dict[str, tuple[dict[str, Any], str]] = {
    "embedded path with ..": (
        _with(embedded={"demo.repro": RECIPE, "../../escaped.repro": "x"}),
        "embedded: '../../escaped.repro' leaves the recipe tree",
    ),
    "embedded path with .. inside": (
        _with(embedded={"demo.repro": RECIPE, "lib/../../x": "x"}),
        "leaves the recipe tree",
    ),
    "embedded absolute path": (
        _with(embedded={"demo.repro": RECIPE, "/etc/cron.d/x": "x"}),
        "embedded: '/etc/cron.d/x' leaves the recipe tree",
    ),
    "embedded path '.'": (
        _with(embedded={"demo.repro": RECIPE, ".": "x"}),
        "embedded: '.' is not a plain path",
    ),
    "embedded empty path": (
        _with(embedded={"demo.repro": RECIPE, "": "x"}),
        "embedded: '' is not a plain path",
    ),
    "embedded file that is also a directory": (
        _with(embedded={"demo.repro": RECIPE, "lib": "x", "lib/a.repro": "y"}),
        "embedded: 'lib' is both a file and a directory",
    ),
    "embedded path with a '.' inside": (
        _with(embedded={"demo.repro": RECIPE, "lib/./a.repro": "x"}),
        "embedded: 'lib/./a.repro' is not a plain path",
    ),
    "embedded nested file that is also a directory": (
        _with(embedded={"demo.repro": RECIPE, "lib/sub": "x", "lib/sub/a.repro": "y"}),
        "embedded: 'lib/sub' is both a file and a directory",
    ),
    "rootfs key not a string": (
        _rootfs("key", 1),
        "rootfs 'root': fields 'key' and 'variant' must be strings",
    ),
    "snapshot url of another scheme": (
        _snapshot("url", "ftp://snapshot.debian.org/archive/debian/20260711T101637Z/"),
        "field 'url' is not an http(s) or file URL ending in '/'",
    ),
    "rootfs naming a snapshot the lockfile lacks": (
        _rootfs("snapshots", ["snap", "elsewhere"]),
        "rootfs 'root' names snapshot 'elsewhere', which the lockfile does not",
    ),
    "rootfs member not listed": (
        _rootfs("packages", [*GENUINE["rootfs"]["root"]["packages"], "evil=1:amd64"]),
        "rootfs 'root' lists evil=1:amd64, which the lockfile does not",
    ),
    "source without a sha256": (
        _with(sources={"demo.repro": "not-a-hash"}),
        "sources: 'demo.repro' has no valid sha256",
    ),
    "snapshot url without a final slash": (
        _snapshot("url", "https://snapshot.debian.org/archive/debian/20260711T101637Z"),
        "field 'url' is not an http(s) or file URL ending in '/'",
    ),
    "snapshot on the local file system": (
        _snapshot("url", "file:///etc/"),
        "field 'url' is on host '', but archive 'debian' is on 'snapshot.debian.org'",
    ),
    "index digest not a sha256": (
        _suite("indexes", {"main/binary-amd64/Packages.xz": "abc"}),
        "index 'main/binary-amd64/Packages.xz' has no valid sha256",
    ),
    "version with a slash": (
        _package("version", "1/../../x"),
        "field 'version' is not a valid version",
    ),
    "empty filename": (
        _package("filename", ""),
        "field 'filename' must be a non-empty string",
    ),
    "filename with a '.' component": (
        _package("filename", "pool/./main/b/base-files/x.deb"),
        "field 'filename' has an empty, '.' or '..' component",
    ),
    "architecture with a slash": (
        _package("architecture", "../amd64"),
        "field 'architecture' is not a valid architecture",
    ),
    "output digest not a sha256": (
        _with(outputs={"oci": {"sha256": "../x", "media_type": "x"}}),
        "outputs: 'oci' has no valid sha256",
    ),
    "output not an object": (
        _with(outputs={"oci": "0" * 64}),
        "outputs: 'oci' has no valid sha256",
    ),
    "snapshot archive of the wrong type": (
        _snapshot("archive", ["debian"]),
        "field 'archive' is not a string",
    ),
    "package snapshot of the wrong type": (
        _package("snapshot", {"name": "snap"}),
        "malformed lockfile",
    ),
    "packages not a list": (
        _with(packages=None),
        "malformed lockfile",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_field_is_refused_on_read(tmp_path: Path, case: str) -> None:
    data, expected = CASES[case]
    path = tmp_path / "demo.repro.lock"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    with pytest.raises(LockfileError) as caught:
        lf.load(path)
    message = caught.value.render()
    assert message.startswith(f"error: {path}: ")
    assert expected in message, message


def test_http_and_https_snapshot_urls_are_accepted() -> None:
    for scheme in ("http", "https"):
        url = f"{scheme}://snapshot.debian.org/archive/debian/20260711T101637Z/"
        lock = lf.Lockfile.from_json(_snapshot("url", url))
        assert lock.snapshots[0].url == url


# -------------------------------------------------------------- every field in turn

WRONG = [None, 0, -1, 1.5, True, "", "x", "../x", "/etc/passwd", [], {}, ["x"], {"x": "y"}, SHA]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if prefix:
        yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list) and node:
        yield from _paths(node[0], (*prefix, 0))


def test_every_field_of_the_wrong_shape_is_accepted_or_refused_never_a_crash() -> None:
    base = _with(embedded={"demo.repro": RECIPE})
    tried = crashed = 0
    failures = []
    for path in _paths(base):
        for value in WRONG:
            data = copy.deepcopy(base)
            node = data
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
            tried += 1
            try:
                lf.Lockfile.from_json(data)
            except LockfileError:
                pass
            except Exception as exc:  # anything else is exit 70 for the user
                crashed += 1
                failures.append(
                    f"{'.'.join(map(str, path))} = {value!r}: {type(exc).__name__}: {exc}"
                )
    assert tried > 500
    assert not failures, f"{crashed} of {tried} edits crash the reader:\n" + "\n".join(
        failures[:20]
    )


# -------------------------------------------------------------- through the commands


def test_replay_of_an_embedded_path_with_dotdot_writes_nothing_outside(tmp_path: Path) -> None:
    """The lockfile alone (no recipe beside it): replay would unpack the embedded files."""
    name = f"rb-escape-{uuid.uuid4().hex}"
    data = _with(embedded={"demo.repro": RECIPE, f"../{name}": "x", f"../../{name}": "x"})
    (tmp_path / "demo.repro.lock").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    r = reprobuild(tmp_path, "replay", "--store", str(tmp_path / "store"), "demo.repro.lock")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "leaves the recipe tree" in r.stderr and "Traceback" not in r.stderr
    import tempfile

    for where in (Path(tempfile.gettempdir()), Path("/"), tmp_path, tmp_path.parent):
        assert not (where / name).exists(), where


@pytest.mark.parametrize(
    "case",
    ["rootfs naming a snapshot the lockfile lacks", "embedded path '.'", "output not an object"],
)
def test_build_locked_and_replay_exit_2_on_hostile_fields(tmp_path: Path, case: str) -> None:
    data, expected = CASES[case]
    (tmp_path / "demo.repro").write_text(RECIPE)
    (tmp_path / "demo.repro.lock").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    mirror = (ROOT / "snapshots" / "demo" / "archive" / "debian").as_uri() + "/"
    for args in (("build", "--locked", "demo.repro"), ("replay", "demo.repro.lock")):
        r = reprobuild(
            tmp_path, args[0], "--store", str(tmp_path / "store"), "--mirror", f"debian={mirror}",
            *args[1:], timeout=120,
        )  # fmt: skip
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert expected in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert not (tmp_path / "out").exists()
