"""Content-defined chunks: round trips, edits that cost chunks not files, derived regions."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reprobuild.export.tar import export_tarball
from reprobuild.store import Store
from reprobuild.store.ingest import chunk_file
from reprobuild.store.manifest import Derived, Manifest

SMALL = 64 << 10  # tests use a small threshold so chunked content stays cheap


def _small_threshold(store: Store) -> Store:
    store.content.small_max = SMALL
    return store


def _text(rng: random.Random, n: int) -> bytes:
    words = [b"alpha", b"beta", b"gamma", b"delta", b"usr/lib", b"\n", b"0x%x"]
    out = bytearray()
    while len(out) < n:
        w = rng.choice(words)
        out += (w % rng.randrange(1 << 16)) if b"%" in w else w
        out += b" "
    return bytes(out[:n])


def _chunk_files(store: Store) -> set[str]:
    return {name for name, _ in store.content.chunks.iter_chunks()}


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(SMALL + 1, 512 << 10),
    edits=st.lists(
        st.tuples(st.floats(0, 1), st.binary(min_size=0, max_size=64), st.integers(0, 64)),
        max_size=4,
    ),
)
def test_round_trip_random_contents_and_edits(
    tmp_path_factory, seed: int, size: int, edits
) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    data = rng.randbytes(size // 2) + _text(rng, size - size // 2)
    with Store.open(tmp_path_factory.mktemp("s") / "store") as store:
        _small_threshold(store)
        blob = store.put_bytes(data)
        assert blob.sha256 == hashlib.sha256(data).hexdigest() and blob.size == len(data)
        assert not store.is_whole(blob.sha256)
        assert store.read_bytes(blob.sha256) == data
        before = _chunk_files(store)
        edited = bytearray(data)
        for where, insert, delete in edits:
            at = int(where * len(edited))
            edited[at : at + delete] = insert
        edited_blob = store.put_bytes(bytes(edited))
        assert store.read_bytes(edited_blob.sha256) == bytes(edited)
        new = _chunk_files(store) - before
        # each edit touches at most a few chunks (the edited one and its neighbour)
        assert len(new) <= 3 * max(1, len(edits)) + 1
        assert store.verify().ok


def test_one_byte_change_in_a_gzip_layer_costs_chunks_not_the_layer(tmp_path: Path) -> None:
    rng = random.Random(7)
    tree = tmp_path / "tree.tar"
    tree.write_bytes(_text(rng, 1 << 20))
    layer = tmp_path / "layer.tar.gz"
    export_tarball(tree, layer, "gzip")
    with Store.open(tmp_path / "store") as store:
        _small_threshold(store)
        b1 = store.put_file(layer)
        manifest = store.content.chunks.manifest(b1.sha256)
        assert manifest is not None
        assert any(isinstance(s, Derived) and s.method == "gzip-blocks" for s in manifest.segments)
        before = _chunk_files(store)
        data = bytearray(tree.read_bytes())
        data[600 << 10] ^= 1
        tree.write_bytes(bytes(data))
        export_tarball(tree, layer, "gzip")
        b2 = store.put_file(layer)
        assert b2.sha256 != b1.sha256
        new_bytes = sum(
            p.stat().st_size for n, p in store.content.chunks.iter_chunks() if n not in before
        )
        assert new_bytes < b2.size // 10
        out = tmp_path / "out.tar.gz"
        store.export(b2.sha256, out)
        assert out.read_bytes() == layer.read_bytes()
        assert gzip.decompress(out.read_bytes()) == bytes(data)
        assert store.verify(deep=True).ok


def test_gzip_streams_of_older_stores_are_still_derived(tmp_path: Path) -> None:
    """Before gzip-blocks, layers were one zlib level 9 stream (XFL 2): still kept as
    their decompressed chunks and re-made byte for byte."""
    import struct
    import zlib

    data = _text(random.Random(9), 1 << 20)
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS, 9)
    old = (
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
        + comp.compress(data)
        + comp.flush()
        + struct.pack("<II", zlib.crc32(data), len(data))
    )
    with Store.open(tmp_path / "store") as store:
        _small_threshold(store)
        blob = store.put_bytes(old)
        manifest = store.content.chunks.manifest(blob.sha256)
        assert manifest is not None
        assert any(isinstance(s, Derived) and s.method == "gzip" for s in manifest.segments)
        assert store.read_bytes(blob.sha256) == old


def test_zstd_region_and_foreign_gzip(tmp_path: Path) -> None:
    rng = random.Random(8)
    tree = tmp_path / "tree.tar"
    tree.write_bytes(_text(rng, 1 << 20))
    layer = tmp_path / "layer.tar.zst"
    export_tarball(tree, layer, "zstd")
    foreign = gzip.compress(tree.read_bytes(), compresslevel=6, mtime=0)  # not ours: plain chunks
    with Store.open(tmp_path / "store") as store:
        _small_threshold(store)
        z = store.put_file(layer)  # zstd is not derived by default: too slow to re-make
        mz = store.content.chunks.manifest(z.sha256)
        assert mz is not None and not any(isinstance(s, Derived) for s in mz.segments)
        segments, sha, size = chunk_file(store.content.chunks, layer, methods=("gzip", "zstd"))
        assert any(isinstance(s, Derived) and s.method == "zstd" for s in segments)
        store.content.chunks.remove_manifest(z.sha256)
        store.content.put_manifest(Manifest(sha, size, segments))
        g = store.put_bytes(foreign)
        mg = store.content.chunks.manifest(g.sha256)
        assert mg is not None and not any(isinstance(s, Derived) for s in mg.segments)
        assert store.read_bytes(z.sha256) == layer.read_bytes()
        assert store.read_bytes(g.sha256) == foreign


def test_corrupt_chunk_is_caught_on_read_and_by_verify(tmp_path: Path) -> None:
    with Store.open(tmp_path / "store") as store:
        _small_threshold(store)
        data = os.urandom(300 << 10)
        blob = store.put_bytes(data)
        name, path = next(iter(store.content.chunks.iter_chunks()))
        os.chmod(path, 0o644)
        body = bytearray(path.read_bytes())
        body[-1] ^= 0xFF
        path.write_bytes(bytes(body))
        try:
            store.read_bytes(blob.sha256)
        except Exception as exc:  # IntegrityError (bytes) or corrupt chunk
            assert "corrupt" in str(exc)
        else:
            raise AssertionError("a corrupt chunk was served")
        assert any(name in str(p) for p in store.verify().problems)
        assert not store.intact(blob.sha256)  # removed, so the step reruns
        assert not store.has(blob.sha256)
        store.put_bytes(data)
        assert store.read_bytes(blob.sha256) == data and store.verify().ok


def test_materialized_and_streaming_reads(tmp_path: Path) -> None:
    with Store.open(tmp_path / "store") as store:
        _small_threshold(store)
        data = os.urandom(200 << 10)
        blob = store.put_stream(io.BytesIO(data))
        with store.materialized(blob.sha256) as p:
            assert p.read_bytes() == data
        assert not p.exists()  # a temp copy, gone afterwards
        small = store.put_bytes(b"small")
        with store.materialized(small.sha256) as p:
            assert p == store.content.path(small.sha256)  # whole: no copy


def test_threads_share_a_store(tmp_path: Path) -> None:
    """Steps run on threads: chunk codecs and chunkers must not be shared between them."""
    from concurrent.futures import ThreadPoolExecutor

    with Store.open(tmp_path / "store") as store:
        _small_threshold(store)
        datas = [_text(random.Random(i), 300 << 10) for i in range(4)]

        def work(data: bytes) -> bool:
            blob = store.put_bytes(data)
            return all(store.read_bytes(blob.sha256) == data for _ in range(2))

        with ThreadPoolExecutor(4) as pool:
            assert all(pool.map(work, datas))
        assert store.verify().ok
