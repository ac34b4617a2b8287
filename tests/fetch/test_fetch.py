"""Fetching against a real loopback HTTP server that misbehaves on purpose."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from reprobuild.errors import FetchError, IntegrityError
from reprobuild.fetch import Fetcher, FetchPolicy, NotFound
from tests.support.mirror import Fault, free_port, serve

DATA = bytes(range(256)) * 4096  # 1 MiB
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    d = tmp_path / "srv"
    d.mkdir()
    (d / "f.bin").write_bytes(DATA)
    return d


def fetcher(sleeps: list[float] | None = None, retries: int = 3) -> Fetcher:
    log = sleeps if sleeps is not None else []
    return Fetcher(FetchPolicy(retries=retries, timeout=2.0), sleep=log.append)


def test_download_verifies_and_renames(root: Path, tmp_path: Path) -> None:
    with serve(root) as srv:
        dest = tmp_path / "out" / "f.bin"
        fetcher().download(srv.url + "f.bin", dest, sha256=SHA, size=len(DATA))
        assert dest.read_bytes() == DATA
        assert not dest.with_name("f.bin.part").exists()


def test_flipped_byte_is_rejected_and_leaves_nothing(root: Path, tmp_path: Path) -> None:
    with serve(root) as srv:
        srv.fault("/f.bin", Fault(flip_byte=1000))
        dest = tmp_path / "f.bin"
        with pytest.raises(IntegrityError) as info:
            fetcher().download(srv.url + "f.bin", dest, sha256=SHA, size=len(DATA))
        assert SHA in info.value.message
        assert not dest.exists()
        assert not dest.with_name("f.bin.part").exists()


def test_retry_on_503_with_retry_after(root: Path, tmp_path: Path) -> None:
    sleeps: list[float] = []
    with serve(root) as srv:
        srv.fault("/f.bin", Fault(status=503, retry_after="3"), Fault(status=500))
        data = fetcher(sleeps).get(srv.url + "f.bin").data
    assert data == DATA
    assert sleeps[0] == 3.0 and len(sleeps) == 2


def test_gives_up_after_bounded_retries(root: Path) -> None:
    sleeps: list[float] = []
    with serve(root) as srv:
        srv.fault("/f.bin", *[Fault(status=503)] * 10)
        with pytest.raises(FetchError) as info:
            fetcher(sleeps, retries=3).get(srv.url + "f.bin")
    assert "HTTP 503" in info.value.message and "4 attempts" in info.value.message
    assert sleeps == [0.5, 1.0, 2.0]  # exponential backoff


def test_404_is_not_retried(root: Path) -> None:
    sleeps: list[float] = []
    with serve(root) as srv, pytest.raises(NotFound):
        fetcher(sleeps).get(srv.url + "missing")
    assert sleeps == []


def test_connection_refused_names_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/x"
    with pytest.raises(FetchError) as info:
        fetcher(retries=1).get(url)
    assert url in info.value.message


def test_redirect_loop(root: Path) -> None:
    with serve(root) as srv:
        srv.fault("/a", *[Fault(redirect="/b")] * 10)
        srv.fault("/b", *[Fault(redirect="/a")] * 10)
        with pytest.raises(FetchError, match="too many redirects"):
            fetcher().get(srv.url + "a")


def test_truncated_body_resumes_with_range(root: Path, tmp_path: Path) -> None:
    with serve(root) as srv:
        srv.fault("/f.bin", Fault(truncate=300_000))
        dest = tmp_path / "f.bin"
        fetcher().download(srv.url + "f.bin", dest, sha256=SHA, size=len(DATA))
        assert dest.read_bytes() == DATA
        ranges = [r for p, r in srv.requests if p == "/f.bin"]
    assert ranges[0] is None and ranges[-1] is not None and ranges[-1].startswith("bytes=")


def test_longer_than_announced_is_refused(root: Path, tmp_path: Path) -> None:
    with serve(root) as srv, pytest.raises(IntegrityError):
        fetcher().download(srv.url + "f.bin", tmp_path / "x", sha256=SHA, size=1000)


def test_file_urls(root: Path, tmp_path: Path) -> None:
    url = (root / "f.bin").as_uri()
    assert fetcher().get(url).data == DATA
    with pytest.raises(NotFound):
        fetcher().get((root / "nope").as_uri())
    dest = tmp_path / "copy"
    fetcher().download(url, dest, sha256=SHA)
    assert dest.read_bytes() == DATA
