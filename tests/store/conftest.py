from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reprobuild.store import Blob, Output, StepRecord, Store

WRITER = Path(__file__).with_name("writer.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "store")
    yield s
    s.close()


@pytest.fixture
def other(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "other")
    yield s
    s.close()


def writer_cmd(store_path: Path, seed: int, iterations: int, big: int = 6 << 20) -> list[str]:
    return [sys.executable, str(WRITER), str(store_path), str(seed), str(iterations), str(big)]


def writer_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def step_with(store: Store, key: str, *payloads: bytes, kind: str = "test") -> StepRecord:
    """Put ``payloads`` and record a step whose outputs are them."""
    outputs = []
    for i, data in enumerate(payloads):
        b: Blob = store.put_bytes(data)
        outputs.append(Output(f"out{i}", b.sha256, b.size))
    rec = StepRecord(kind=kind, key=key, outputs=tuple(outputs), versions={"t": "1"})
    store.record_step(key, rec)
    return rec


def key(n: int) -> str:
    return f"{n:064x}"
