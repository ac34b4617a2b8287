"""push/pull through real git remotes: a bare path, file://, dulwich's git://
server, dulwich's smart HTTP server and ``git daemon``."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from dulwich.repo import Repo
from dulwich.server import DictBackend, TCPGitServer

from reprobuild.errors import IntegrityError, StoreError
from reprobuild.store import BuildRecord, Output, Store
from reprobuild.store.transport import CARRIER_PREFIX, CHUNK_SIZE

from .conftest import key, step_with


def _populate(store: Store) -> dict[str, bytes]:
    """Two steps and two builds; one output spans several carrier chunks."""
    big = os.urandom(2 * CHUNK_SIZE + 12345)
    a = step_with(store, key(1), b"small input", b"")
    b = step_with(store, key(2), big, b"small input")
    lock = store.put_bytes(b"lockfile\n")
    for data in (b"image v1", b"image v2"):
        img = store.put_bytes(data)
        store.record_build(
            "demo",
            BuildRecord(
                recipe="demo",
                steps=(key(1), key(2)),
                outputs=(Output("disk", img.sha256, img.size),),
                sources=(Output("lockfile", lock.sha256, lock.size),),
            ),
        )
    contents = {
        o.sha256: d
        for o, d in zip(
            a.outputs + b.outputs, [b"small input", b"", big, b"small input"], strict=True
        )
    }
    for data in (b"image v1", b"image v2", b"lockfile\n"):
        contents[store.put_bytes(data).sha256] = data
    return contents


def _assert_complete_copy(src: Store, dst: Store, contents: dict[str, bytes]) -> None:
    assert dst.verify().ok, dst.verify().problems
    assert dst.step_keys() == src.step_keys()
    for k in src.step_keys():
        assert dst.lookup_step(k) == src.lookup_step(k)
    assert [(b.ref, b.commit, b.record) for b in dst.list_builds()] == [
        (b.ref, b.commit, b.record) for b in src.list_builds()
    ]
    for sha, data in contents.items():
        assert dst.read_bytes(sha) == data
    assert [b.number for b in dst.log("demo")] == [2, 1]


def _round_trip(src: Store, dst: Store, url: str) -> None:
    contents = _populate(src)
    pushed = src.push(url)
    assert len(pushed.updated) == 4 and pushed.content_objects == 6
    pulled = dst.pull(url)
    assert len(pulled.updated) == 4 and pulled.content_objects == 6
    _assert_complete_copy(src, dst, contents)
    # nothing left behind by the pull, and a second round is a no-op
    assert list((dst.path / "reprobuild" / "tmp").iterdir()) == []
    again = src.push(url)
    assert again.updated == () and again.content_objects == 0 and again.unchanged == 4
    assert dst.pull(url).updated == ()


def test_push_bare_repo_then_pull_into_empty_store(
    store: Store, other: Store, tmp_path: Path
) -> None:
    remote = tmp_path / "remote.git"
    Repo.init_bare(str(remote), mkdir=True).close()
    _round_trip(store, other, str(remote))
    refs = Repo(str(remote)).get_refs()
    assert sum(1 for r in refs if r.startswith(CARRIER_PREFIX)) == 6


def test_push_creates_missing_path_and_file_url(store: Store, other: Store, tmp_path: Path) -> None:
    _round_trip(store, other, "file://" + str(tmp_path / "new" / "remote.git"))


def test_store_to_store(store: Store, other: Store) -> None:
    """A remote that is itself a store gets plain content files, not carriers."""
    contents = _populate(store)
    store.push(str(other.path))
    _assert_complete_copy(store, other, contents)
    assert not any(r.startswith(CARRIER_PREFIX) for r in other.repo.get_refs())
    with Store.open(other.path.parent / "third") as third:
        third.pull(str(other.path))
        _assert_complete_copy(store, third, contents)


@contextlib.contextmanager
def _dulwich_git_server(repo_path: Path) -> Iterator[str]:
    repo = Repo(str(repo_path))
    server = TCPGitServer(DictBackend({b"/": repo}), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"git://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        repo.close()


def test_push_pull_over_dulwich_git_server(store: Store, other: Store, tmp_path: Path) -> None:
    remote = tmp_path / "served.git"
    Repo.init_bare(str(remote), mkdir=True).close()
    with _dulwich_git_server(remote) as url:
        _round_trip(store, other, url)


@contextlib.contextmanager
def _dulwich_http_server(repo_path: Path) -> Iterator[str]:
    from wsgiref.simple_server import make_server

    from dulwich.web import WSGIRequestHandlerLogger, WSGIServerLogger, make_wsgi_chain

    repo = Repo(str(repo_path))
    app = make_wsgi_chain(DictBackend({b"/": repo}))
    server = make_server(
        "127.0.0.1", 0, app, handler_class=WSGIRequestHandlerLogger, server_class=WSGIServerLogger
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        repo.close()


def test_push_pull_over_dulwich_http(store: Store, other: Store, tmp_path: Path) -> None:
    remote = tmp_path / "http.git"
    Repo.init_bare(str(remote), mkdir=True).close()
    with _dulwich_http_server(remote) as url:
        _round_trip(store, other, url)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _git_daemon(base: Path) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--enable=receive-pack",
            f"--base-path={base}",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"git daemon did not start: {proc.stderr.read() if proc.stderr else ''}"
                )
            time.sleep(0.05)
        yield f"git://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_push_pull_over_git_daemon(store: Store, other: Store, tmp_path: Path) -> None:
    base = tmp_path / "daemon"
    subprocess.run(["git", "init", "-q", "--bare", str(base / "store.git")], check=True)
    with _git_daemon(base) as url:
        _round_trip(store, other, url + "/store.git")
    fsck = subprocess.run(
        ["git", "--git-dir", str(base / "store.git"), "fsck", "--strict"],
        capture_output=True,
        text=True,
    )
    assert fsck.returncode == 0, fsck.stderr
    # the pushed carrier really holds the bytes, readable with plain git
    big = store.lookup_step(key(2))
    assert big is not None
    sha = big.outputs[0].sha256
    ls = subprocess.run(
        [
            "git",
            "--git-dir",
            str(base / "store.git"),
            "ls-tree",
            "-r",
            "--long",
            f"refs/content/sha256/{sha}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    # format 2: a manifest plus one blob per distinct chunk (random bytes: no repeats)
    lines = ls.stdout.splitlines()
    assert any(line.endswith("\tmanifest") for line in lines)
    chunk_lines = [line for line in lines if line.split("\t")[1].startswith("c-")]
    assert sum(int(line.split()[3]) for line in chunk_lines) == big.outputs[0].size


def test_conflicting_refs_are_reported_not_overwritten(
    store: Store, other: Store, tmp_path: Path
) -> None:
    remote = str(tmp_path / "remote.git")
    img = store.put_bytes(b"mine")
    store.record_build("demo", BuildRecord(recipe="demo", outputs=(Output("o", img.sha256, 4),)))
    store.push(remote)
    theirs = other.put_bytes(b"theirs")
    other.record_build("demo", BuildRecord(recipe="demo", outputs=(Output("o", theirs.sha256, 6),)))
    report = other.pull(remote)
    assert report.conflicts == ("refs/builds/demo/1",)
    assert other.read_build("demo/1").record.outputs[0].sha256 == theirs.sha256
    push = other.push(remote)
    assert push.conflicts == ("refs/builds/demo/1",)
    assert Repo(remote).refs[b"refs/builds/demo/1"] == store.repo.refs[b"refs/builds/demo/1"]


def test_pull_rejects_tampered_carrier(store: Store, other: Store, tmp_path: Path) -> None:
    """A remote whose carrier does not hash to its name: nothing is imported."""
    remote = tmp_path / "remote.git"
    rec = step_with(store, key(9), b"genuine content")
    store.push(str(remote))
    sha = rec.outputs[0].sha256
    # rewrite the carrier on the remote to carry other (truncated) bytes
    from dulwich.objects import Blob as GitBlob
    from dulwich.objects import Commit, Tree

    r = Repo(str(remote))
    evil = GitBlob.from_string(b"genuine")
    tree = Tree()
    tree.add(b"0000000", 0o100644, evil.id)
    c = Commit()
    c.tree, c.parents = tree.id, []
    c.author = c.committer = b"x <x@x>"
    c.author_time = c.commit_time = 0
    c.author_timezone = c.commit_timezone = 0
    c.message = b"evil\n"
    for obj in (evil, tree, c):
        r.object_store.add_object(obj)
    r.refs[CARRIER_PREFIX + sha.encode()] = c.id
    r.close()
    with pytest.raises(IntegrityError, match=sha):
        other.pull(str(remote))
    assert other.lookup_step(key(9)) is None
    assert not other.has(sha)
    assert other.verify().ok


def test_pull_without_content_on_remote_imports_nothing_dangling(
    store: Store, other: Store, tmp_path: Path
) -> None:
    remote = tmp_path / "remote.git"
    rec = step_with(store, key(9), b"content")
    store.push(str(remote))
    r = Repo(str(remote))
    del r.refs[CARRIER_PREFIX + rec.outputs[0].sha256.encode()]
    r.close()
    with pytest.raises(StoreError, match="lacks their content"):
        other.pull(str(remote))
    assert other.step_keys() == []
    assert other.verify().ok


def test_push_refuses_corrupt_local_content(store: Store, tmp_path: Path) -> None:
    rec = step_with(store, key(9), b"content")
    p = store.path_of(rec.outputs[0].sha256)
    os.chmod(p, 0o644)
    p.write_bytes(b"CONTENT")
    with pytest.raises(IntegrityError):
        store.push(str(tmp_path / "remote.git"))
    assert b"refs/steps/" + key(9).encode() not in Repo(str(tmp_path / "remote.git")).get_refs()


def test_pull_from_missing_remote(store: Store, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        store.pull(str(tmp_path / "nowhere.git"))


def test_large_push_pull_bounded_memory(store: Store, other: Store, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        for _ in range(12):
            f.write(os.urandom(8 << 20))
    blob = store.put_file(src)
    src.unlink()
    store.record_step(
        key(1),
        __import__("reprobuild.store", fromlist=["StepRecord"]).StepRecord(
            kind="big", key=key(1), outputs=(Output("big", blob.sha256, blob.size),)
        ),
    )
    remote = str(tmp_path / "remote.git")
    tracemalloc.start()
    try:
        store.push(remote)
        _, peak_push = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        other.pull(remote)
        _, peak_pull = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert other.verify().ok
    assert peak_push < 64 << 20, peak_push
    assert peak_pull < 64 << 20, peak_pull
