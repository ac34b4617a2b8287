"""Properties of the serialised forms (no store needed)."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from reprobuild.store import Blob, BuildRecord, Output, StepRecord
from reprobuild.store.records import parse_pointer, pointer_bytes, tree_entry_name

sha = st.binary(max_size=8).map(lambda b: hashlib.sha256(b).hexdigest())
names = st.text(min_size=1, max_size=20).filter(lambda n: "\0" not in n and n not in (".", ".."))
outputs = st.lists(
    st.builds(
        Output, name=names, sha256=sha, size=st.integers(0, 2**40), media_type=st.text(max_size=10)
    ),
    max_size=4,
    unique_by=lambda o: o.name,
).map(tuple)
keys = st.from_regex(r"[a-f0-9]{64}", fullmatch=True)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.text(max_size=10)
)


@given(sha, st.integers(0, 2**50))
def test_pointer_round_trip(digest: str, size: int) -> None:
    assert parse_pointer(pointer_bytes(Blob(digest, size))) == Blob(digest, size)


@given(st.binary(max_size=200))
def test_parse_pointer_never_crashes(data: bytes) -> None:
    parse_pointer(data)


@given(
    keys,
    st.text(max_size=10),
    st.lists(keys, max_size=3),
    outputs,
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), json_scalars, max_size=3),
)
def test_step_record_round_trip(
    key: str,
    kind: str,
    inputs: list[str],
    outs: tuple[Output, ...],
    versions: dict[str, str],
    params: dict[str, object],
) -> None:
    rec = StepRecord(
        kind=kind, key=key, inputs=tuple(inputs), outputs=outs, versions=versions, params=params
    )
    data = rec.to_bytes()
    assert StepRecord.from_bytes(data) == rec
    assert StepRecord.from_bytes(data).to_bytes() == data
    assert data.endswith(b"\n")


@given(outputs, outputs)
def test_build_record_round_trip(outs: tuple[Output, ...], sources: tuple[Output, ...]) -> None:
    rec = BuildRecord(recipe="r", steps=("a", "b"), outputs=outs, sources=sources)
    assert BuildRecord.from_bytes(rec.to_bytes()) == rec


@given(names, names)
def test_tree_entry_names_injective_and_slash_free(a: str, b: str) -> None:
    ea, eb = tree_entry_name(a), tree_entry_name(b)
    assert b"/" not in ea
    assert (ea == eb) == (a == b)
