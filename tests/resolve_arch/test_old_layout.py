"""A database of the older layout (``desc`` and ``depends`` per package, as Arch
Linux published until 2014), with the odd strings real ones hold, resolved by
reprobuild and by pacman itself.

Each entry keeps its dependency fields in ``depends`` beside ``desc``; some
list ``depends`` before ``desc``; one lacks ``depends``. Strings pacman
tolerates: ``gconf>`` in ``%DEPENDS%`` (newer than the empty version),
``kdelibs cmake`` as one ``%MAKEDEPENDS%`` entry, a description in
``%DEPENDS%``, an unknown section, a stray line, a ``%CSIZE%`` that is not a
number in a field resolution does not use, an unknown file beside the entry
and a file at the top of the archive (a name that does not split as
``NAME-VER-REL`` there makes pacman refuse the whole database, and reprobuild
too).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from reprobuild import api
from reprobuild.archives.arch.resolve import ArchRequest, ArchUniverse, resolve_arch
from reprobuild.archives.arch.sync_db import read_sync_db, read_sync_db_index
from reprobuild.errors import ResolveError
from reprobuild.locking import Sources

from .pacman import Pacman

V = "7.4.373-1"
# name -> (version, depends, provides, extra desc text, extra depends text)
PACKAGES: dict[str, tuple[str, list[str], list[str], str, str]] = {
    "vim": (V, [f"vim-runtime={V}", "gpm", "perl"], [], "", ""),
    "vim-runtime": (V, ["bash"], [], "", ""),
    "gpm": ("1.20.7-4", ["bash", "procps-ng"], [], "", ""),
    "procps-ng": ("3.3.9-3", ["ncurses"], ["procps"], "", ""),
    "perl": ("5.20.0-4", ["gdbm", "db", "coreutils", "glibc", "sh"], ["perl-libs"], "", ""),
    "bash": ("4.3.018-1", ["readline>=6.3", "glibc"], ["sh"], "", ""),
    "readline": ("6.3.006-1", ["glibc", "ncurses"], ["libreadline.so=6-64"], "", ""),
    "ncurses": ("5.9-7", ["glibc"], [], "", ""),
    "glibc": ("2.19-5", ["linux-api-headers>=3.15", "tzdata", "filesystem"], [], "", ""),
    "linux-api-headers": ("3.15.5-1", [], [], "", ""),
    "tzdata": ("2014e-1", [], [], "", ""),
    "filesystem": ("2014.07-1", ["iana-etc"], [], "", ""),
    "iana-etc": ("2.30-4", [], [], "", ""),
    "gdbm": ("1.11-1", ["glibc", "sh"], [], "", ""),
    "db": ("5.3.28-2", ["gcc-libs", "sh"], [], "", ""),
    "gcc-libs": ("4.9.0-5", ["glibc>=2.19"], [], "", ""),
    "coreutils": ("8.23-1", ["glibc", "acl", "gmp", "libcap", "openssl"], [], "", ""),
    "acl": ("2.2.52-2", ["attr>=2.4.46"], [], "", ""),
    "attr": ("2.4.47-1", ["glibc"], [], "", ""),
    "gmp": ("6.0.0-2", ["gcc-libs", "sh"], [], "", ""),
    "libcap": ("2.24-1", ["glibc", "attr"], [], "", ""),
    "openssl": ("1.0.1.i-1", ["perl", "zlib"], [], "", ""),
    "zlib": ("1:1.2.8-3", ["glibc"], [], "", ""),
    "gconf": ("3.2.6-3", ["glibc"], [], "", ""),
    # the strings pacman tolerates
    "gnome-panel": (
        "3.12.1-1",
        ["gconf>", "zlib: compression"],
        [],
        "%CSIZE%\nnot-a-number\n\n%UNKNOWN%\nsome value\nanother\n\n",
        "%MAKEDEPENDS%\nkdelibs cmake\n\n%OPTDEPENDS%\nzenity: dialogs\n\n",
    ),
    "kde-old": ("4.13.3-1", ["gconf>=3", "sh"], [], "stray line outside a section\n", ""),
}
ORDER_DEPENDS_FIRST = {"perl", "glibc", "gnome-panel"}
NO_DEPENDS_FILE = {"tzdata", "iana-etc"}


def _old_layout_db() -> bytes:
    # A file at the top: skipped, as libalpm skips it (when its name splits like an entry's).
    members: list[tuple[str, bytes]] = [("notes-1-1", b"not a package\n")]
    for name, (version, depends, provides, extra_desc, extra_dep) in sorted(PACKAGES.items()):
        entry = f"{name}-{version}"
        data = f"{name}-{version}".encode()
        desc = (
            f"%FILENAME%\n{entry}-x86_64.pkg.tar.xz\n\n%NAME%\n{name}\n\n%VERSION%\n{version}\n\n"
            f"%DESC%\ntest package {name}\n\n%CSIZE%\n{len(data)}\n\n%ISIZE%\n4096\n\n"
            f"%SHA256SUM%\n{hashlib.sha256(data).hexdigest()}\n\n%ARCH%\nx86_64\n\n"
            f"%BUILDDATE%\n1405000000\n\n%PACKAGER%\nTest <t@example.org>\n\n"
            + ("%GROUPS%\nbase\n\n" if name in ("bash", "coreutils", "glibc") else "")
            + extra_desc
        )
        dep = ""
        if depends:
            dep += "%DEPENDS%\n" + "".join(d + "\n" for d in depends) + "\n"
        if provides:
            dep += "%PROVIDES%\n" + "".join(p + "\n" for p in provides) + "\n"
        dep += extra_dep
        files = [(f"{entry}/desc", desc.encode())]
        if name not in NO_DEPENDS_FILE:
            files.append((f"{entry}/depends", dep.encode()))
        if name in ORDER_DEPENDS_FIRST:
            files.reverse()
        if name == "gconf":
            files.append((f"{entry}/mtree", b"#mtree\n"))
        members.extend(files)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path, data in members:
            head = path.split("/")[0]
            if "/" in path and head not in {m.name for m in tar.getmembers()}:
                d = tarfile.TarInfo(head)
                d.type = tarfile.DIRTYPE
                d.mode = 0o755
                tar.addfile(d)
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0)


REQUESTS = [["vim"], ["gnome-panel"], ["kde-old"], ["base"], ["sh"], ["procps"], ["perl-libs"]]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("old") / "core.db"
    path.write_bytes(_old_layout_db())
    return path


@pytest.fixture(scope="module")
def pacman(db: Path, tmp_path_factory: pytest.TempPathFactory) -> Pacman:
    return Pacman(tmp_path_factory.mktemp("pacman"), [("core", db)])


def test_fields_of_both_files_are_read(db: Path) -> None:
    pkgs = {p.name: p for p in read_sync_db(db.read_bytes())}
    assert set(pkgs) == set(PACKAGES)
    vim = pkgs["vim"]
    assert [str(d) for d in vim.depends] == [f"vim-runtime={V}", "gpm", "perl"]
    panel = pkgs["gnome-panel"]
    gconf = panel.depends[0]
    assert (gconf.name, gconf.op, gconf.version) == ("gconf", ">", "")
    assert panel.depends[1].description == "compression"
    assert [d.name for d in panel.makedepends] == ["kdelibs cmake"]
    assert panel.csize is None  # the last %CSIZE% wins, and it is not a number
    assert [str(p) for p in pkgs["bash"].provides] == ["sh"]
    assert pkgs["tzdata"].depends == ()
    assert sorted(read_sync_db_index(db.read_bytes()).groups["base"]) == [
        "bash",
        "coreutils",
        "glibc",
    ]


@pytest.mark.parametrize("targets", REQUESTS, ids="+".join)
def test_resolves_as_pacman(targets: list[str], db: Path, pacman: Pacman) -> None:
    answer = pacman.print_set(targets)
    assert answer.packages is not None, answer.output
    universe = ArchUniverse([("core", read_sync_db_index(db.read_bytes()))])
    ours = {
        f"{c.package.name} {c.package.version}"
        for c in resolve_arch(universe, ArchRequest(tuple(targets))).packages
    }
    assert ours == answer.packages


def test_lock_of_vim_pins_its_closure(db: Path, tmp_path: Path, pacman: Pacman) -> None:
    """The issue's case: vim on an old database locked 1 package where pacman installs many.
    (Unsigned test packages: locked with --insecure-allow-unsigned.)"""
    day = tmp_path / "mirror" / "repos" / "2014" / "07" / "20" / "core" / "os" / "x86_64"
    day.mkdir(parents=True)
    (day / "core.db").write_bytes(db.read_bytes())
    recipe = tmp_path / "r.repro"
    recipe.write_text(
        'let snap = snapshot { archive = "archlinux"; date = "2014-07-20"; repos = [ "core" ]; };\n'
        'in { t = tarball { root = rootfs { snapshot = snap; variant = "none"; '
        'packages = [ "vim" ]; }; }; }\n'
    )
    sources = Sources.from_env(
        mirrors=[f"archlinux={(tmp_path / 'mirror').as_uri()}/"], insecure=True, environ={}
    )
    lock = api.lock(recipe, sources=sources).lockfile
    expected = pacman.print_set(["vim"]).packages
    assert expected is not None and len(expected) > 20
    assert {f"{p.name} {p.version}" for p in lock.packages} == expected
    other = recipe.with_name("n.repro")
    other.write_text(recipe.read_text().replace('"vim"', '"nvim"'))
    with pytest.raises(ResolveError, match="target not found: nvim"):
        api.lock(other, sources=sources)
