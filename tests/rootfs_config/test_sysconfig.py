"""System settings: the files Debian's tools would write (golden texts)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reprobuild.errors import UsageError
from reprobuild.stepparams import RootfsParams
from reprobuild.steps.sysconfig import configure_system, hosts_file, sources_list
from reprobuild.steps.treepaths import replaceable

HOSTS = """\
127.0.0.1\tlocalhost
127.0.1.1\tvm.example.org vm

# The following lines are desirable for IPv6 capable hosts
::1\tlocalhost ip6-localhost ip6-loopback
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters

10.0.0.2\tdb db.example.org
fd00::1\trouter
"""


def test_hosts() -> None:
    extra = {"fd00::1": "router", "10.0.0.2": "db  db.example.org"}
    assert hosts_file("vm.example.org", extra) == HOSTS
    assert hosts_file(None, {}).splitlines()[1] == ""
    with pytest.raises(UsageError, match="host name"):
        hosts_file("vm", {"10.0.0.1": "bad_name"})
    with pytest.raises(UsageError, match="IP address"):
        hosts_file("vm", {"example.org": "x"})


def test_sources_list() -> None:
    text = sources_list(
        [
            {
                "url": "https://snapshot.debian.org/archive/debian/20260711T101637Z/",
                "suites": ["bookworm", "bookworm-updates"],
                "components": ["main", "contrib"],
            }
        ]
    )
    assert text == (
        "# The snapshot this image was built from (written by reprobuild).\n"
        "deb [check-valid-until=no] https://snapshot.debian.org/archive/debian/20260711T101637Z/"
        " bookworm main contrib\n"
        "deb [check-valid-until=no] https://snapshot.debian.org/archive/debian/20260711T101637Z/"
        " bookworm-updates main contrib\n"
    )


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    zone = root / "usr/share/zoneinfo/Europe/Berlin"
    zone.parent.mkdir(parents=True)
    zone.write_bytes(b"TZif2")
    (root / "etc").mkdir()
    return root


def test_timezone_keymap_locale(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    configure_system(
        root,
        RootfsParams.from_json({"timezone": "Europe/Berlin", "keymap": "de", "locale": "C.UTF-8", "hostname": "h"}),
        apt_sources=[],
        epoch=0,
        replaceable=replaceable,
    )
    assert os.readlink(root / "etc/localtime") == "/usr/share/zoneinfo/Europe/Berlin"
    assert (root / "etc/timezone").read_text() == "Europe/Berlin\n"
    assert (root / "etc/vconsole.conf").read_text() == "KEYMAP=de\n"
    assert (root / "etc/default/locale").read_text() == "LANG=C.UTF-8\n"
    assert "127.0.1.1\th\n" in (root / "etc/hosts").read_text()
    assert not (root / "etc/locale.gen").exists()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "not in the tree"),
        ({"timezone": "../../etc/passwd"}, "not a zone name"),
        ({"keymap": "de; rm -rf /"}, "not a keymap"),
        ({"locale": "de_DE.UTF-8"}, "locale-gen"),
        ({"enable_units": ["ssh"]}, "not a systemd unit"),
        ({"enable_units": ["a.service"], "disable_units": ["a.service"]}, "both"),
        ({"mask_units": ["a.service"]}, "need systemd"),
    ],
)
def test_refused(tmp_path: Path, params: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        configure_system(
            _tree(tmp_path), RootfsParams.from_json(params), apt_sources=[], epoch=0, replaceable=replaceable
        )
