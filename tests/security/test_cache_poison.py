"""Row 'records pulled with --cache are trusted' of issue 18.

A poisoned cache holds, under a genuine step key, a record naming other
bytes (content hashes fine: only the record lies). Unsigned or signed by an
untrusted key, it is refused, the step runs, and the output is genuine.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from reprobuild.store import Output, StepRecord, Store
from tests.security.conftest import mirror_arg
from tests.support.cli import reprobuild
from tests.support.recipes import NETBASE_RECIPE


def generate(name: str, secret_file: Path) -> str:
    """A cache key pair in the documented format (NAME:BASE64), made here with the
    library directly: the secret to *secret_file*, the public key returned."""
    key = ed25519.Ed25519PrivateKey.generate()
    raw = serialization.Encoding.Raw
    seed = key.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    public = key.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
    secret_file.write_text(f"{name}:{base64.b64encode(seed).decode()}\n")
    os.chmod(secret_file, 0o600)
    return f"{name}:{base64.b64encode(public).decode()}"


def _build(work: Path, store: Path, mirror: Path, *args: str, env: dict[str, str]) -> dict:  # type: ignore[type-arg]
    r = reprobuild(
        work, "build", "--json", "--store", str(store), "--mirror", mirror_arg(mirror),
        *args, "r.repro", env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_a_poisoned_cache_record_is_refused(tmp_path: Path, demo_mirror: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    (work / "r.repro").write_text(NETBASE_RECIPE)
    cache = tmp_path / "cache"
    Store.open_store(cache).close()
    # The genuine build, to know the tarball step's key and digest.
    honest = _build(work, tmp_path / "honest", demo_mirror, env={})
    genuine = honest["outputs"]["t"]["sha256"]
    with Store.open_store(tmp_path / "honest") as store:
        records = [store.lookup_step(k) for k in store.step_keys()]
        key = next(r.key for r in records if r is not None and r.kind == "tarball")
    # The attacker writes a record for that key naming its own (well-hashed) bytes,
    # and signs it with a key nobody trusts.
    with Store.open_store(cache) as poisoned:
        blob = poisoned.put_bytes(b"owned\n" * 1000)
        poisoned.record_step(
            key,
            StepRecord(key=key, kind="tarball", outputs=(Output("t.tar", blob.sha256, blob.size),)),
        )
    public = generate("team-cache-1", tmp_path / "team.secret")
    trusted = {"REPROBUILD_TRUSTED_KEYS": public}
    b = _build(work, tmp_path / "victim", demo_mirror, "--cache", str(cache), env=trusted)
    assert b["outputs"]["t"]["sha256"] == genuine
    assert key in b["cache"]["refused"] and "not signed" in b["cache"]["refused"][key]
    # Signed, but by a key that is not trusted: refused as well.
    attacker = tmp_path / "attacker.secret"
    generate("team-cache-1", attacker)  # same name, other key: a forged signature
    evil = _build(
        work, tmp_path / "attacker-store", demo_mirror, "--cache", str(tmp_path / "evil"),
        "--push-cache", env={"REPROBUILD_CACHE_SECRET_KEY": str(attacker)},
    )  # fmt: skip
    assert evil["cache"]["pushed"] > 0
    c = _build(
        work, tmp_path / "victim2", demo_mirror, "--cache", str(tmp_path / "evil"), env=trusted
    )
    assert c["outputs"]["t"]["sha256"] == genuine
    assert c["cache"]["fetched"] == 0  # every record's signature failed
    assert all("does not verify" in why for why in c["cache"]["refused"].values())
    v = reprobuild(tmp_path, "store", "verify", "--store", str(tmp_path / "victim2"))
    assert v.returncode == 0, v.stdout + v.stderr
