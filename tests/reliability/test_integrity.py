"""Integrity refusals through the real CLI (issue 8): a flipped byte in an
index, a Release that is expired, not yet valid, or foreign to its snapshot,
a flipped byte in an Arch ``core.db`` or ``.pkg.tar.zst``. Each is refused
with exit 2, naming the file (and both hashes where the archive vouches for
one), before anything enters the store or a lockfile is written."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from reprobuild.archives.debian.index import check_dates, parse_release
from reprobuild.errors import ArchiveError
from tests.support.cli import reprobuild as rb
from tests.support.debmirror import sign_release

ROOT = Path(__file__).resolve().parents[2]
DEMO_TS = "20260711T101637Z"
DEMO = ROOT / "snapshots" / "demo" / "archive" / "debian" / DEMO_TS
PACKAGES = "dists/bookworm/main/binary-amd64/Packages.xz"
RECIPE = (
    'let snap = snapshot { archive = "debian"; date = "@DATE@"; suites = [ "bookworm" ]; };\n'
    'in { t = tarball { root = rootfs { snapshot = snap; variant = "none"; packages = [ "netbase" ]; }; }; }\n'
)
SNAPSHOT_TIME = datetime(2026, 7, 11, 10, 16, 37, tzinfo=UTC)


def _signed_text(inrelease: bytes) -> str:
    """The Release inside a clearsigned InRelease (dash-escaping undone)."""
    text = inrelease.decode()
    body = text.split("\n\n", 1)[1].split("\n-----BEGIN PGP SIGNATURE-----", 1)[0]
    return "\n".join(ln[2:] if ln.startswith("- ") else ln for ln in body.split("\n")) + "\n"


def _mirror(tmp: Path, ts: str = DEMO_TS, **fields: str) -> tuple[Path, Path]:
    """A one-suite mirror (indexes only: enough to lock) whose Release has
    ``fields`` set, signed by a throwaway key; returns (archive dir, keyring)."""
    snap = tmp / "mirror" / "archive" / "debian" / ts
    (snap / PACKAGES).parent.mkdir(parents=True)
    shutil.copyfile(DEMO / PACKAGES, snap / PACKAGES)
    text = _signed_text((DEMO / "dists/bookworm/InRelease").read_bytes())
    for name, value in fields.items():
        name = name.replace("_", "-")
        if re.search(rf"^{name}: ", text, re.M):
            text = re.sub(rf"^{name}: .*$", f"{name}: {value}", text, count=1, flags=re.M)
        else:
            text = text.replace("\nDate: ", f"\n{name}: {value}\nDate: ", 1)
    release = snap / "dists" / "bookworm" / "Release"
    release.write_text(text)
    keyring = tmp / "keyring.gpg"
    sign_release(release, keyring)
    release.unlink()  # only InRelease is served, as on snapshot.debian.org
    return tmp / "mirror" / "archive" / "debian", keyring


def _lock(
    tmp: Path,
    archive: Path,
    keyring: Path,
    *flags: str,
    date: str = "2026-07-11T10:16:37Z",
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    work = tmp / "w"
    work.mkdir(exist_ok=True)
    (work / "r.repro").write_text(RECIPE.replace("@DATE@", date))
    return rb(
        work,
        "lock",
        "--mirror",
        f"debian={archive.as_uri()}/",
        "--keyring",
        f"debian={keyring}",
        *flags,
        "r.repro",
        env=env,
    )


def _http_date(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


def test_a_release_that_expired_since_needs_allow_expired(tmp_path: Path) -> None:
    """As apt: an expired Valid-Until is refused; a dated snapshot is old on
    purpose, so --allow-expired (Check-Valid-Until=false) accepts it."""
    archive, keyring = _mirror(tmp_path, Valid_Until=_http_date(SNAPSHOT_TIME + timedelta(days=7)))
    refused = _lock(tmp_path, archive, keyring)
    assert refused.returncode == 2, refused.stderr
    assert "InRelease is expired (invalid since Sat, 18 Jul 2026 10:16:37 UTC" in refused.stderr
    assert "--allow-expired" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "w" / "r.repro.lock").exists()

    accepted = _lock(tmp_path, archive, keyring, "--allow-expired")
    assert accepted.returncode == 0, accepted.stderr
    lock = json.loads((tmp_path / "w" / "r.repro.lock").read_text())
    assert [p["name"] for p in lock["packages"]] == ["netbase"]
    (tmp_path / "w" / "r.repro.lock").unlink()
    by_env = _lock(tmp_path, archive, keyring, env={"REPROBUILD_ALLOW_EXPIRED": "1"})
    assert by_env.returncode == 0, by_env.stderr


def test_a_release_already_expired_when_the_snapshot_was_taken_is_refused_even_so(
    tmp_path: Path,
) -> None:
    """A stale (replayed) Release served under a later date: refused with and
    without the override."""
    archive, keyring = _mirror(
        tmp_path,
        Date=_http_date(SNAPSHOT_TIME - timedelta(days=30)),
        Valid_Until=_http_date(SNAPSHOT_TIME - timedelta(days=23)),
    )
    r = _lock(tmp_path, archive, keyring, "--allow-expired")
    assert r.returncode == 2
    assert "had already expired when the snapshot was taken" in r.stderr
    assert not (tmp_path / "w" / "r.repro.lock").exists()


def test_a_release_dated_after_its_snapshot_is_refused(tmp_path: Path) -> None:
    archive, keyring = _mirror(tmp_path, Date=_http_date(SNAPSHOT_TIME + timedelta(hours=5)))
    r = _lock(tmp_path, archive, keyring)
    assert r.returncode == 2
    assert "after the snapshot it was served as" in r.stderr and "Traceback" not in r.stderr


def test_a_release_from_the_future_is_not_valid_yet(tmp_path: Path) -> None:
    """A snapshot dated later than this machine's clock is refused before any
    index is read (a Release dated after its snapshot is refused below, and
    apt's "not valid yet" rule on its own in test_check_dates_as_apt)."""
    future = datetime.now(UTC).replace(microsecond=0) + timedelta(days=400)
    ts = future.strftime("%Y%m%dT%H%M%SZ")
    archive, keyring = _mirror(tmp_path, ts=ts, Date=_http_date(future))
    r = _lock(
        tmp_path, archive, keyring, "--allow-expired", date=future.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    assert r.returncode == 2
    assert "is in the future" in r.stderr and "Traceback" not in r.stderr
    assert "^" in r.stderr  # the recipe's date is pointed at


def test_check_dates_as_apt() -> None:
    """The rules on their own, including a Release with no Valid-Until
    (Debian's main archive has none; its security archive has one)."""
    text = _signed_text((DEMO / "dists/bookworm/InRelease").read_bytes())
    release = parse_release(text)
    assert release.valid_until is None
    later = SNAPSHOT_TIME + timedelta(days=3650)
    check_dates(release, now=later, taken=SNAPSHOT_TIME)  # never expires
    with pytest.raises(ArchiveError, match="not valid yet"):
        check_dates(release, now=SNAPSHOT_TIME - timedelta(seconds=1))
    expiring = parse_release(
        text.replace(
            "\nDate: ", f"\nValid-Until: {_http_date(SNAPSHOT_TIME + timedelta(days=7))}\nDate: "
        )
    )
    check_dates(expiring, now=SNAPSHOT_TIME + timedelta(days=6), taken=SNAPSHOT_TIME)
    with pytest.raises(ArchiveError, match="expired"):
        check_dates(expiring, now=later, taken=SNAPSHOT_TIME)
    check_dates(expiring, now=later, taken=SNAPSHOT_TIME, allow_expired=True)
    with pytest.raises(ArchiveError, match="already expired when the snapshot"):
        check_dates(expiring, now=later, taken=later - timedelta(days=1), allow_expired=True)


def test_a_flipped_byte_in_packages_xz_is_refused_naming_both_hashes(tmp_path: Path) -> None:
    archive, keyring = _mirror(tmp_path)
    index = archive / DEMO_TS / PACKAGES
    good = hashlib.sha256(index.read_bytes()).hexdigest()
    data = bytearray(index.read_bytes())
    data[len(data) // 2] ^= 0x01
    index.write_bytes(bytes(data))
    r = _lock(tmp_path, archive, keyring)
    assert r.returncode == 2, r.stderr
    assert "Packages.xz" in r.stderr
    assert good in r.stderr and hashlib.sha256(data).hexdigest() in r.stderr
    assert not (tmp_path / "w" / "r.repro.lock").exists()


# -- Arch Linux ---------------------------------------------------------------


def _arch_repo(tmp: Path) -> tuple[Path, Path, str]:
    """A signed one-package repository, its recipe, and the --keyring for its key."""
    from tests.alpm.pkgs import Node, make_package
    from tests.alpm.signing import packager, repo_add

    day = tmp / "mirror" / "repos" / "2021" / "04" / "29"
    repo_dir = day / "core" / "os" / "x86_64"
    repo_dir.mkdir(parents=True)
    pkg = make_package(
        repo_dir,
        "hello",
        "2.10-3",
        {"usr/bin/hello": Node(data=b"#!/bin/sh\necho hi\n", mode=0o755)},
    )
    for p in sorted(repo_dir.glob("stage-*")):
        shutil.rmtree(p)
    with packager() as key:
        key.sign(pkg)
        keyring = key.export(tmp / "archlinux.gpg")
    repo_add(repo_dir, "core", [pkg])
    work = tmp / "w"
    work.mkdir()
    (work / "a.repro").write_text(
        'let snap = snapshot { archive = "archlinux"; date = "2021-04-29T12:00:00Z"; repos = [ "core" ]; };\n'
        'in { t = tarball { root = rootfs { snapshot = snap; variant = "none"; packages = [ "hello" ]; }; }; }\n'
    )
    return repo_dir, work, f"archlinux={keyring}"


needs_pacman_tools = pytest.mark.skipif(
    shutil.which("repo-add") is None or shutil.which("bsdtar") is None,
    reason="repo-add/bsdtar are not installed (Debian packages pacman-package-manager, libarchive-tools)",
)


def _flip(path: Path, at: int) -> tuple[str, str]:
    real = path.resolve()
    data = bytearray(real.read_bytes())
    good = hashlib.sha256(data).hexdigest()
    data[at % len(data)] ^= 0x01
    real.unlink()
    real.write_bytes(bytes(data))
    return good, hashlib.sha256(data).hexdigest()


@needs_pacman_tools
def test_a_flipped_byte_in_core_db_is_refused(tmp_path: Path) -> None:
    repo_dir, work, keyring = _arch_repo(tmp_path)
    _flip(repo_dir / "core.db", 200)
    mirror = f"archlinux={(tmp_path / 'mirror' / 'repos').as_uri()}/"
    r = rb(work, "lock", "--mirror", mirror, "--keyring", keyring, "a.repro")
    assert r.returncode == 2, r.stderr
    assert "core.db" in r.stderr and "Traceback" not in r.stderr
    assert not (work / "a.repro.lock").exists()


@needs_pacman_tools
def test_a_flipped_byte_in_a_pkg_tar_zst_is_refused_naming_both_hashes(tmp_path: Path) -> None:
    repo_dir, work, keyring = _arch_repo(tmp_path)
    mirror = f"archlinux={(tmp_path / 'mirror' / 'repos').as_uri()}/"
    assert rb(work, "lock", "--mirror", mirror, "--keyring", keyring, "a.repro").returncode == 0
    pkg = next(repo_dir.glob("hello-*.pkg.tar.zst"))
    good, bad = _flip(pkg, 300)
    store = tmp_path / "store"
    r = rb(
        work, "build", "--store", str(store), "--mirror", mirror, "--keyring", keyring, "a.repro"
    )
    assert r.returncode == 2, r.stderr
    assert pkg.name in r.stderr and good in r.stderr and bad in r.stderr
    assert "Traceback" not in r.stderr
    assert not any(bad in p.name for p in store.rglob("*"))
    assert not (work / "out").exists() or not any((work / "out").iterdir())
