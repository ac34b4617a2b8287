"""Races and torn writes the store must survive, made deterministic.

* Different records for one key: the concurrency tests elsewhere race
  identical records or different keys, so a compare-and-swap that does not
  compare passes them. Here several writer processes record *different*
  records under one key while the test holds the store's ref lock, so all of
  them have read "no record yet" and wait at the swap; when it is released,
  exactly one must win and every writer must be handed the winner's record.
* A torn write: a writer process runs with ``RLIMIT_FSIZE`` below the size of
  what it writes, so the kernel cuts the write short (EFBIG) as a crash would.
  An atomic writer (temp file, rename) leaves nothing behind; one that writes
  in place leaves a torn git object, ref or output that a later run trusts.
  The slow kill -9 tests find this by chance; these find it every time.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dulwich.objects import ShaFile

from reprobuild.store import Output, StepRecord, Store

from .conftest import key, writer_env

RACERS = 3

# A writer: its own content, then its own record for the shared key; prints what it got back.
RACER = """
import json, sys
from reprobuild.store import Output, StepRecord, Store
path, key, me = sys.argv[1], sys.argv[2], sys.argv[3]
with Store.open(path) as store:
    blob = store.put_bytes(f"output of writer {me}\\n".encode())
    mine = StepRecord(kind="race", key=key, outputs=(Output("out", blob.sha256, blob.size),))
    print("ready", flush=True)
    got = store.record_step(key, mine)
    print(json.dumps({"mine": blob.sha256, "got": got.outputs[0].sha256}), flush=True)
"""


def _waiters(lock: Path) -> int:
    """Processes blocked in flock(2) on ``lock`` (the ``->`` lines of /proc/locks)."""
    inode = os.stat(lock).st_ino
    lines = Path("/proc/locks").read_text().splitlines()
    return sum(1 for ln in lines if "->" in ln and ln.split()[6].endswith(f":{inode}"))


def test_writers_racing_different_records_for_one_key_agree_on_one(tmp_path: Path) -> None:
    path = tmp_path / "store"
    Store.open(path).close()
    refs_lock = path / "reprobuild" / "refs.lock"
    k = key(42)
    fd = os.open(refs_lock, os.O_RDWR | os.O_CREAT, 0o644)
    procs = []
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # every swap waits until all writers are at it
        for i in range(RACERS):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", RACER, str(path), k, str(i)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=writer_env(),
                )
            )
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 120
        while _waiters(refs_lock) < RACERS:
            assert time.monotonic() < deadline, "the writers never reached the ref lock"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.05)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out.splitlines()[-1]))
    assert len({r["mine"] for r in results}) == RACERS  # the records really differ
    winners = [r for r in results if r["got"] == r["mine"]]
    assert len(winners) == 1, f"{len(winners)} writers were told their record was kept: {results}"
    assert {r["got"] for r in results} == {winners[0]["mine"]}  # everyone sees the same record
    with Store.open(path) as store:
        stored = store.lookup_step(k)
        assert stored is not None and stored.outputs[0].sha256 == winners[0]["mine"]
        assert store.verify().ok


# ------------------------------------------------------------------ torn writes

CUT_SHORT = """
import os, resource, signal, sys
from reprobuild.store import Output, StepRecord, Store
path, what, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
with Store.open(path) as store:
    blob = store.put_bytes(b"payload " * 4096)  # 32 KiB, stored before the limit
    rec = StepRecord(kind="torn", key="7".zfill(64), outputs=(Output("out", blob.sha256, blob.size),),
                     versions={"pad": "x" * 4000})
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        if what == "record":
            store.record_step(rec.key, rec)
        else:
            store.export(blob.sha256, what)
    except OSError as exc:
        print("cut short:", exc, flush=True)
        sys.exit(3)
print("not cut short", flush=True)
"""


def _cut_short(path: Path, what: str, limit: int) -> None:
    r = subprocess.run(
        [sys.executable, "-c", CUT_SHORT, str(path), what, str(limit)],
        capture_output=True, text=True, env=writer_env(), timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 3, r.stdout + r.stderr  # the write really was interrupted
    assert "File too large" in r.stdout or "EFBIG" in r.stdout or "27" in r.stdout, r.stdout


def test_a_record_cut_short_leaves_no_torn_object_and_a_rerun_is_whole(tmp_path: Path) -> None:
    path = tmp_path / "store"
    Store.open(path).close()
    _cut_short(path, "record", 64)
    objects = path / "objects"
    for f in objects.glob("??/*"):
        ShaFile.from_path(str(f))  # a torn loose object fails to inflate or to parse
    for ref in (path / "refs").rglob("*"):
        if ref.is_file():
            assert len(ref.read_bytes()) == 41, ref
    # The rerun a user would make: the same record, now without the limit.
    with Store.open(path) as store:
        blob = store.put_bytes(b"payload " * 4096)
        rec = StepRecord(
            kind="torn", key=key(7), outputs=(Output("out", blob.sha256, blob.size),),
            versions={"pad": "x" * 4000},
        )  # fmt: skip
        store.record_step(key(7), rec)
        assert store.lookup_step(key(7)) == rec
        report = store.verify()
        assert report.ok, report


def test_an_export_cut_short_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "store"
    Store.open(path).close()
    dest = tmp_path / "out" / "image.tar"
    dest.parent.mkdir()
    dest.write_bytes(b"the previous output, whole\n")
    _cut_short(path, str(dest), 4096)
    assert dest.read_bytes() == b"the previous output, whole\n"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["image.tar"]  # no temp left


# -------------------------------------------------------- errors while reading packs


def test_an_error_inside_a_pack_read_is_raised_as_itself_not_as_a_buffererror(
    tmp_path: Path,
) -> None:
    """The flaky Dask failure 'cannot close exported pointers exist', made deterministic.

    When dulwich fails while inflating a pack object, its frame (kept alive by
    the traceback) still holds a memoryview of the pack's mmap; leaving the
    ``with Store`` block then closed the pack under it, and BufferError
    replaced the real error. Here a pack fetched from a remote has bytes of
    its (incompressible, so stored) zlib streams flipped: reading the object
    fails inside dulwich's inflate, and that failure must be what comes out.
    """
    import random

    from reprobuild import cache

    source = Store.open_store(tmp_path / "source")
    keys = []
    rng = random.Random(7)
    for i in range(4):
        blob = source.put_bytes(b"x")
        k = key(100 + i)
        rec = StepRecord(
            kind="t", key=k, outputs=(Output("o", blob.sha256, blob.size),),
            versions={"noise": rng.randbytes(30_000).hex()},  # large, incompressible records
        )  # fmt: skip
        source.record_step(k, rec)
        keys.append(k)
    cache.push(source, str(tmp_path / "remote.git"), keys)
    source.close()
    with Store.open_store(tmp_path / "damaged") as fresh:
        assert len(cache.fetch(fresh, str(tmp_path / "remote.git"), keys).fetched) == 4
    # records from a local remote arrive as loose objects (read in place, not by a
    # dulwich fetch): pack them, as git would, to have a pack to damage
    subprocess.run(
        ["git", "--git-dir", str(tmp_path / "damaged"), "repack", "-a", "-d", "-q"], check=True
    )
    (pack,) = (tmp_path / "damaged" / "objects" / "pack").glob("*.pack")
    data = bytearray(pack.read_bytes())
    for off in range(12, len(data) - 20, 4096):  # a byte in every 4 KiB: every stream
        data[off] ^= 0x55
    pack.chmod(0o644)
    pack.write_bytes(bytes(data))
    with pytest.raises(Exception) as caught, Store.open_store(tmp_path / "damaged") as store:
        for sha in sorted(store.repo.object_store):
            store.repo.object_store[sha].as_raw_string()
    assert not isinstance(caught.value, BufferError), caught.value
    assert "exported pointers" not in str(caught.value)
    with Store.open_store(tmp_path / "damaged") as store:  # and the store still opens
        assert not store.verify().ok
