"""Issue 22: a rebuilderd instance is another party's server; its answers are input.

Malformed JSON of every shape ends in exit 2 naming the URL, an answer is read
only up to a cap, the whole query has one deadline, and control characters in
printed fields never reach the terminal. A real HTTP server on loopback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reprobuild import lockfile as lf
from reprobuild.errors import FetchError
from reprobuild.status import StatusLimits, printable, status
from tests.support.mirror import Fault, serve

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "recipes" / "demo.repro.lock"
LIST = "/api/v0/pkgs/list"


def _answer(root: Path, body: bytes) -> None:
    api = root / "api" / "v0" / "pkgs"
    api.mkdir(parents=True, exist_ok=True)
    (api / "list").write_bytes(body)


def _cli(url: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("REPROBUILD_")}
    return subprocess.run(
        [sys.executable, "-m", "reprobuild", "status", "--rebuilder", url, str(LOCK)],
        capture_output=True, text=True, env={**base, **(env or {})}, cwd=ROOT, timeout=120,
    )  # fmt: skip


def _release(name: str, version: str, arch: str, status: str) -> dict[str, object]:
    return {"name": name, "version": version, "architecture": arch, "status": status,
            "build_id": 7, "has_diffoscope": True}  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        b"<html>not json</html>",
        b"\xff\xfe\x00",
        b'{"name": "bash"}',
        b"[1, 2]",
        b'[{"name": "bash", "version": 5}]',
        b'[{"name": "bash", "version": "5", "architecture": "amd64"}]',
        b"[" * 100_000 + b"]" * 100_000,
        b"null",
    ],
    ids=["html", "binary", "object", "numbers", "int-version", "no-status", "deep", "null"],
)
def test_a_malformed_answer_is_refused_naming_the_url(tmp_path: Path, body: bytes) -> None:
    _answer(tmp_path, body)
    with serve(tmp_path) as srv, pytest.raises(FetchError) as err:
        status(lf.load(LOCK), srv.url)
    assert err.value.exit_code == 2
    assert f"{srv.url.rstrip('/')}{LIST}?distro=debian: not a rebuilderd JSON answer" in str(
        err.value.message
    )


def test_a_malformed_answer_exits_2_without_a_traceback(tmp_path: Path) -> None:
    _answer(tmp_path, b'[{"name": []}]')
    with serve(tmp_path) as srv:
        r = _cli(srv.url)
    assert r.returncode == 2, r.stderr
    assert f"{LIST}?distro=debian: not a rebuilderd JSON answer" in r.stderr
    assert srv.url.rstrip("/") in r.stderr and "Traceback" not in r.stderr


def test_an_answer_over_the_cap_is_refused(tmp_path: Path) -> None:
    assert StatusLimits.from_env({}).max_size == 64 << 20
    _answer(tmp_path, json.dumps([_release("x", "1", "all", "GOOD")] * 100).encode())
    with serve(tmp_path) as srv:
        r = _cli(srv.url, {"REPROBUILD_REBUILDERD_MAX_SIZE": "1K"})
    assert r.returncode == 2, r.stderr
    assert "the answer is larger than 1024 bytes" in r.stderr and "Traceback" not in r.stderr


def test_one_deadline_for_the_whole_query(tmp_path: Path) -> None:
    """A server dripping 20 bytes a second never lets a read time out; the deadline
    still ends the query (the drip alone would take over two minutes)."""
    _answer(tmp_path, json.dumps([_release("x", "1", "all", "GOOD")] * 40).encode())
    with serve(tmp_path) as srv:
        srv.fault(LIST, Fault(drip=20))
        r = _cli(srv.url, {"REPROBUILD_REBUILDERD_DEADLINE": "2"})
    assert r.returncode == 2, r.stderr
    assert "no complete answer before the deadline" in r.stderr and "Traceback" not in r.stderr


def test_control_characters_never_reach_the_terminal(tmp_path: Path) -> None:
    pkgs = json.loads(LOCK.read_text())["packages"]
    evil = "BAD\x1b]0;owned\x07\x1b[2J\r\x9b31m"
    releases = [
        _release(p["name"], p["version"], p["architecture"], evil if i == 0 else "GOOD")
        for i, p in enumerate(pkgs)
    ]
    _answer(tmp_path, json.dumps(releases).encode())
    with serve(tmp_path) as srv:
        r = _cli(srv.url)
    assert r.returncode == 0, r.stderr
    assert not any(c in r.stdout for c in "\x1b\x07\r\x9b")
    line = next(line for line in r.stdout.splitlines() if pkgs[0]["name"] in line)
    assert line.split()[0] == "BAD]0;owned[2J31m"
    assert printable("a\x00b\tc\x7fd") == "abcd"
