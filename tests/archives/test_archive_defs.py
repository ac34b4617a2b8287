"""snapshots/*.toml: archive definitions and the date-to-snapshot mapping."""

from __future__ import annotations

from pathlib import Path

import pytest

from reprobuild.archives import (
    SNAPSHOTS_DIR,
    ArchiveDef,
    known_archives,
    load_archive,
    snapshot_timestamp,
)
from reprobuild.errors import ArchiveError, UsageError


def test_shipped_archives() -> None:
    assert known_archives() == ("archlinux", "debian", "debian-security", "ubuntu", "ubuntu-ports")
    for name in known_archives():
        a = load_archive(name)
        assert isinstance(a, ArchiveDef)
        assert a.name == name
        assert a.source.parent == SNAPSHOTS_DIR
        assert a.keyring.parent == SNAPSHOTS_DIR / "keyrings"


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("debian", "https://snapshot.debian.org/archive/debian/20260711T101637Z/"),
        (
            "debian-security",
            "https://snapshot.debian.org/archive/debian-security/20260711T101637Z/",
        ),
        ("ubuntu", "https://snapshot.ubuntu.com/ubuntu/20260711T101637Z/"),
        ("ubuntu-ports", "https://snapshot.ubuntu.com/ubuntu-ports/20260711T101637Z/"),
        ("archlinux", "https://archive.archlinux.org/repos/2026/07/11/"),
    ],
)
def test_snapshot_urls(name: str, url: str) -> None:
    assert load_archive(name).snapshot_url("2026-07-11T10:16:37Z") == url


def test_formats_and_rules() -> None:
    deb, alpm = load_archive("debian"), load_archive("archlinux")
    assert (deb.format, deb.date_rule, deb.components) == ("deb", "redirect", ("main",))
    assert (alpm.format, alpm.date_rule, alpm.arch) == ("alpm", "daily", "x86_64")
    assert alpm.repo_url("2024-04-02T23:59:59Z", "core", "x86_64") == (
        "https://archive.archlinux.org/repos/2024/04/02/core/os/x86_64/"
    )
    with pytest.raises(ArchiveError, match="no repository layout"):
        deb.repo_url("2024-04-02", "core", "x86_64")


def test_keyrings_shipped() -> None:
    assert load_archive("debian").require_keyring().is_file()
    assert load_archive("debian-security").keyring == load_archive("debian").keyring
    arch = load_archive("archlinux")
    if arch.keyring.is_file():
        assert arch.require_keyring() == arch.keyring


def test_ubuntu_keyring_shipped(tmp_path: Path) -> None:
    """From Debian's ubuntu-keyring package: the 2012 and 2018 archive signing keys."""
    import shutil
    import subprocess

    keyring = load_archive("ubuntu").require_keyring()
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed (Debian package gnupg)")
    shown = subprocess.run(
        ["gpg", "--show-keys", "--with-colons", str(keyring)],
        capture_output=True,
        text=True,
        check=True,
        env={"GNUPGHOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    ).stdout
    fingerprints = {line.split(":")[9] for line in shown.splitlines() if line.startswith("fpr:")}
    assert {
        "790BC7277767219C42C86F933B4FE6ACC0B21F32",
        "F6ECB3762474EDA9D21B7022871920D1991BC93C",
    } <= fingerprints


def test_user_definitions_may_name_shipped_keyrings(tmp_path: Path) -> None:
    (tmp_path / "company.toml").write_text(
        'format = "deb"\nurl = "https://e.org/{timestamp}/"\n'
        'keyring = "keyrings/debian-archive-keyring.gpg"\n[date]\nrule = "redirect"\n'
    )
    a = load_archive("company", [tmp_path])
    assert a.require_keyring() == load_archive("debian").keyring


def test_missing_keyring_says_where_to_get_it(tmp_path: Path) -> None:
    (tmp_path / "x.toml").write_text(
        'format = "deb"\nurl = "https://e.org/{timestamp}/"\nkeyring = "k.gpg"\n'
        'keyring_package = "x-keyring"\n[date]\nrule = "redirect"\n'
    )
    with pytest.raises(ArchiveError, match=r"keyring .* is missing") as info:
        load_archive("x", [tmp_path]).require_keyring()
    assert "x-keyring" in (info.value.hint or "")


def test_unknown_archive_lists_known() -> None:
    with pytest.raises(ArchiveError, match="unknown archive 'fedora'") as info:
        load_archive("fedora")
    assert "archlinux, debian, debian-security, ubuntu, ubuntu-ports" in (info.value.hint or "")


def test_search_dirs_first_wins(tmp_path: Path) -> None:
    (tmp_path / "debian.toml").write_text(
        'format = "deb"\nurl = "http://127.0.0.1:8080/archive/debian/{timestamp}/"\n'
        'keyring = "mine.gpg"\n[date]\nrule = "redirect"\n'
    )
    a = load_archive("debian", [tmp_path, SNAPSHOTS_DIR])
    assert a.url.startswith("http://127.0.0.1")
    assert a.keyring == (tmp_path / "mine.gpg").resolve()
    assert "archlinux" in known_archives([tmp_path, SNAPSHOTS_DIR])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('format = "rpm"\nurl = "x/"\nkeyring = "k"\n[date]\nrule = "daily"\n', "format must"),
        ('format = "deb"\nurl = "x"\nkeyring = "k"\n[date]\nrule = "daily"\n', "end with"),
        ('format = "deb"\nurl = "x/"\nkeyring = "k"\n[date]\nrule = "often"\n', "rule must"),
        ('format = "deb"\nurl = "x/"\n[date]\nrule = "daily"\n', "missing key 'keyring'"),
        (
            'name = "y"\nformat = "deb"\nurl = "x/"\nkeyring = "k"\n[date]\nrule = "daily"\n',
            "defines archive 'y'",
        ),
        ("format = \n", "cannot read archive definition"),
        ('format = "deb"\nurl = "x/"\nkeyring = "k"\ndate = 3\n', r"\[date\] must be a table"),
        (
            'format = "deb"\nurl = "x/"\nkeyring = "k"\n[date]\nrule = "daily"\n'
            "[defaults]\ncomponents = [1]\n",
            "list of strings",
        ),
    ],
)
def test_bad_definitions(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "x.toml").write_text(content)
    with pytest.raises(ArchiveError, match=message):
        load_archive("x", [tmp_path])


def test_bad_names() -> None:
    with pytest.raises(ArchiveError, match="invalid archive name"):
        load_archive("../etc/passwd")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-07-11T10:16:37Z", "20260711T101637Z"),
        ("2026-07-11", "20260711T000000Z"),
        ("2026-07-11T12:16:37+02:00", "20260711T101637Z"),
        ("2026-07-11T10:16:37", "20260711T101637Z"),
        ("2026-07-11 10:16:37z", "20260711T101637Z"),
        ("20260711T101637Z", "20260711T101637Z"),
        (" 2026-07-11T10:16:37.9Z ", "20260711T101637Z"),
        ("20260711", "20260711T000000Z"),
    ],
)
def test_snapshot_timestamp(text: str, expected: str) -> None:
    assert snapshot_timestamp(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", ""])
def test_snapshot_timestamp_errors(text: str) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        snapshot_timestamp(text)
