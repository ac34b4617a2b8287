"""A way in: password hashes, authorized keys, autologin (on a small real-format tree)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from reprobuild.errors import UsageError
from reprobuild.stepparams import RootfsParams
from reprobuild.steps.access import configure_access
from reprobuild.steps.treepaths import mkdirs, replaceable

HASH = "$6$salt$hash/with.dots"
KEYS = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDummyKeyForTests admin@laptop",
    'from="10.0.0.0/8" ecdsa-sha2-nistp256 AAAAE2VjZHNh',
]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\nadmin:x:1000:1000::/home/admin:/bin/bash\n"
    )
    (root / "etc/shadow").write_text("root:*:20000:0:99999:7:::\nadmin:!:20000:0:99999:7:::\n")
    os.chmod(root / "etc/shadow", 0o640)
    (root / "home/admin").mkdir(parents=True)
    unit = root / "usr/lib/systemd/system/serial-getty@.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\n")
    return root


def test_hashes_keys_and_autologin(tree: Path) -> None:
    configure_access(
        tree,
        RootfsParams.from_json({
            "root_password_hash": "$y$j9T$abc$def",
            "users": [{"name": "admin", "password_hash": HASH, "ssh_authorized_keys": KEYS}],
            "autologin": "admin",
        }),
        replaceable=replaceable,
        mkdirs=mkdirs,
    )
    assert (tree / "etc/shadow").read_text() == (
        "root:$y$j9T$abc$def:20000:0:99999:7:::\nadmin:" + HASH + ":20000:0:99999:7:::\n"
    )
    assert stat.S_IMODE(os.stat(tree / "etc/shadow").st_mode) == 0o640
    ssh = tree / "home/admin/.ssh"
    keys = ssh / "authorized_keys"
    assert keys.read_text() == "".join(k + "\n" for k in KEYS)
    assert (stat.S_IMODE(ssh.stat().st_mode), stat.S_IMODE(keys.stat().st_mode)) == (0o700, 0o600)
    if os.geteuid() == 0:
        assert (keys.stat().st_uid, keys.stat().st_gid) == (1000, 1000)
    serial = (tree / "etc/systemd/system/serial-getty@.service.d/autologin.conf").read_text()
    assert "ExecStart=\nExecStart=-/sbin/agetty --autologin admin --keep-baud" in serial
    vt = (tree / "etc/systemd/system/getty@.service.d/autologin.conf").read_text()
    assert "--autologin admin --noclear" in vt


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"root_password_hash": "hunter2"}, "crypt"),
        ({"root_password_hash": "$6$a:b"}, "crypt"),
        ({"users": [{"name": "nobody", "password_hash": HASH}]}, "no user 'nobody'"),
        ({"users": [{"name": "admin", "ssh_authorized_keys": ["not a key"]}]}, "public key"),
        ({"users": [{"name": "admin", "ssh_authorized_keys": "ssh-rsa AAAA"}]}, "list"),
        ({"autologin": "ghost"}, "no user 'ghost'"),
    ],
)
def test_refused(tree: Path, params: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        configure_access(tree, RootfsParams.from_json(params), replaceable=replaceable, mkdirs=mkdirs)


def test_home_link_out_is_refused(tree: Path, tmp_path: Path) -> None:
    (tree / "home/admin").rmdir()
    os.symlink(tmp_path, tree / "home/admin")
    with pytest.raises(UsageError, match="leads out"):
        configure_access(
            tree,
            RootfsParams.from_json({"users": [{"name": "admin", "ssh_authorized_keys": KEYS[:1]}]}),
            replaceable=replaceable,
            mkdirs=mkdirs,
        )
