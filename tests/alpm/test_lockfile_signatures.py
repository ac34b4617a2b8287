"""The lockfile's Arch package signatures: written, read back, and refused when edited."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import pytest

from reprobuild.errors import LockfileError
from reprobuild.lockfile import LockedPackage, Lockfile, SnapshotLock, SuiteLock

FPR = "C7E7849466FE2358343588377258734B41C31549"
SIG = base64.b64encode(b"\x88\x75" + bytes(117)).decode()


def _lock(fmt: str, pkg: LockedPackage, *, insecure: bool = False) -> Lockfile:
    host = "archive.archlinux.org/repos/2022/09/12" if fmt == "alpm" else "snapshot.debian.org/x"
    snap = SnapshotLock(
        name="snap",
        step="0" * 64,
        archive="archlinux" if fmt == "alpm" else "debian",
        format=fmt,
        requested="2022-09-12",
        timestamp="20220912T000000Z",
        url=f"https://{host}/",
        architecture="x86_64",
        components=("core",),
        suites=(SuiteLock("core", "1" * 64, None, "2022-09-12T00:00:00Z", {"core.db": "1" * 64}),),
        signed=False,
    )
    return Lockfile("2" * 64, {}, (snap,), (pkg,), (), insecure=insecure)


PKG = LockedPackage(
    "vim", "9.0.0381-1", "x86_64", "extra/os/x86_64/vim.pkg.tar.zst", 1, "3" * 64, "snap"
)


def test_round_trip_and_debian_entries_unchanged() -> None:
    arch = _lock("alpm", replace(PKG, fingerprint=FPR, pgpsig=SIG))
    data = json.loads(arch.dumps())
    assert data["packages"][0]["fingerprint"] == FPR and data["packages"][0]["pgpsig"] == SIG
    assert Lockfile.from_json(data) == arch
    # Debian packages gain no field (their lockfiles stay byte for byte the same).
    deb = json.loads(_lock("deb", PKG).dumps())["packages"][0]
    assert sorted(deb) == [
        "architecture",
        "filename",
        "name",
        "sha256",
        "size",
        "snapshot",
        "version",
    ]


@pytest.mark.parametrize(
    ("fingerprint", "pgpsig", "field"),
    [
        (None, SIG, "fingerprint"),
        ("ABCD", SIG, "fingerprint"),
        (FPR, None, "pgpsig"),
        (FPR, "not base64!", "pgpsig"),
        (FPR, "", "pgpsig"),
    ],
)
def test_an_arch_package_without_its_signature_is_refused(
    fingerprint: str | None, pgpsig: str | None, field: str
) -> None:
    data = json.loads(_lock("alpm", replace(PKG, fingerprint=FPR, pgpsig=SIG)).dumps())
    data["packages"][0]["fingerprint"] = fingerprint
    data["packages"][0]["pgpsig"] = pgpsig
    with pytest.raises(LockfileError) as info:
        Lockfile.from_json(data)
    assert "vim=9.0.0381-1:x86_64" in info.value.message and f"'{field}'" in info.value.message


def test_unsigned_entries_need_an_insecure_lockfile() -> None:
    data = json.loads(_lock("alpm", PKG, insecure=True).dumps())
    assert data["packages"][0]["fingerprint"] is None and "insecure" in data
    Lockfile.from_json(data)
    del data["insecure"]
    with pytest.raises(LockfileError, match="'fingerprint'"):
        Lockfile.from_json(data)
