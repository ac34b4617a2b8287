"""Large files are read a window at a time (so a 1 GiB file is never resident
whole, issue 22); the chunks and the candidate regions found must be exactly
those of one pass over the whole buffer, or stores would stop deduplicating."""

from __future__ import annotations

import random

import pytest

from reprobuild.export import gzipblocks
from reprobuild.store import derive
from reprobuild.store.ingest import cut_windows, cutter
from reprobuild.store.manifest import CDC_MAX


def _data(size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    # runs of repeated bytes among random ones: cuts land at many different offsets
    parts, total = [], 0
    while total < size:
        n = rng.randrange(1, 40_000)
        part = rng.randbytes(n) if rng.random() < 0.7 else bytes([rng.randrange(256)]) * n
        parts.append(part)
        total += n
    return b"".join(parts)[:size]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_windowed_cuts_are_the_cuts_of_one_pass(seed: int) -> None:
    data = _data(5 * CDC_MAX + 12_345, seed)
    whole = [bytes(c.data) for c in cutter().cut_buf(memoryview(data))]
    windowed = [bytes(c) for c in cut_windows(memoryview(data), window=1)]  # 2 * CDC_MAX
    assert windowed == whole and b"".join(windowed) == data


def test_candidates_across_window_edges_are_found_once(monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytearray(_data(64 * derive.ALIGN, 4))
    for i, at in enumerate(range(0, len(data), 3 * derive.ALIGN)):  # aligned gzip and zstd magics
        # reprobuild's own gzip header (only those are derived) or a zstd magic
        magic = gzipblocks.HEADER if i % 2 else b"\x28\xb5\x2f\xfd"
        data[at : at + len(magic)] = magic
    whole = list(derive.candidates(memoryview(bytes(data))))
    released: list[int] = []
    # a window a few bytes off the alignment: magics straddle window edges
    monkeypatch.setattr(derive, "_SCAN_WINDOW", 5 * derive.ALIGN + 2)
    windowed = list(derive.candidates(memoryview(bytes(data)), released.append))
    assert windowed == whole and len(whole) >= 20
    assert released == sorted(released) and len(released) > 5
