"""Network faults a mirror can throw at a build (issue 8): a connection reset
mid-body, a slow drip, a body shorter than the index says. Each ends in the
right bytes or in exit 2 naming the URL and the cause, and never leaves a
partial file in the store or in ``out/``. The loopback server is real
(tests/support/mirror.py); so are the builds."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from reprobuild.errors import FetchError, IntegrityError
from reprobuild.fetch import Fetcher, FetchPolicy
from tests.support.cli import reprobuild as rb
from tests.support.mirror import Fault, serve
from tests.support.recipes import NETBASE_DEB as NETBASE
from tests.support.recipes import NETBASE_RECIPE as RECIPE

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "snapshots" / "demo"


def _quick(retries: int = 3, timeout: float = 2.0) -> Fetcher:
    return Fetcher(FetchPolicy(retries=retries, backoff=0.01, timeout=timeout))


def test_a_reset_mid_body_resumes_where_it_broke_off(tmp_path: Path) -> None:
    data = os.urandom(200_000)
    (tmp_path / "f").write_bytes(data)
    with serve(tmp_path) as srv:
        srv.fault("/f", Fault(reset_after=70_000))
        dest = _quick().download(
            srv.url + "f",
            tmp_path / "out" / "f",
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
        )
        ranges = [r for p, r in srv.requests if p == "/f"]
    assert dest.read_bytes() == data
    # The second request asked only for what was missing.
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
    assert int(ranges[1][6:-1]) > 0
    assert not list((tmp_path / "out").glob("*.part"))


def test_resets_every_time_end_in_an_error_naming_the_url_and_cause(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(os.urandom(50_000))
    with serve(tmp_path) as srv:
        srv.fault("/f", *[Fault(reset_after=1000)] * 10)
        with pytest.raises(FetchError) as info:
            _quick(retries=2).get(srv.url + "f")
    message = info.value.message
    assert srv.url + "f" in message and "gave up after 3 attempts" in message
    assert any(word in message.lower() for word in ("reset", "connection", "incomplete", "broken"))


def test_a_slow_drip_is_not_a_stall(tmp_path: Path) -> None:
    """1 KB/s: each read arrives well within the timeout, so it completes
    (apt behaves the same; a stall is silence, not slowness)."""
    data = os.urandom(3 * 1024)
    (tmp_path / "f").write_bytes(data)
    with serve(tmp_path) as srv:
        srv.fault("/f", Fault(drip=1024))
        started = time.monotonic()
        got = _quick(retries=0, timeout=1.0).get(srv.url + "f")
        took = time.monotonic() - started
        attempts = [p for p, _ in srv.requests if p == "/f"]
    assert got.data == data
    assert len(attempts) == 1  # no retry was needed
    assert took >= 2.0  # it really dripped


def test_a_body_shorter_than_the_index_says_is_refused(tmp_path: Path) -> None:
    full = os.urandom(10_000)
    (tmp_path / "f").write_bytes(full[:6000])  # the server's whole (short) file
    with serve(tmp_path) as srv, pytest.raises(IntegrityError) as info:
        _quick().download(
            srv.url + "f",
            tmp_path / "out" / "f",
            sha256=hashlib.sha256(full).hexdigest(),
            size=len(full),
        )
    assert "got 6000 bytes, expected 10000" in info.value.message
    assert hashlib.sha256(full).hexdigest() in info.value.message
    assert not (tmp_path / "out" / "f").exists()
    assert not list((tmp_path / "out").glob("*"))


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _build(work: Path, store: Path, url: str, **env: str) -> tuple[int, str, str]:
    r = rb(
        work,
        "build",
        "--json",
        "--store",
        str(store),
        "--mirror",
        f"debian={url}archive/debian/",
        "r.repro",
        env={"REPROBUILD_FETCH_TIMEOUT": "2", **env},
    )
    return r.returncode, r.stdout, r.stderr


def test_builds_through_a_misbehaving_mirror_end_identical_or_fail_cleanly(
    tmp_path: Path,
) -> None:
    """Through the CLI: a package that is reset mid-body, then dripped, still
    builds the same bytes as an unbothered build; a package that never
    arrives is named with its URL and leaves no partial file anywhere."""
    mirror = tmp_path / "mirror"
    shutil.copytree(DEMO / "archive", mirror / "archive")
    work = tmp_path / "w"
    work.mkdir()
    (work / "r.repro").write_text(RECIPE)

    with serve(mirror) as srv:
        code, out, err = _build(work, tmp_path / "clean-store", srv.url)
        assert code == 0, err
        clean = json.loads(out)["outputs"]["t"]["sha256"]
        shutil.rmtree(work / "out")

        srv.fault("/" + NETBASE, Fault(reset_after=5000), Fault(drip=20_000))
        code, out, err = _build(work, tmp_path / "store", srv.url)
        assert code == 0, err
        assert json.loads(out)["outputs"]["t"]["sha256"] == clean
        netbase_requests = [r for p, r in srv.requests if p == "/" + NETBASE]
        assert len(netbase_requests) >= 3  # clean build, reset, resumed drip
        shutil.rmtree(work / "out")

        before = _files(tmp_path / "store")
        # A fresh store and a dead package: every attempt is reset.
        srv.fault("/" + NETBASE, *[Fault(reset_after=100)] * 20)
        code, out, err = _build(work, tmp_path / "store2", srv.url, REPROBUILD_FETCH_RETRIES="2")
    assert code == 2, err
    assert "Traceback" not in err
    assert f"{srv.url}{NETBASE}" in err and "gave up after 3 attempts" in err
    assert _files(tmp_path / "store") == before
    leftovers = [f for f in _files(tmp_path / "store2") if f.endswith((".part", ".tmp"))]
    assert leftovers == []
    sha = hashlib.sha256((DEMO / NETBASE).read_bytes()).hexdigest()
    assert not any(sha in f for f in _files(tmp_path / "store2"))
    assert not (work / "out").exists() or _files(work / "out") == set()
