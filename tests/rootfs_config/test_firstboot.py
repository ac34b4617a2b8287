"""Per-machine state is removed and regenerated on first boot; leftovers are reported."""

from __future__ import annotations

import os
from pathlib import Path

from reprobuild.steps.firstboot import MACHINE_FILES, UNITS, finalize, find_secrets
from reprobuild.steps.treepaths import replaceable

KEY = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"


def _tree(tmp_path: Path, files: dict[str, bytes]) -> Path:
    root = tmp_path / "root"
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    root.mkdir(exist_ok=True)
    return root


def test_ssh_host_keys_removed_and_a_keygen_unit_added(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "etc/ssh/ssh_host_rsa_key": KEY,
            "etc/ssh/ssh_host_rsa_key.pub": b"ssh-rsa AAAA root@build\n",
            "etc/ssh/ssh_host_ed25519_key": KEY,
            "etc/ssh/ssh_host_ed25519_key.pub": b"ssh-ed25519 AAAA root@build\n",
            "etc/ssh/sshd_config": b"# config\n",
            "var/lib/systemd/random-seed": b"\x01" * 512,
            "var/lib/systemd/credential.secret": b"\x02" * 32,
            "usr/lib/systemd/systemd": b"",
            "usr/bin/ssh-keygen": b"",
        },
    )
    done = finalize(root, replaceable=replaceable)
    assert done.removed == (
        "/etc/ssh/ssh_host_ed25519_key",
        "/etc/ssh/ssh_host_ed25519_key.pub",
        "/etc/ssh/ssh_host_rsa_key",
        "/etc/ssh/ssh_host_rsa_key.pub",
        "/var/lib/systemd/random-seed",
        "/var/lib/systemd/credential.secret",
    )
    assert done.units == ("sshd-keygen.service",)
    assert sorted(os.listdir(root / "etc/ssh")) == ["sshd_config"]
    unit = (root / "etc/systemd/system/sshd-keygen.service").read_text()
    assert unit == UNITS["sshd-keygen.service"][1]
    assert "ExecStart=/usr/bin/ssh-keygen -A" in unit and "Before=ssh.service" in unit
    for target in ("multi-user.target", "ssh.service", "ssh.socket"):
        link = root / f"etc/systemd/system/{target}.wants/sshd-keygen.service"
        assert os.readlink(link) == "/etc/systemd/system/sshd-keygen.service"
    assert find_secrets(root) == []


def test_without_systemd_keys_go_but_no_unit_is_added(tmp_path: Path) -> None:
    """A container image: keys never belong in it; its entrypoint makes them."""
    root = _tree(tmp_path, {"etc/ssh/ssh_host_ecdsa_key": KEY, "usr/bin/ssh-keygen": b""})
    done = finalize(root, replaceable=replaceable)
    assert done.removed == ("/etc/ssh/ssh_host_ecdsa_key",)
    assert done.units == ()
    assert not (root / "etc/systemd").exists()


def test_snakeoil_and_its_hash_link(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "etc/ssl/private/ssl-cert-snakeoil.key": b"-----BEGIN PRIVATE KEY-----\n",
            "etc/ssl/certs/ssl-cert-snakeoil.pem": b"-----BEGIN CERTIFICATE-----\n",
            "usr/lib/systemd/systemd": b"",
            "usr/sbin/make-ssl-cert": b"",
        },
    )
    os.symlink("ssl-cert-snakeoil.pem", root / "etc/ssl/certs/0a1b2c3d.0")
    done = finalize(root, replaceable=replaceable)
    assert "/etc/ssl/certs/0a1b2c3d.0" in done.removed
    assert done.units == ("ssl-cert-snakeoil.service",)
    assert os.listdir(root / "etc/ssl/certs") == []


def test_every_machine_file_says_how_it_comes_back() -> None:
    for m in MACHINE_FILES:
        assert m.patterns and m.regenerated_by
        assert m.unit is None or m.unit in UNITS


def test_secrets_that_slipped_through_are_named(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "etc/app/server.key": b"junk\n-----BEGIN EC PRIVATE KEY-----\nMHcC\n",
            "etc/app/shipped.key": b"-----BEGIN RSA PRIVATE KEY-----\n",
            "usr/share/doc/app/example.key": b"-----BEGIN RSA PRIVATE KEY-----\n",
            "etc/dropbear/dropbear_ed25519_host_key": b"\x00\x00\x00\x0bssh-ed25519",
            "etc/machine-id": b"0123456789abcdef0123456789abcdef\n",
            "var/lib/dpkg/info/app.list": b"/etc/app\n/etc/app/shipped.key\n",
        },
    )
    assert find_secrets(root) == [
        "/etc/app/server.key: a private key no package ships (made at build time or by the recipe)",
        "/etc/dropbear/dropbear_ed25519_host_key: a per-machine identity generated at build time",
        "/etc/machine-id: a machine ID (it should be empty)",
    ]


def test_links_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "ssh").mkdir(parents=True)
    (outside / "ssh" / "ssh_host_rsa_key").write_bytes(KEY)
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "etc")
    finalize(root, replaceable=replaceable)
    assert (outside / "ssh" / "ssh_host_rsa_key").exists()
