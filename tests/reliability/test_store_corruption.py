"""A damaged store (issue 8): a flipped byte in an output object, a missing
object, dangling refs. ``reprobuild store verify`` exits 1 naming each; a
build never uses the damaged object: it removes it, runs the step that made
it again, and ends with the digests of the undamaged build."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from reprobuild.store import Output, Store
from tests.support.cli import reprobuild
from tests.support.crash import (
    DEMO_MIRROR,
    Reference,
    check_out_dir,
    reference_fixture,  # noqa: F401 - provides the fixture ``reference``
    sha256_file,
)

MISSING_COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass(frozen=True)
class Built:
    work: Path
    store: Path
    digests: dict[str, str]
    steps: int


def build(work: Path, store: Path) -> dict:  # type: ignore[type-arg]
    r = reprobuild(
        work, "build", "--json", "--store", str(store), "--mirror", DEMO_MIRROR, "r.repro"
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def digests(result: dict) -> dict[str, str]:  # type: ignore[type-arg]
    return {n: o["sha256"] for n, o in result["outputs"].items()}


def verify(store: Path) -> tuple[int, str]:
    r = reprobuild(store.parent, "store", "verify", "--store", str(store))
    assert "Traceback" not in r.stderr
    return r.returncode, r.stdout


def step_of(store: Path, kind: str, output: str | None = None) -> tuple[str, Output]:
    """The ref of the one step of ``kind`` and its output (named, or its only one)."""
    with Store.open(store, create=False) as s:
        (entry,) = [e for e in s.ls() if e.kind == "step" and e.name == kind]
    (out,) = [o for o in entry.outputs if output is None or o.name == output]
    return entry.ref, out


def flip_byte(store: Path, sha256: str, offset: int) -> None:
    """Damage the stored form: the whole file, or the chunk holding that offset."""
    with Store.open(store, create=False) as s:
        if s.is_whole(sha256):
            path = s.content.path(sha256)
            path.chmod(0o644)
            data = bytearray(path.read_bytes())
            data[offset % len(data)] ^= 0x01
            path.write_bytes(bytes(data))
            return
        manifest = s.content.chunks.manifest(sha256)
        assert manifest is not None
        chunks = list(manifest.chunks())
        at = offset % sum(c.size for c in chunks)
        for chunk in chunks:
            if at < chunk.size:
                break
            at -= chunk.size
        path = s.content.chunks.chunk_path(chunk.sha256)
        data = bytearray(s.content.chunks.read_chunk(chunk))
        data[at] ^= 0x01
        path.chmod(0o644)
        path.write_bytes(b"R" + bytes(data))  # decodes, but no longer hashes to its name


def remove_object(store: Path, sha256: str) -> None:
    with Store.open(store, create=False) as s:
        assert s.content.remove(sha256) > 0


@pytest.fixture
def copy(reference: Reference, tmp_path: Path) -> Built:
    """A private copy of the reference build's store and recipe directory to damage."""
    shutil.copytree(reference.store, tmp_path / "store")
    work = reference.copy_to(tmp_path / "w")
    return Built(work, tmp_path / "store", reference.digests, reference.steps)


def test_verify_names_each_damage_and_the_build_repairs_what_it_uses(copy: Built) -> None:
    store = copy.store
    _, oci = step_of(store, "oci_image", "oci.tar")  # the OCI archive of a finished build
    _, rootfs = step_of(store, "rootfs")
    _, tarball = step_of(store, "tarball")
    snapshot_ref, _ = step_of(store, "snapshot")
    assert len({oci.sha256, rootfs.sha256, tarball.sha256}) == 3
    flip_byte(store, oci.sha256, 1000)
    flip_byte(store, rootfs.sha256, 12345)
    remove_object(store, tarball.sha256)
    (store / snapshot_ref).write_text(MISSING_COMMIT + "\n")  # a step ref to nothing
    dangling = store / "refs" / "builds" / "r" / "7"  # a made-up build ref to nothing
    dangling.parent.mkdir(parents=True, exist_ok=True)
    dangling.write_text(MISSING_COMMIT + "\n")

    code, report = verify(store)
    assert code == 1, report
    damaged = [line for line in report.splitlines() if line.startswith("damaged: ")]
    for needle, what in (
        (oci.sha256, "corrupt"),
        (rootfs.sha256, "corrupt"),
        (tarball.sha256, "missing"),
        (snapshot_ref, MISSING_COMMIT),
        ("refs/builds/r/7", MISSING_COMMIT),
    ):
        assert any(needle in line and what in line for line in damaged), (needle, report)

    result = build(copy.work, store)
    assert digests(result) == copy.digests
    # the snapshot, the rootfs and both outputs were made again (the rootfs
    # because the tarball, which had to run, uses it and it did not hash right)
    assert result["steps"]["run"] >= 4
    assert result["steps"]["run"] + result["steps"]["cached"] == copy.steps
    check_out_dir(copy.work / "out" / "r", store)
    with Store.open(store, create=False) as s:
        assert all(s.intact(o.sha256) for o in (oci, rootfs, tarball))

    # History is not rewritten by a build: the dangling build ref is still named.
    code, report = verify(store)
    assert code == 1 and "refs/builds/r/7" in report and len(report.splitlines()) == 3, report
    subprocess.run(
        ["git", "--git-dir", str(store), "update-ref", "-d", "refs/builds/r/7"], check=True
    )
    assert verify(store)[0] == 0


def test_a_damaged_output_is_made_again_not_exported(copy: Built) -> None:
    """Everything cached, but the OCI archive the build exports is damaged: the
    export's own hashing catches it, and only that step runs again."""
    _, oci = step_of(copy.store, "oci_image", "oci.tar")
    flip_byte(copy.store, oci.sha256, -3)
    result = build(copy.work, copy.store)
    assert digests(result) == copy.digests
    assert result["steps"] == {"total": copy.steps, "cached": copy.steps - 1, "run": 1}
    out = copy.work / "out" / "r"
    assert sha256_file(out / "o.tar") == oci.sha256
    check_out_dir(out, copy.store)
    assert verify(copy.store)[0] == 0


def test_a_damaged_input_of_a_step_that_runs_is_rebuilt_first(copy: Built) -> None:
    """The tarball must run (its object is gone) and reads the rootfs, whose
    object is damaged: the rootfs runs again first; the OCI step stays cached."""
    _, rootfs = step_of(copy.store, "rootfs")
    _, tarball = step_of(copy.store, "tarball")
    flip_byte(copy.store, rootfs.sha256, 777)
    remove_object(copy.store, tarball.sha256)
    result = build(copy.work, copy.store)
    assert digests(result) == copy.digests
    assert result["steps"] == {"total": copy.steps, "cached": copy.steps - 2, "run": 2}
    assert verify(copy.store)[0] == 0
