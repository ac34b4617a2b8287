"""post_install scriptlets run in the sandbox, in install order, as pacman runs them.

The tree gets a real bash from the shared Debian mirror (bash, libc6,
libtinfo6 unpacked over merged-/usr links), which is all a scriptlet needs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reprobuild.archives.arch.install import (
    install_order,
    run_scriptlets,
    unpack_package,
    write_local_db,
)
from reprobuild.archives.debian.unpack import setup_merged_usr, unpack_data
from reprobuild.tree import TreeError

from .pkgs import DEBIAN_POOL, Node, make_package, need, pacman_install

EPOCH = 1_750_000_000
DEBS = ("b/bash/bash_*", "g/glibc/libc6_*", "n/ncurses/libtinfo6_*")


@pytest.fixture
def bash_root(tmp_path: Path) -> Path:
    if shutil.which("bwrap") is None:
        pytest.skip("bwrap (bubblewrap) is not installed")
    debs = [next(iter(sorted((DEBIAN_POOL / "main").glob(p + ".deb"))), None) for p in DEBS]
    if not DEBIAN_POOL.is_dir() or None in debs:
        pytest.skip(f"bash, libc6 or libtinfo6 missing from the shared mirror {DEBIAN_POOL}")
    root = tmp_path / "root"
    root.mkdir(mode=0o755)
    setup_merged_usr(root, "amd64")
    for deb in debs:
        assert deb is not None
        unpack_data(deb, root)
    return root


def _scripted(tmp_path: Path, name: str, body: str, depends: tuple[str, ...] = ()) -> Path:
    return make_package(
        tmp_path,
        name,
        "3.1-2",
        nodes={"etc": Node("dir", mode=0o755)},
        pkginfo=[("depend", d) for d in depends],
        install=body,
    )


def test_post_install_runs_in_order(tmp_path: Path, bash_root: Path) -> None:
    first = _scripted(
        tmp_path,
        "first",
        "# post_install in a comment does not count\n"
        'post_install() {\n  echo "first $1 $SOURCE_DATE_EPOCH $(umask)" >> /etc/marker\n}\n'
        "pre_install() {\n  echo pre >> /etc/marker\n}\n",
    )
    second = _scripted(
        tmp_path,
        "second",
        'post_install() {\n  echo "second $1" >> /etc/marker\n}\n',
        depends=("first",),
    )
    silent = _scripted(tmp_path, "silent", "post_upgrade() {\n  echo no >> /etc/marker\n}\n")
    results = install_order([unpack_package(p, bash_root) for p in (second, silent, first)])
    write_local_db(bash_root, results, reasons=None, epoch=EPOCH)
    ran = run_scriptlets(bash_root, results, epoch=EPOCH)
    assert ran == ["post_install first 3.1-2", "post_install second 3.1-2"]
    assert (bash_root / "etc/marker").read_text() == f"first 3.1-2 {EPOCH} 0022\nsecond 3.1-2\n"
    assert not (bash_root / "tmp/alpm_000000").exists()


def test_failing_scriptlet_is_reported(tmp_path: Path, bash_root: Path) -> None:
    bad = _scripted(tmp_path, "bad", "post_install() {\n  echo oops >&2\n  return 3\n}\n")
    results = [unpack_package(bad, bash_root)]
    ran = run_scriptlets(bash_root, results, epoch=EPOCH)
    assert len(ran) == 1 and ran[0].startswith("post_install bad 3.1-2: failed with exit code 3 (")
    assert ran[0].endswith("oops)")
    with pytest.raises(TreeError, match="exit code 3"):
        run_scriptlets(bash_root, results, epoch=EPOCH, strict=True)


def test_without_bash_nothing_runs(tmp_path: Path) -> None:
    root = tmp_path / "bare"
    root.mkdir()
    pkg = _scripted(tmp_path, "lonely", "post_install() {\n  touch /x\n}\n")
    results = [unpack_package(pkg, root)]
    assert run_scriptlets(root, results, epoch=EPOCH) == []
    assert not (root / "x").exists() and not (root / "tmp").exists()


def test_scriptlets_match_pacman(tmp_path: Path, bash_root: Path) -> None:
    """pacman itself (chrooting into the tree) leaves the same traces as our sandbox."""
    need("pacman")
    # Debian builds libalpm with its defaults (/bin/sh, /sbin/ldconfig), Arch with
    # /usr/bin/bash and /usr/bin/ldconfig: give Debian's pacman its /bin/sh
    body = 'post_install() {\n  echo "$1 $(umask) $PWD $# $BASH_VERSION" >> /etc/marker\n}\n'
    pkgs = [_scripted(tmp_path, "one", body), _scripted(tmp_path, "two", body, ("one",))]
    theirs = tmp_path / "theirs"
    shutil.copytree(bash_root, theirs, symlinks=True)
    (theirs / "tmp").mkdir(mode=0o1777)
    (theirs / "usr/bin/sh").symlink_to("bash")
    pacman_install(theirs, pkgs, tmp_path / "work", scriptlets=True)
    (bash_root / "tmp").mkdir(mode=0o1777)
    results = [unpack_package(p, bash_root) for p in pkgs]
    write_local_db(bash_root, results, reasons=None, epoch=EPOCH)
    assert run_scriptlets(bash_root, results, epoch=EPOCH) == [
        "post_install one 3.1-2",
        "post_install two 3.1-2",
    ]
    expected = (theirs / "etc/marker").read_text()
    assert expected.startswith("3.1-2 0022 / 1 5.2") and expected.count("\n") == 2
    assert (bash_root / "etc/marker").read_text() == expected
    assert sorted(p.name for p in (theirs / "tmp").iterdir()) == []
    assert sorted(p.name for p in (bash_root / "tmp").iterdir()) == []
