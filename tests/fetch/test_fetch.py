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
    assert info.value.hint == "check the mirror URL and the network, or pass --mirror NAME=URL"
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


def test_a_complete_partial_download_is_started_over_after_416(root: Path, tmp_path: Path) -> None:
    """A .part as long as the file: the server answers 416, the download restarts."""
    dest = tmp_path / "f.bin"
    dest.with_name("f.bin.part").write_bytes(DATA)
    sleeps: list[float] = []
    with serve(root) as srv:
        fetcher(sleeps).download(srv.url + "f.bin", dest, sha256=SHA)
        ranges = [r for p, r in srv.requests if p == "/f.bin"]
        assert dest.read_bytes() == DATA
        assert ranges == [f"bytes={len(DATA)}-", None]
        assert sleeps == [0.5]
        # knowing the size, a partial file as long as the file is not resumed at all
        dest.unlink()
        dest.with_name("f.bin.part").write_bytes(DATA)
        fetcher().download(srv.url + "f.bin", dest, sha256=SHA, size=len(DATA))
        assert [r for p, r in srv.requests if p == "/f.bin"][2:] == [None]
        assert dest.read_bytes() == DATA
        assert set(srv.user_agents) == {"reprobuild"}


def test_a_partial_download_longer_than_the_file_is_not_resumed(root: Path, tmp_path: Path) -> None:
    dest = tmp_path / "f.bin"
    dest.with_name("f.bin.part").write_bytes(DATA + b"stale tail")
    with serve(root) as srv:
        fetcher().download(srv.url + "f.bin", dest, sha256=SHA, size=len(DATA))
        ranges = [r for p, r in srv.requests if p == "/f.bin"]
    assert dest.read_bytes() == DATA and ranges == [None]


def test_a_resumed_download_the_server_answers_whole_is_refused(root: Path, tmp_path: Path) -> None:
    """200 to a range request: appending the whole body would corrupt the file."""
    import urllib3

    class IgnoresRange(urllib3.PoolManager):
        """What a server without range support does: the Range header is lost."""

        def urlopen(self, method, url, redirect=True, **kw):  # type: ignore[no-untyped-def]
            kw["headers"] = {k: v for k, v in kw.get("headers", {}).items() if k != "Range"}
            return super().urlopen(method, url, redirect=redirect, **kw)

    dest = tmp_path / "f.bin"
    dest.with_name("f.bin.part").write_bytes(DATA[:1000])
    sleeps: list[float] = []
    f = fetcher(sleeps)
    f._pool = IgnoresRange(retries=False)
    with serve(root) as srv:
        with pytest.raises(FetchError, match="server ignored the range request"):
            f.download(srv.url + "f.bin", dest, sha256=SHA)
        assert not dest.exists()
        # the connection with the unread body was closed, not reused
        assert f.get(srv.url + "f.bin").data == DATA
    assert sleeps == [] and len(set(srv.client_ports)) == 2


def test_gone_is_not_found_and_other_errors_are_not_retried(root: Path) -> None:
    sleeps: list[float] = []
    with serve(root) as srv:
        srv.fault("/f.bin", Fault(status=410), Fault(status=403))
        with pytest.raises(NotFound, match="HTTP 410"):
            fetcher(sleeps).get(srv.url + "f.bin")
        with pytest.raises(FetchError, match="HTTP 403") as info:
            fetcher(sleeps).get(srv.url + "f.bin")
    assert not isinstance(info.value, NotFound)
    assert sleeps == []


def test_redirects_are_followed_up_to_the_limit(root: Path) -> None:
    with serve(root) as srv:
        hops = [f"/r{i}" for i in range(5)]
        for here, there in zip(hops, [*hops[1:], "/f.bin"], strict=True):
            srv.fault(here, Fault(redirect=there))
        got = fetcher().get(srv.url + "r0")
        assert got.data == DATA and got.url == srv.url + "f.bin"
        for here, there in zip(hops, [*hops[1:], "/r5"], strict=True):
            srv.fault(here, Fault(redirect=there))
        srv.fault("/r5", Fault(redirect="/f.bin"))
        with pytest.raises(FetchError, match="too many redirects"):
            fetcher().get(srv.url + "r0")


def test_bytes_are_counted_once_each(root: Path, tmp_path: Path) -> None:
    for url in ((root / "f.bin").as_uri(), None):
        counted: list[int] = []
        f = Fetcher(FetchPolicy(retries=1, timeout=2.0), on_bytes=counted.append)
        if url is None:
            with serve(root) as srv:
                f.download(srv.url + "f.bin", tmp_path / "h.bin", sha256=SHA)
                assert sum(counted) == len(DATA)
                counted.clear()
                assert f.get(srv.url + "f.bin").data == DATA
        else:
            f.download(url, tmp_path / "c.bin", sha256=SHA)
        assert sum(counted) == len(DATA)


def test_the_environment_sets_retries_and_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REPROBUILD_FETCH_RETRIES", raising=False)
    monkeypatch.delenv("REPROBUILD_FETCH_TIMEOUT", raising=False)
    assert (FetchPolicy().retries, FetchPolicy().timeout) == (4, 30.0)
    monkeypatch.setenv("REPROBUILD_FETCH_RETRIES", "7")
    monkeypatch.setenv("REPROBUILD_FETCH_TIMEOUT", "9")
    assert (FetchPolicy().retries, FetchPolicy().timeout) == (7, 9.0)
    monkeypatch.setenv("REPROBUILD_FETCH_RETRIES", "-1")  # not a count: the default
    assert FetchPolicy().retries == 4


def test_retry_after_in_seconds_or_as_a_date() -> None:
    import email.utils
    import time

    from reprobuild.fetch import _retry_after

    assert _retry_after(None) is None and _retry_after("") is None
    assert _retry_after(" 12 ") == 12.0
    assert _retry_after("soon") is None
    later = email.utils.formatdate(time.time() + 100, usegmt=True)
    assert 90 < (_retry_after(later) or 0) <= 100
    past = email.utils.formatdate(time.time() - 100, usegmt=True)
    assert _retry_after(past) == 0.0


def test_a_wrong_size_is_refused_naming_both_sizes(root: Path, tmp_path: Path) -> None:
    from reprobuild.fetch import verify_file

    with pytest.raises(IntegrityError, match=f"got {len(DATA)} bytes, expected 5"):
        verify_file(root / "f.bin", sha256=SHA, size=5, what="f")
    verify_file(root / "f.bin", sha256=SHA, size=len(DATA), what="f")
    verify_file(root / "f.bin", sha256=None, size=None, what="f")


def test_network_errors_are_described_shortly() -> None:
    from reprobuild.fetch import _describe

    assert _describe(OSError("[Errno 111] Connection refused")) == "connection refused"
    assert _describe(OSError("Read Timed Out.")) == "timed out"
    assert _describe(OSError("pool: host: name or service not known")) == (
        "host: name or service not known"
    )
    assert _describe(OSError("x: " + "y" * 300)) == "y" * 200
    assert _describe(OSError()) == "OSError"


def test_one_connection_serves_redirects_errors_and_bodies(root: Path) -> None:
    """Keep-alive: a connection is closed only when a body broke off."""
    with serve(root) as srv:
        srv.fault("/a", Fault(redirect="/f.bin", redirect_status=301))
        srv.fault("/b", Fault(redirect="/f.bin", redirect_status=308))
        f = fetcher()
        assert f.get(srv.url + "a").data == DATA
        assert f.get(srv.url + "b").data == DATA
        with pytest.raises(NotFound):
            f.get(srv.url + "missing")
        assert f.get(srv.url + "f.bin").data == DATA
    assert len(srv.client_ports) == 6 and len(set(srv.client_ports)) == 1


def test_a_stalled_answer_times_out(root: Path) -> None:
    sleeps: list[float] = []
    f = Fetcher(FetchPolicy(retries=1, timeout=0.3), sleep=sleeps.append)
    with serve(root) as srv:
        srv.fault("/f.bin", Fault(stall=1.5), Fault(stall=1.5))
        with pytest.raises(FetchError, match="timed out") as info:
            f.get(srv.url + "f.bin")
    assert "gave up after 2 attempts" in info.value.message and sleeps == [0.5]
