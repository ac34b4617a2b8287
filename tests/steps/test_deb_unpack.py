"""Reading .deb files and unpacking them safely, with dpkg's semantics."""

from __future__ import annotations

import hashlib
import lzma
import os
import stat
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reprobuild.archives.debian.dpkgdb import (
    init_admindir,
    mark_installed,
    normalise_dependency_field,
    normalise_version,
    read_status,
    record_unpacked,
)
from reprobuild.archives.debian.unpack import read_deb, setup_merged_usr, unpack_data
from reprobuild.errors import ArchiveError
from reprobuild.tree import TreeError, UnsafePathError

from .conftest import CONTROL, ar_archive, member, tar_bytes

Factory = Callable[..., Path]


def test_read_real_package(pool_debs: dict[str, Path]) -> None:
    pkg = read_deb(pool_debs["base-files"])
    assert pkg.fields[0] == ("Package", "base-files")
    assert pkg.name == "base-files" and pkg.essential and pkg.multi_arch == "foreign"
    assert pkg.pre_depends == "awk"
    assert [c.path for c in pkg.conffiles][:2] == ["/etc/debian_version", "/etc/dpkg/origins/debian"]
    assert pkg.control_file("postinst") is not None and pkg.control_file("postinst").mode == 0o755  # type: ignore[union-attr]
    assert pkg.data_compression == ".xz"
    libc = read_deb(pool_debs["libc6"])
    assert libc.installed_name == "libc6:amd64" and "preinst" in libc.scripts


def _plain(tmp_path: Path, members: list[tuple[str, bytes]]) -> Path:
    path = tmp_path / "bad.deb"
    path.write_bytes(ar_archive(members))
    return path


def test_malformed_containers_are_refused(tmp_path: Path) -> None:
    ctrl = lzma.compress(tar_bytes([(member("./control"), CONTROL)]))
    data = lzma.compress(tar_bytes([]))
    cases = {
        "no ar magic": b"!<arch>" + b"x" * 100,
        "first member": ar_archive([("control.tar.xz", ctrl), ("debian-binary", b"2.0\n")]),
        "format": ar_archive([("debian-binary", b"3.0\n"), ("control.tar.xz", ctrl), ("data.tar.xz", data)]),
        "expected control.tar": ar_archive([("debian-binary", b"2.0\n"), ("data.tar.xz", data)]),
        "no data": ar_archive([("debian-binary", b"2.0\n"), ("control.tar.xz", ctrl)]),
        "expected data.tar": ar_archive([("debian-binary", b"2.0\n"), ("control.tar.xz", ctrl), ("data.tar.lz4", data)]),
        "malformed ar header": ar_archive([("debian-binary", b"2.0\n")])[:-10] + b"`x" + b"\n" * 8 + b"garbage" * 10,
    }
    for expected, blob in cases.items():
        path = tmp_path / "bad.deb"
        path.write_bytes(blob)
        with pytest.raises(ArchiveError, match=expected):
            read_deb(path)
    # members starting with "_" are skipped, like dpkg-deb
    ok = _plain(tmp_path, [("debian-binary", b"2.0\n"), ("_gpgorigin", b"sig"), ("control.tar.xz", ctrl), ("data.tar.xz", data)])
    assert read_deb(ok).name == "evil"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_bytes(b"original\n")
    return outside


def _untouched(victim: Path) -> None:
    assert sorted(p.name for p in victim.iterdir()) == ["passwd"]
    assert (victim / "passwd").read_bytes() == b"original\n"


@pytest.mark.parametrize("name", ["./../outside/passwd", "/etc/passwd", "./etc/../../outside/passwd"])
def test_unsafe_member_names(deb_factory: Factory, root: Path, victim: Path, name: str) -> None:
    deb = deb_factory([member("./", tarfile.DIRTYPE, mode=0o755), (member(name), b"evil")])
    with pytest.raises(UnsafePathError, match=r"package evil .*absolute|'\.\.'"):
        unpack_data(deb, root)
    _untouched(victim)


def test_write_through_escaping_symlink(deb_factory: Factory, root: Path, victim: Path) -> None:
    deb = deb_factory([member("./link", tarfile.SYMTYPE, linkname="../outside"), (member("./link/passwd"), b"evil")])
    with pytest.raises(UnsafePathError, match=r"evil.*outside the tree"):
        unpack_data(deb, root)
    _untouched(victim)


def test_absolute_symlink_then_file_lands_inside(deb_factory: Factory, root: Path, victim: Path) -> None:
    (root / "outside").mkdir()
    deb = deb_factory([member("./abs", tarfile.SYMTYPE, linkname=str(victim)), (member("./abs/passwd"), b"chrooted")])
    with pytest.raises(TreeError, match="does not exist"):  # <root>/<victim path> is not there
        unpack_data(deb, root)
    deb2 = deb_factory([member("./abs2", tarfile.SYMTYPE, linkname="/outside"), (member("./abs2/passwd"), b"chrooted")], name="ok.deb")
    unpack_data(deb2, root)
    assert (root / "outside/passwd").read_bytes() == b"chrooted"
    _untouched(victim)


def test_hard_links(deb_factory: Factory, root: Path, victim: Path) -> None:
    for target in (str(victim / "passwd"), "../outside/passwd", "./later"):
        deb = deb_factory([member("./evil", tarfile.LNKTYPE, linkname=target), (member("./later"), b"x")])
        with pytest.raises(UnsafePathError, match=r"hard link target|absolute|'\.\.'"):
            unpack_data(deb, root)
    _untouched(victim)
    deb = deb_factory([(member("./a", mode=0o755), b"data"), member("./b", tarfile.LNKTYPE, linkname="./a")], name="ok.deb")
    result = unpack_data(deb, root)
    assert os.stat(root / "a").st_ino == os.stat(root / "b").st_ino
    assert result.md5sums == (("/a", "8d777f385d3dfec8815d20f7496026dc"), ("/b", "8d777f385d3dfec8815d20f7496026dc"))


def test_symlink_chain_escape(deb_factory: Factory, root: Path, victim: Path) -> None:
    deb = deb_factory([
        member("./a", tarfile.SYMTYPE, linkname="b"),
        member("./b", tarfile.SYMTYPE, linkname="c/.."),
        member("./c", tarfile.SYMTYPE, linkname="../outside"),
        (member("./a/passwd"), b"evil"),
    ])
    with pytest.raises(UnsafePathError):
        unpack_data(deb, root)
    _untouched(victim)


def test_dpkg_directory_and_symlink_rules(deb_factory: Factory, root: Path) -> None:
    (root / "keep").mkdir(mode=0o700)
    os.utime(root / "keep", (5, 5))
    (root / "was-file").write_bytes(b"x")
    deb = deb_factory([
        member("./keep/", tarfile.DIRTYPE, mode=0o755),  # existing dir: untouched
        member("./was-file/", tarfile.DIRTYPE, mode=0o750),  # file replaced by a dir
        member("./new/", tarfile.DIRTYPE, mode=0o2775, mtime=1234),
        (member("./new/f", mode=0o4755), b"s"),
    ])
    unpack_data(deb, root)
    # symlink over a dir: skipped (a path twice in one package is refused, so a second one)
    unpack_data(deb_factory([member("./keep", tarfile.SYMTYPE, linkname="elsewhere")], name="1b.deb"), root)
    assert stat.S_IMODE(os.lstat(root / "keep").st_mode) == 0o700 and os.lstat(root / "keep").st_mtime == 5
    assert (root / "was-file").is_dir() and stat.S_IMODE(os.lstat(root / "was-file").st_mode) == 0o750
    assert stat.S_IMODE(os.lstat(root / "new").st_mode) == 0o2775 and os.lstat(root / "new").st_mtime == 1234
    assert stat.S_IMODE(os.lstat(root / "new/f").st_mode) == 0o4755
    deb = deb_factory([(member("./keep"), b"file over dir")], name="2.deb")
    with pytest.raises(TreeError, match="replace directory"):
        unpack_data(deb, root)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_owner_names_devices_and_setgid(deb_factory: Factory, root: Path) -> None:
    (root / "etc").mkdir()
    (root / "etc/group").write_text("root:x:0:\nshadow:x:4242:\n")
    shadow = member("./chage", mode=0o2755)
    shadow.gname, shadow.gid = "shadow", 42
    numeric = member("./other")
    numeric.gname, numeric.gid = "unknown-group", 77
    dev = member("./null", tarfile.CHRTYPE, mode=0o666)
    dev.devmajor, dev.devminor = 1, 3
    fifo = member("./fifo", tarfile.FIFOTYPE, mode=0o600)
    unpack_data(deb_factory([(shadow, b"x"), (numeric, b"y")]), root)
    st = os.lstat(root / "chage")
    assert st.st_gid == 4242 and stat.S_IMODE(st.st_mode) == 0o2755
    assert os.lstat(root / "other").st_gid == 77
    # device files and named pipes are refused (Debian Policy 10.6; see
    # tests/reliability/test_hostile_packages.py)
    with pytest.raises(ArchiveError, match="character device"):
        unpack_data(deb_factory([dev], name="dev.deb"), root)
    with pytest.raises(ArchiveError, match="named pipe"):
        unpack_data(deb_factory([fifo], name="fifo.deb"), root)
    assert not (root / "null").exists() and not (root / "fifo").exists()


def test_merged_usr(pool_debs: dict[str, Path], root: Path) -> None:
    assert setup_merged_usr(root, "amd64") == ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
    unpack_data(pool_debs["base-files"], root)  # ships ./bin/ ./lib/ ./sbin/ as directories
    result = unpack_data(pool_debs["bash"], root)  # ships ./bin/bash
    assert os.readlink(root / "bin") == "usr/bin" and (root / "usr/bin/bash").is_file()
    assert "/bin/bash" in result.paths and result.paths[0] == "/."
    assert (root / "etc/bash.bashrc.dpkg-new").is_file() and not (root / "etc/bash.bashrc").exists()


def test_conffiles_md5sums_and_configuration(deb_factory: Factory, root: Path) -> None:
    init_admindir(root, arch="amd64")
    control = CONTROL.replace(b"Architecture: all", b"Architecture: amd64\nMulti-Arch: same\nDepends: libc6(>=2.36) |foo ,  bar:any\nVersion2: x")
    deb = deb_factory(
        [member("./", tarfile.DIRTYPE, mode=0o755), member("./etc/", tarfile.DIRTYPE, mode=0o755), (member("./etc/app.conf"), b"conf\n"), (member("./etc/data"), b"d")],
        control=control,
        extra_control={"conffiles": b"/etc/app.conf\n", "postinst": b"#!/bin/sh\n", "triggers": b"interest-noawait /usr/lib/app\ninterest foo\n"},
    )
    record_unpacked(root, unpack_data(deb, root))
    db = root / "var/lib/dpkg"
    assert (root / "etc/app.conf.dpkg-new").read_bytes() == b"conf\n"
    assert (db / "info/evil:amd64.list").read_text() == "/.\n/etc\n/etc/app.conf\n/etc/data\n"
    # no md5sums in the package: dpkg generates one, conffiles included
    assert (db / "info/evil:amd64.md5sums").read_text().splitlines()[0].endswith("  etc/app.conf")
    assert stat.S_IMODE(os.stat(db / "info/evil:amd64.postinst").st_mode) == 0o755
    assert (db / "triggers/File").read_text() == "/usr/lib/app evil:amd64/noawait\n"
    assert (db / "triggers/foo").read_text() == "evil:amd64\n"
    status = (db / "status").read_text()
    assert "Depends: libc6 (>= 2.36) | foo, bar:any\n" in status
    assert "Status: install ok unpacked\n" in status and "Conffiles:\n /etc/app.conf newconffile\n" in status
    mark_installed(root, "evil")
    assert (root / "etc/app.conf").read_bytes() == b"conf\n"
    fields = dict(read_status(root)[0])
    assert fields["Status"] == "install ok installed"
    assert fields["Conffiles"] == "\n /etc/app.conf " + hashlib.md5(b"conf\n").hexdigest()


def test_field_normalisation() -> None:
    assert normalise_dependency_field("a|b (>=1.0) , c:any (<< 0:2), d (< 1)") == "a | b (>= 1.0), c:any (<< 2), d (<= 1)"
    assert normalise_version("0:1.2-3") == "1.2-3"
    assert normalise_version("1:1.2") == "1:1.2"
    assert normalise_version("0:1:2") == "0:1:2"
    with pytest.raises(ArchiveError):
        normalise_dependency_field("a (>= )")


@pytest.mark.slow
def test_unpacking_the_whole_mirror_is_fast(pool_debs: dict[str, Path], root: Path) -> None:
    setup_merged_usr(root, "amd64")
    init_admindir(root, arch="amd64")
    start = time.perf_counter()
    members = 0
    for deb in pool_debs.values():
        result = unpack_data(deb, root)
        record_unpacked(root, result)
        members += result.members
    elapsed = time.perf_counter() - start
    print(f"unpacked {len(pool_debs)} packages ({members} members) in {elapsed:.2f}s")
    assert len(read_status(root)) == len(pool_debs)
    assert elapsed < 120
