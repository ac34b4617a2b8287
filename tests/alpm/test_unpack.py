"""Unpacking and registering synthetic packages; hostile packages are refused."""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import stat
import tarfile
from pathlib import Path

import pytest
import zstandard

from reprobuild.archives.arch.install import (
    AlpmConflictError,
    PkgDesc,
    desc_text,
    install_order,
    parse_pkginfo_raw,
    read_alpm_package,
    unpack_package,
    write_local_db,
)
from reprobuild.errors import ArchiveError
from reprobuild.tree import TreeError, UnsafePathError

from .pkgs import MTIME, Node, crafted_package, make_package, member

EPOCH = 1_750_000_000


@pytest.fixture
def root(tmp_path: Path) -> Path:
    tree = tmp_path / "root"
    tree.mkdir(mode=0o755)
    return tree


def test_backup_scriptlet_links_setuid(tmp_path: Path, root: Path) -> None:
    pkg = make_package(
        tmp_path,
        "demo",
        nodes={
            "etc": Node("dir", mode=0o755),
            "etc/demo.conf": Node(data=b"a = 1\n", mode=0o640, gid=5),
            "usr": Node("dir", mode=0o755),
            "usr/bin": Node("dir", mode=0o755),
            "usr/bin/demo": Node(data=b"binary", mode=0o4755),
            "usr/bin/demo2": Node("hardlink", target="usr/bin/demo"),
            "usr/bin/d": Node("symlink", target="demo"),
        },
        pkginfo=[("backup", "etc/demo.conf"), ("backup", "etc/missing.conf"), ("depend", "glibc")],
        install="post_install() {\n  touch /done\n}\n",
    )
    result = unpack_package(pkg, root)
    assert result.warnings == ()
    conf = root / "etc/demo.conf"
    assert conf.read_bytes() == b"a = 1\n"  # a fresh install writes backup files in place
    assert (stat.S_IMODE(conf.stat().st_mode), conf.stat().st_gid) == (0o640, 5)
    binary = root / "usr/bin/demo"
    assert stat.S_IMODE(binary.stat().st_mode) == 0o4755
    assert binary.stat().st_ino == (root / "usr/bin/demo2").stat().st_ino
    assert os.readlink(root / "usr/bin/d") == "demo"
    assert binary.stat().st_mtime == MTIME
    assert (root / "usr").stat().st_mtime == MTIME
    assert not any(p.name.startswith(".") for p in root.iterdir())
    assert result.install_script == b"post_install() {\n  touch /done\n}\n"
    assert result.backup == (
        ("etc/demo.conf", hashlib.md5(b"a = 1\n").hexdigest()),
        ("etc/missing.conf", "(null)"),
    )

    write_local_db(root, [result], reasons={"demo": "depend"}, epoch=EPOCH)
    db = root / "var/lib/pacman/local"
    assert (db / "ALPM_DB_VERSION").read_bytes() == b"9\n"
    entry = db / "demo-1.0-1"
    assert sorted(p.name for p in entry.iterdir()) == ["desc", "files", "install", "mtree"]
    desc = (entry / "desc").read_text()
    assert f"%INSTALLDATE%\n{EPOCH}\n\n" in desc
    assert "%REASON%\n1\n\n" in desc
    assert "%VALIDATION%\npgp\n\n" in desc
    assert desc.endswith("%DEPENDS%\nglibc\n\n%XDATA%\npkgtype=pkg\n\n")
    files = (entry / "files").read_text()
    assert files.startswith("%FILES%\netc/\netc/demo.conf\nusr/\nusr/bin/\nusr/bin/d\n")
    assert "%BACKUP%\netc/demo.conf\t" in files and "etc/missing.conf\t(null)\n" in files
    for name in ("desc", "files"):
        st = (entry / name).stat()
        assert (stat.S_IMODE(st.st_mode), st.st_mtime) == (0o644, EPOCH)
    assert (entry / "install").stat().st_mtime == MTIME
    assert gzip.decompress((entry / "mtree").read_bytes()).startswith(b"#mtree")


def test_desc_sections_in_pacman_order() -> None:
    info = parse_pkginfo_raw(
        "pkgname = a\npkgver = 1-1\nbroken line\n# comment\nconflict = b\nreplaces = c\n"
        "provides = d=1\noptdepend = e: why\ndepend = f\ngroup = g\nlicense = h\n"
        "xdata = pkgtype=split\nsize = 12\n",
        context="t",
    )
    text = desc_text(
        info, installdate=5, reason=0, validation=("pgp", "sha256"), installed_db="core"
    )
    headers = [line for line in text.split("\n") if line.startswith("%")]
    assert headers == [
        "%NAME%",
        "%VERSION%",
        "%INSTALLED_DB%",
        "%INSTALLDATE%",
        "%SIZE%",
        "%GROUPS%",
        "%LICENSE%",
        "%VALIDATION%",
        "%REPLACES%",
        "%DEPENDS%",
        "%OPTDEPENDS%",
        "%CONFLICTS%",
        "%PROVIDES%",
        "%XDATA%",
    ]
    assert "%VALIDATION%\nsha256\npgp\n\n" in text
    assert "%XDATA%" not in desc_text(info, installdate=5, xdata=False)


def test_pkginfo_needs_name_and_version() -> None:
    with pytest.raises(ArchiveError, match="pkgname"):
        parse_pkginfo_raw("pkgver = 1-1\n", context="x")
    with pytest.raises(ArchiveError, match="pkgver"):
        parse_pkginfo_raw("pkgname = x\npkgver = 1\n", context="x")


def test_other_compressions(tmp_path: Path) -> None:
    pkg = make_package(
        tmp_path, "comp", nodes={"opt": Node("dir", mode=0o755), "opt/f": Node(data=b"z")}
    )
    tar = zstandard.ZstdDecompressor().decompressobj().decompress(pkg.read_bytes())
    for suffix, data in ((".xz", lzma.compress(tar)), (".gz", gzip.compress(tar)), ("", tar)):
        other = tmp_path / f"comp-1.0-1-x86_64.pkg.tar{suffix}.alt"
        other.write_bytes(data)
        tree = tmp_path / f"t{suffix or '.tar'}"
        tree.mkdir()
        assert unpack_package(other, tree).members == 4
        assert (tree / "opt/f").read_bytes() == b"z"


def test_member_missing_from_mtree_is_skipped(tmp_path: Path, root: Path) -> None:
    pkg = make_package(
        tmp_path, "skip", nodes={"opt": Node("dir", mode=0o755), "opt/f": Node(data=b"z")}
    )
    tar = zstandard.ZstdDecompressor().decompressobj().decompress(pkg.read_bytes())
    extra = tarfile.TarInfo("opt/sneaky")
    extra.size = 1
    buf = io.BytesIO(tar)
    with tarfile.open(fileobj=buf, mode="a") as t:
        t.addfile(extra, io.BytesIO(b"s"))
    pkg.write_bytes(zstandard.ZstdCompressor().compress(buf.getvalue()))
    result = unpack_package(pkg, root)
    assert not (root / "opt/sneaky").exists()
    assert any("skipping extraction of opt/sneaky" in w for w in result.warnings)
    assert b"opt/sneaky" not in result.files


def test_existing_directory_kept_with_warning(tmp_path: Path, root: Path) -> None:
    (root / "srv").mkdir(mode=0o700)
    pkg = make_package(
        tmp_path, "srvpkg", nodes={"srv": Node("dir", mode=0o755), "srv/x": Node(data=b"x")}
    )
    result = unpack_package(pkg, root)
    assert stat.S_IMODE((root / "srv").stat().st_mode) == 0o700
    assert result.warnings == (
        "directory permissions differ on /srv/ filesystem: 700  package: 755",
    )


def test_conflicts_with_directories_are_refused(tmp_path: Path, root: Path) -> None:
    (root / "usr/lib").mkdir(parents=True)
    (root / "lib").symlink_to("usr/lib")
    pkg = make_package(tmp_path, "libdir", nodes={"lib": Node("dir", mode=0o755)})
    with pytest.raises(AlpmConflictError, match="exists in filesystem as a symlink"):
        unpack_package(pkg, root)
    (root / "data").mkdir()
    pkg = make_package(tmp_path, "dataln", nodes={"data": Node("symlink", target="usr")})
    with pytest.raises(AlpmConflictError, match="as a directory"):
        unpack_package(pkg, root)


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([(member("../escape"), b"x")], "'..'"),
        ([(member("/etc/passwd"), b"x")], "absolute path"),
        (
            [
                (member("evil", tarfile.SYMTYPE, linkname="../../../../../../tmp"), b""),
                (member("evil/pwned"), b"x"),
            ],
            "outside the tree",
        ),
        ([(member("hl", tarfile.LNKTYPE, linkname="/etc/shadow"), b"")], "absolute path"),
        ([(member("hl", tarfile.LNKTYPE, linkname="elsewhere"), b"")], "not an earlier member"),
    ],
)
def test_hostile_members_are_refused(
    tmp_path: Path, root: Path, members: list[tuple[tarfile.TarInfo, bytes]], message: str
) -> None:
    pkg = crafted_package(tmp_path, "evil", members)
    with pytest.raises((UnsafePathError, TreeError, ArchiveError), match=message) as caught:
        unpack_package(pkg, root)
    assert "package evil (evil-1.0-1-x86_64.pkg.tar.zst)" in str(caught.value)
    assert not (tmp_path / "escape").exists()


def test_absolute_symlink_stays_inside(tmp_path: Path, root: Path) -> None:
    (root / "etc").mkdir()
    pkg = crafted_package(
        tmp_path,
        "abs",
        [
            (member("conf", tarfile.SYMTYPE, linkname="/etc"), b""),
            (member("conf/new.conf"), b"inside"),
        ],
    )
    unpack_package(pkg, root)
    assert (root / "etc/new.conf").read_bytes() == b"inside"


def _desc(name: str, depends: tuple[str, ...] = (), provides: tuple[str, ...] = ()) -> PkgDesc:
    return PkgDesc(name=name, version="1-1", depends=depends, provides=provides)


class _Item:
    def __init__(self, info: PkgDesc) -> None:
        self.info = info


def test_install_order() -> None:
    items = [
        _Item(_desc("zsh", ("glibc", "libncursesw.so=6-64"))),
        _Item(_desc("ncurses", ("glibc",), ("libncursesw.so=6-64",))),
        _Item(_desc("glibc", ("filesystem", "tzdata"))),
        _Item(_desc("filesystem", ("iana-etc",))),
        _Item(_desc("iana-etc")),
        _Item(_desc("tzdata")),
        _Item(_desc("cyc-b", ("cyc-a>=1",))),
        _Item(_desc("cyc-a", ("cyc-b",))),
    ]
    order = [i.info.name for i in install_order(items)]
    # a cycle is entered at its first name once nothing else is ready
    assert order == [
        "iana-etc",
        "filesystem",
        "tzdata",
        "glibc",
        "ncurses",
        "zsh",
        "cyc-a",
        "cyc-b",
    ]


def test_read_alpm_package_without_mtree(tmp_path: Path) -> None:
    pkg = crafted_package(
        tmp_path,
        "plain",
        [(member("usr/", tarfile.DIRTYPE, mode=0o755), b""), (member("usr/f"), b"x")],
    )
    loaded = read_alpm_package(pkg)
    assert loaded.files == (b"usr/", b"usr/f") and not loaded.has_mtree
