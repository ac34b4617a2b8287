"""Issue 9: a remote step cache (``build --cache REMOTE [--push-cache]``).

Org A builds and pushes its step records to a git remote; org B, with an empty
store, builds the same recipe against that remote and runs nothing. A cache
entry whose content does not hash to its record is refused and the step is
rebuilt. Real remotes on this machine: a bare git repository and a store.
"""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

from reprobuild.cache_sign import generate
from reprobuild.store import Store
from tests.distributed.common import MIRROR, build_json, digests, workdir
from tests.support.cli import reprobuild


def team_keys(tmp_path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(the pushing org's environment: its secret key; the pulling org's: the public key)."""
    secret = tmp_path / "cache.secret"
    public = generate("team-cache-1", secret)
    return {"REPROBUILD_CACHE_SECRET_KEY": str(secret)}, {"REPROBUILD_TRUSTED_KEYS": public}


def test_org_b_runs_no_step_that_org_a_pushed(tmp_path: Path) -> None:
    remote = tmp_path / "cache.git"  # does not exist yet: --push-cache creates it
    signer, trusting = team_keys(tmp_path)
    a = build_json(
        workdir(tmp_path, "a"),
        tmp_path / "store-a",
        "--cache",
        str(remote),
        "--push-cache",
        env=signer,
    )
    assert a["steps"] == {"total": 7, "cached": 0, "run": 7}
    assert a["cache"] == {"fetched": 0, "refused": {}, "pushed": 7}
    assert (remote / "HEAD").is_file() and not (remote / "lfs").exists()  # a plain bare repo

    b_store = tmp_path / "store-b"
    b = build_json(workdir(tmp_path, "b"), b_store, "--cache", remote.as_uri(), env=trusting)
    assert b["steps"] == {"total": 7, "cached": 7, "run": 0}
    assert b["cache"] == {"fetched": 7, "refused": {}, "pushed": 0}
    assert digests(b) == digests(a)
    for name, sha in digests(a).items():
        out = next((tmp_path / "b/out/r").glob(f"{name}.*"))
        assert hashlib.sha256(out.read_bytes()).hexdigest() == sha
    # What came from the cache is a sound part of B's store.
    v = reprobuild(tmp_path, "store", "verify", "--store", str(b_store))
    assert v.returncode == 0, v.stdout + v.stderr
    # Only step records travel: the build history stays with each store.
    with Store.open_store(remote, create=False) as cache:
        assert cache.list_builds() == [] and len(cache.step_keys()) == 7


def test_a_corrupt_cache_entry_is_refused_and_the_step_rebuilt(tmp_path: Path) -> None:
    remote = tmp_path / "team-store"
    Store.open_store(remote).close()  # the cache is itself a store (content in lfs/)
    signer, trusting = team_keys(tmp_path)
    a = build_json(
        workdir(tmp_path, "a"),
        tmp_path / "store-a",
        "--cache",
        str(remote),
        "--push-cache",
        env=signer,
    )
    assert a["cache"]["pushed"] == 7
    # The cpio's bytes belong to it alone (a rootfs and a tarball share theirs).
    cpio_sha = a["outputs"]["c"]["sha256"]
    with Store.open_store(remote, create=False) as cache:
        if cache.is_whole(cpio_sha):
            obj = cache.content.path(cpio_sha)
            damaged = bytearray(obj.read_bytes())
            damaged[512] ^= 0xFF
            body = bytes(damaged)
        else:  # kept as chunks: damage the first one
            manifest = cache.content.chunks.manifest(cpio_sha)
            assert manifest is not None
            first = next(manifest.chunks())
            obj = cache.content.chunks.chunk_path(first.sha256)
            damaged = bytearray(cache.content.chunks.read_chunk(first))
            damaged[512] ^= 0xFF
            body = b"R" + bytes(damaged)
    obj.chmod(0o644)
    obj.write_bytes(body)

    r = reprobuild(
        workdir(tmp_path, "b"),
        "build",
        "--json",
        "--store",
        str(tmp_path / "store-b"),
        "--mirror",
        MIRROR,
        "--cache",
        str(remote),
        "r.repro",
        env=trusting,
    )
    assert r.returncode == 0, r.stderr
    b = json.loads(r.stdout)
    assert b["steps"] == {"total": 7, "cached": 6, "run": 1}  # only the cpio step ran
    assert b["cache"]["fetched"] == 6 and len(b["cache"]["refused"]) == 1
    (why,) = b["cache"]["refused"].values()
    assert cpio_sha in why and hashlib.sha256(damaged).hexdigest() in why
    assert "refused" in r.stderr
    assert digests(b) == digests(a)
    assert hashlib.sha256((tmp_path / "b/out/r/c.cpio").read_bytes()).hexdigest() == cpio_sha


def test_an_unreachable_or_missing_cache_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    work = workdir(tmp_path)
    for remote, message in [
        (f"git://127.0.0.1:{port}/cache.git", "cannot consult the step cache"),
        (str(tmp_path / "nowhere.git"), "does not exist"),
    ]:
        r = reprobuild(
            work,
            "build",
            "--store",
            str(tmp_path / "s"),
            "--mirror",
            MIRROR,
            "--cache",
            remote,
            "r.repro",
        )
        assert r.returncode == 2, r.stderr
        assert message in r.stderr and remote in r.stderr
        assert "Traceback" not in r.stderr
    r = reprobuild(work, "build", "--store", str(tmp_path / "s"), "--push-cache", "r.repro")
    assert r.returncode == 2 and "--push-cache needs --cache REMOTE" in r.stderr
    r = reprobuild(
        work,
        "build",
        "--store",
        str(tmp_path / "s"),
        "--cache",
        str(tmp_path / "c.git"),
        "--push-cache",
        "r.repro",
    )
    assert r.returncode == 2 and "--cache-secret-key" in r.stderr
