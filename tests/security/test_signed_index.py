"""Rows 'build --locked and replay never check the signed index' and 'a lockfile's
archive field can send fetches past --mirror' of issue 18.

The attacker controls a lockfile and can put a file in the mirror's pool,
but cannot sign an index: a package with the right name and version and
other bytes, absent from the signed index, must never be built.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from reprobuild import attest
from reprobuild import lockfile as lf
from tests.security.conftest import mirror_arg
from tests.support.cli import reprobuild
from tests.support.recipes import NETBASE_DEB, NETBASE_RECIPE

EVIL = b"#!/bin/sh\necho owned\n"


def _locked(tmp_path: Path, mirror: Path) -> tuple[Path, dict[str, object]]:
    work = tmp_path / "w"
    work.mkdir()
    (work / "r.repro").write_text(NETBASE_RECIPE)
    r = reprobuild(work, "lock", "--mirror", mirror_arg(mirror), "r.repro")
    assert r.returncode == 0, r.stderr
    return work, json.loads((work / "r.repro.lock").read_text())


def _plant(mirror: Path) -> tuple[str, int, str]:
    """A netbase 6.4 with other bytes, in the pool but in no signed index."""
    real = mirror / NETBASE_DEB
    evil = real.with_name("netbase_6.4_all+evil.deb")
    data = bytearray(real.read_bytes())
    data[-200:-200 + len(EVIL)] = EVIL  # other bytes, same name and version
    evil.write_bytes(bytes(data))
    rel = str(evil.relative_to(mirror / "archive/debian/20260711T101637Z"))
    return rel, len(data), hashlib.sha256(data).hexdigest()


def test_a_package_absent_from_the_signed_index_is_never_built(
    tmp_path: Path, demo_mirror: Path
) -> None:
    work, lock = _locked(tmp_path, demo_mirror)
    filename, size, sha = _plant(demo_mirror)
    (pkg,) = lock["packages"]  # type: ignore[misc]
    pkg.update(filename=filename, size=size, sha256=sha)
    (work / "r.repro.lock").write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    store = tmp_path / "store"
    for command in (
        ["build", "--locked", "-o", str(tmp_path / "out")],
        ["replay", "-o", str(tmp_path / "out-replay")],
    ):
        target = "r.repro" if command[0] == "build" else "r.repro.lock"
        r = reprobuild(
            work, *command, "--store", str(store), "--mirror", mirror_arg(demo_mirror), target
        )
        assert r.returncode in (1, 2), (command, r.stdout, r.stderr)
        assert "netbase 6.4" in r.stderr and "signed index" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    assert not any(p.name == sha for p in store.rglob("*")), "the planted package was fetched"
    assert not (tmp_path / "out").exists() and not (tmp_path / "out-replay").exists()
    # verify: an attestation made from the planted lockfile names it, but the
    # lockfile itself is checked against the signed index too.
    artifact = work / "image.tar"
    artifact.write_bytes(b"an image built from the planted lockfile")
    planted = lf.load(work / "r.repro.lock")
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    statement = attest.statement(planted, planted.identity(), "r", "t", digest, 0)
    (work / "t.intoto.json").write_text(attest.dumps(statement))
    r = reprobuild(
        work, "verify-attestation", "--store", str(store), "--mirror", mirror_arg(demo_mirror),
        "--lockfile", "r.repro.lock", "t.intoto.json", "image.tar",
    )  # fmt: skip
    assert r.returncode in (1, 2) and "netbase 6.4" in r.stderr, r.stdout + r.stderr


def test_a_lockfiles_archive_never_sends_fetches_past_the_mirror(
    tmp_path: Path, demo_mirror: Path
) -> None:
    work, lock = _locked(tmp_path, demo_mirror)
    lock["snapshots"]["snap"]["archive"] = "debian-security"  # type: ignore[index]
    lock["snapshots"]["snap"]["url"] = (  # type: ignore[index]
        "https://snapshot.debian.org/archive/debian-security/20260711T101637Z/"
    )
    (work / "r.repro.lock").write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    r = reprobuild(
        work,
        "build",
        "--locked",
        "--store",
        str(tmp_path / "store"),
        "--mirror",
        mirror_arg(demo_mirror),
        "r.repro",
        env={"REPROBUILD_FETCH_RETRIES": "0", "REPROBUILD_FETCH_TIMEOUT": "2"},
    )
    assert r.returncode == 2, r.stderr
    assert "the lockfile says archive 'debian-security' but the recipe says 'debian'" in r.stderr
    assert "snapshot.debian.org" not in r.stderr  # nothing was fetched from there
