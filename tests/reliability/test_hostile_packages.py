"""Hostile packages (issue 8): refused or contained, nothing escapes, no process survives.

The packages are crafted here (tests/support/crafted.py: dpkg-deb where it
can build them, tarfile + ar where it cannot) and served from a signed test
mirror beside the demo snapshot's genuine packages, so every case goes
through what a user runs: ``reprobuild build`` (lock, fetch, verify, the
rootfs step, the sandbox). Cheaper direct unpack tests cover the rest.
tests/steps/test_deb_unpack.py already covers ``..``, absolute names,
symlink chains and hard links at the unpack level.

Policy (as a distribution builder; dpkg/pacman as the reference):

* setuid files: installed, as dpkg does (Debian ships su, passwd, mount).
* character/block devices: refused (Debian Policy 10.6; dpkg would create
  a 0666 node for the host's disk, checked below).
* a path twice in one package: refused (dpkg keeps the last copy and lists
  the path twice, checked below).
* sizes: a member claiming a terabyte or a decompression bomb is refused
  before a byte is written, naming the package and the member.
* maintainer scripts and run steps: no network (not even the host's
  loopback), writes land in the tree, no capability to mount or mknod,
  links they leave are never followed out by reprobuild afterwards, and
  every process they start is gone when the step returns.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from reprobuild.archives.arch.install import unpack_package
from reprobuild.archives.debian.unpack import CONTROL_MAX, read_deb, unpack_data
from reprobuild.errors import ArchiveError
from reprobuild.sandbox import SandboxError, SandboxSpec, run
from tests.support.cli import reprobuild
from tests.support.crafted import (
    alpm_from_members,
    deb_from_members,
    deb_from_tree,
    member,
    raw_members,
    signed_mirror,
    tar_bytes,
    zeros_member,
)
from tests.support.debmirror import DebMirror, MirrorUnavailable

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None or os.geteuid() != 0,
    reason="needs bwrap and root (maintainer scripts chown files)",
)

DIR = tarfile.DIRTYPE
REPO = Path(__file__).resolve().parents[2]  # a host path outside /tmp (a tmpfs in the sandbox)
BOMB = 256 << 20  # 256 MiB of zeros: some 8 KiB of zstd
TERABYTE = 1 << 40
# CAP_DAC_READ_SEARCH, CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_ADMIN, CAP_SYS_TIME, CAP_MKNOD
FORBIDDEN_CAPS = (2, 16, 17, 21, 25, 27)


PARENTS = raw_members(
    [(member(d, DIR, mode=0o755), None) for d in ("./", "./usr/", "./usr/share/")], tarfile.GNU_FORMAT
)


def _disk() -> tuple[int, int]:
    dev = os.stat("/").st_dev
    return os.major(dev), os.minor(dev)


# --------------------------------------------------------------------------
# The mirror: one package per hostile case, and one with hostile scripts
# --------------------------------------------------------------------------


@dataclass
class Hostile:
    mirror: DebMirror
    base: Path
    victim: Path  # a host directory the packages aim at
    marker: str  # in the daemons' command lines
    port: int  # a loopback server on the host
    connections: list[str]

    def build(
        self, work: Path, recipe: str, *, name: str = "r"
    ) -> subprocess.CompletedProcess[str]:
        work.mkdir(parents=True, exist_ok=True)
        (work / f"{name}.repro").write_text(recipe)
        return reprobuild(
            work,
            "build",
            "--store",
            str(self.base / "store"),
            "--mirror",
            f"debian={self.mirror.url}",
            "--keyring",
            f"debian={self.mirror.keyring}",
            f"{name}.repro",
            timeout=600,
        )

    def untouched(self) -> None:
        assert not (REPO / self.marker).exists()
        assert sorted(p.name for p in self.victim.iterdir()) == ["keep", "sentinel"]
        assert (self.victim / "sentinel").read_text() == "original\n"
        assert sorted(p.name for p in (self.victim / "keep").iterdir()) == ["file"]
        assert not Path(f"/tmp/{self.marker}").exists()
        assert not Path(f"/tmp/{self.marker}-dotdot").exists()


POSTINST = """#!/bin/sh
# Everything a hostile maintainer script tries; each outcome is logged in the tree.
log=/var/lib/hostile.log  # not under /var/log: normalisation empties those
bb=/bin/busybox
say() {{ echo "$1" >> $log; }}
if $bb nc -w 2 127.0.0.1 {port} </dev/null >/dev/null 2>>$log; then say "loopback: connected"; else say "loopback: failed"; fi
if $bb nc -w 2 1.1.1.1 80 </dev/null >/dev/null 2>>$log; then say "internet: connected"; else say "internet: failed"; fi
echo pwned > /tmp/{marker} 2>/dev/null
$bb mkdir -p {repo} && echo pwned > {repo}/{marker} && say "absolute: written"
echo pwned > /../../../../..{victim}/dotdot 2>/dev/null
cd /var/lib/dpkg && echo pwned > ../../../../../../../../tmp/{marker}-dotdot 2>/dev/null; cd /
if $bb mknod /root/disk b {major} {minor} 2>/dev/null; then say "mknod: allowed"; else say "mknod: refused"; fi
if $bb mount -t tmpfs none /mnt 2>/dev/null; then say "mount: allowed"; else say "mount: refused"; fi
$bb grep CapEff /proc/self/status >> $log
# a link for reprobuild's own work after the scripts: /etc/hostname -> the host
$bb rm -f /etc/hostname && $bb ln -s {victim}/hostname /etc/hostname
# daemons of every kind
$bb setsid /usr/local/bin/{marker} &
( /usr/local/bin/{marker} & )
$bb nohup /usr/local/bin/{marker} >/dev/null 2>&1 &
$bb sh -c '/usr/local/bin/{marker} </dev/null >/dev/null 2>&1 &'
/usr/local/bin/{marker} &
say "daemons: started"
exit 0
"""

DAEMON = "#!/bin/sh\n# a daemon that would run forever\nwhile :; do /bin/busybox sleep 1; done\n"


def _serve(port_holder: socket.socket, seen: list[str]) -> None:
    while True:
        try:
            conn, addr = port_holder.accept()
        except OSError:
            return
        seen.append(str(addr))
        conn.close()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    if shutil.which("dpkg-deb") is None or shutil.which("ar") is None:
        pytest.skip("dpkg-deb and ar are needed to craft packages")
    base = tmp_path_factory.mktemp("hostile")
    victim = base / "victim"
    (victim / "keep").mkdir(parents=True)
    (victim / "sentinel").write_text("original\n")
    (victim / "keep" / "file").write_text("keep me\n")
    marker = f"hostile-daemon-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    connections: list[str] = []
    threading.Thread(target=_serve, args=(server, connections), daemon=True).start()
    port = server.getsockname()[1]
    major, minor = _disk()
    debs = base / "debs"
    debs.mkdir()
    made = [
        deb_from_tree(
            debs,
            "hostile-scripts",
            files={f"/usr/local/bin/{marker}": (DAEMON.encode(), 0o755)},
            scripts={
                "postinst": POSTINST.format(
                    port=port, marker=marker, victim=victim, major=major, minor=minor, repo=REPO
                )
            },
            control_extra="Depends: busybox-static, dash\n",
        ),
        deb_from_tree(debs, "hostile-setuid", files={"/usr/bin/evil-su": (b"#!/bin/sh\n", 0o4755)}),
        deb_from_members(
            debs,
            "hostile-dotdot",
            [
                (member("./", DIR, mode=0o755), None),
                (member(f"./../../../../..{victim}/dotdot"), b"x"),
            ],
        ),
        deb_from_members(
            debs,
            "hostile-terabyte",
            control_extra="Installed-Size: 4\n",
            data=(".zst", zeros_member("./usr/share/huge", TERABYTE, truncate=True, prefix=PARENTS)),
        ),
        deb_from_members(
            debs,
            "hostile-bomb",
            control_extra="Installed-Size: 4\n",
            data=(".zst", zeros_member("./usr/share/bomb", BOMB, prefix=PARENTS)),
        ),
        deb_from_members(
            debs,
            "hostile-duplicate",
            [
                (member("./", DIR, mode=0o755), None),
                (member("./etc/", DIR, mode=0o755), None),
                (member("./etc/motd"), b"what a reviewer reads\n"),
                (member("./etc/motd"), b"what gets installed\n"),
            ],
        ),
        deb_from_members(
            debs,
            "hostile-link-escape",
            [
                (member("./", DIR, mode=0o755), None),
                (member("./lib-escape", tarfile.SYMTYPE, linkname=f"../../../../../..{victim}"), None),
                (member("./lib-escape/sentinel"), b"pwned\n"),
            ],
        ),
        deb_from_members(
            debs,
            "hostile-hardlink",
            [
                (member("./", DIR, mode=0o755), None),
                (member("./sentinel", tarfile.LNKTYPE, linkname=f"{victim}/sentinel"), None),
            ],
        ),
        deb_from_members(
            debs,
            "hostile-fifo",
            [(member("./", DIR, mode=0o755), None), (member("./fifo", tarfile.FIFOTYPE), None)],
        ),
        deb_from_members(
            debs,
            "hostile-device",
            [
                (member("./", DIR, mode=0o755), None),
                (member("./disk", tarfile.BLKTYPE, mode=0o666, device=(major, minor)), None),
            ],
        ),
    ]
    try:
        mirror = signed_mirror(base / "mirror", made)
    except MirrorUnavailable as exc:
        pytest.skip(str(exc))
    yield Hostile(mirror, base, victim, marker, port, connections)
    server.close()


def _recipe(packages: list[str], *, extra: str = "", outputs: str = "") -> str:
    names = " ".join(f'"{p}"' for p in packages)
    return (
        'let snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; '
        'suites = [ "bookworm" ]; };\n'
        f'  root = rootfs {{ snapshot = snap; variant = "none"; packages = [ {names} ]; {extra} }};\n'
        f"in {{ t = tarball {{ inherit root; }}; {outputs} }}\n"
    )


def _members(tar_path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tar_path) as t:
        return {m.name: m for m in t.getmembers()}


def _survivors(marker: str, grace: float = 3.0) -> list[str]:
    """Processes whose command line holds *marker*, after the kernel had
    *grace* seconds to finish killing a namespace (SIGKILL is asynchronous)."""
    deadline = time.monotonic() + grace
    while True:
        found = _processes(marker)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _processes(marker: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


# --------------------------------------------------------------------------
# Packages refused on unpack, as the user sees it
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("package", "expected"),
    [
        ("hostile-dotdot", ["contains '..'"]),
        ("hostile-terabyte", ["'./usr/share/huge' claims 1.0 TiB", "Installed-Size of 4 KiB"]),
        ("hostile-bomb", ["'./usr/share/bomb' claims 256.0 MiB", "Installed-Size of 4 KiB"]),
        ("hostile-duplicate", ["'./etc/motd' appears twice"]),
        ("hostile-device", ["'./disk' is a block device", "Policy 10.6"]),
        # covered at the unpack level in tests/steps/test_deb_unpack.py; here as a user sees them
        pytest.param("hostile-link-escape", ["outside the tree"], marks=pytest.mark.slow),
        pytest.param("hostile-hardlink", ["absolute path"], marks=pytest.mark.slow),
        pytest.param("hostile-fifo", ["'./fifo' is a named pipe"], marks=pytest.mark.slow),
    ],
)
def test_hostile_data_is_refused_by_the_build(
    hostile: Hostile, tmp_path: Path, package: str, expected: list[str]
) -> None:
    r = hostile.build(tmp_path / "w", _recipe([package]))
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert f"package {package} 1.0 (" in r.stderr
    for text in expected:
        assert text in r.stderr, r.stderr
    hostile.untouched()
    # nothing of the refused member was written: the build left no big file
    big = [p for p in hostile.base.rglob("*") if p.is_file() and p.stat().st_size > 16 << 20]
    assert big == []


def test_setuid_files_are_installed_as_dpkg_does(hostile: Hostile, tmp_path: Path) -> None:
    r = hostile.build(tmp_path / "w", _recipe(["hostile-setuid"]))
    assert r.returncode == 0, r.stderr
    su = _members(tmp_path / "w" / "out" / "r" / "t.tar")["./usr/bin/evil-su"]
    assert su.mode == 0o4755 and su.uid == 0


# --------------------------------------------------------------------------
# Maintainer scripts and run steps, contained
# --------------------------------------------------------------------------

# What dpkg --configure -a needs (the demo's set without its data packages).
CONFIGURABLE = [
    "base-files",
    "base-passwd",
    "busybox-static",
    "coreutils",
    "dash",
    "diffutils",
    "dpkg",
    "findutils",
    "grep",
    "libc-bin",
    "sed",
]

RUN_STEP = """
  made = run {{
    inherit root;
    inputs = {{ keep = ./keep; }};
    script = ''
      /usr/local/bin/{marker} &
      busybox setsid /usr/local/bin/{marker} &
      busybox nohup /usr/local/bin/{marker} >/dev/null 2>&1 &
      busybox mkdir -p /out && echo made > /out/result
      # links to the host where reprobuild cleans up after the script
      busybox mv /inputs /inputs.moved && busybox ln -s {victim} /inputs
      cd / && busybox rm -rf /build && busybox ln -s {victim}/keep /build
    '';
    outputs = [ "/out" ];
  }};
"""


def test_maintainer_scripts_and_run_steps_are_contained(hostile: Hostile, tmp_path: Path) -> None:
    """One configured build: network, writes, privileges, links, daemons."""
    extra = 'hostname = "contained";'
    outputs = "made = tarball { root = made; };"
    recipe = _recipe([*CONFIGURABLE, "hostile-scripts"], extra=extra, outputs=outputs)
    recipe = recipe.replace(
        "in {", RUN_STEP.format(marker=hostile.marker, victim=hostile.victim) + "in {"
    )
    work = tmp_path / "w"
    (work / "keep").mkdir(parents=True)
    (work / "keep" / "file").write_text("an input\n")
    start = time.monotonic()
    r = hostile.build(work, recipe)
    elapsed = time.monotonic() - start
    assert r.returncode == 0, r.stderr
    assert elapsed < 120  # nothing waited for the daemons
    assert _survivors(hostile.marker) == []
    assert hostile.connections == []
    hostile.untouched()
    members = _members(work / "out" / "r" / "t.tar")
    with tarfile.open(work / "out" / "r" / "t.tar") as t:
        log = t.extractfile("./var/lib/hostile.log").read().decode()  # type: ignore[union-attr]
        hostname = t.extractfile("./etc/hostname").read()  # type: ignore[union-attr]
    lines = log.splitlines()
    assert "loopback: failed" in lines and "internet: failed" in lines
    # the tools ran and the kernel said no (not a missing applet)
    assert "Connection refused" in log and "Network is unreachable" in log, log
    assert "mknod: refused" in lines and "mount: refused" in lines
    assert "daemons: started" in lines and "absolute: written" in lines
    caps = int(next(ln for ln in lines if ln.startswith("CapEff:")).split()[1], 16)
    assert not [c for c in FORBIDDEN_CAPS if caps >> c & 1], hex(caps)
    # the write to the host's path landed in the tree; the link was replaced, not followed
    assert f".{REPO}/{hostile.marker}" in members
    assert members["./etc/hostname"].isfile() and hostname == b"contained\n"
    assert "./usr/sbin/policy-rc.d" not in members
    made = _members(work / "out" / "r" / "made.tar")
    assert "./out/result" in made


def test_run_step_outputs_are_read_inside_the_tree(hostile: Hostile, tmp_path: Path) -> None:
    """An output path through a link the script made to the host is not the host's file."""
    run = f"""
  leak = run {{
    inherit root;
    script = "busybox mkdir -p /out && busybox ln -s {hostile.victim} /out/host";
    outputs = [ "/out/host/sentinel" ];
  }};
"""
    # the root of the test above: cached in the module's store
    recipe = _recipe(
        [*CONFIGURABLE, "hostile-scripts"],
        extra='hostname = "contained";',
        outputs="leak = tarball { root = leak; };",
    )
    recipe = recipe.replace("in {", run + "in {")
    r = hostile.build(tmp_path / "w", recipe)
    assert r.returncode == 2, r.stderr
    assert "did not create /out/host/sentinel" in r.stderr and "Traceback" not in r.stderr
    hostile.untouched()


# --------------------------------------------------------------------------
# Direct unpack: the cases cheaper without a build
# --------------------------------------------------------------------------


def test_dpkg_itself_installs_what_we_refuse(tmp_path: Path) -> None:
    """The reference: real dpkg keeps the last duplicate and lists it twice,
    and creates device nodes; reprobuild refuses both (see the module docstring)."""
    if shutil.which("dpkg") is None:
        pytest.skip("dpkg is not installed")
    deb = deb_from_members(
        tmp_path,
        "dup",
        [
            (member("./", DIR, mode=0o755), None),
            (member("./f"), b"first"),
            (member("./f"), b"second"),
        ],
    )
    root = tmp_path / "root"
    for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates"):
        (root / d).mkdir(parents=True)
    (root / "var/lib/dpkg/status").touch()
    subprocess.run(
        [
            "dpkg",
            f"--root={root}",
            "--force-script-chrootless",
            "--force-not-root",
            "--unpack",
            str(deb),
        ],
        check=True,
        capture_output=True,
    )
    assert (root / "f").read_bytes() == b"second"
    assert (root / "var/lib/dpkg/info/dup.list").read_text().splitlines().count("/f") == 2
    ours = tmp_path / "ours"
    ours.mkdir()
    with pytest.raises(ArchiveError, match="appears twice"):
        unpack_data(deb, ours)


def test_extended_attributes_and_long_names_are_refused_cleanly(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    xattr = member("./cap", mode=0o755)
    xattr.pax_headers = {"SCHILY.xattr.trusted.evil": "1"}
    raw = tar_bytes([(member("./", DIR, mode=0o755), None), (xattr, b"x")], tarfile.PAX_FORMAT)
    deb = deb_from_members(
        tmp_path, "xattr", data=(".zst", zstandard.ZstdCompressor().compress(raw))
    )
    with pytest.raises(ArchiveError, match=r"extended attributes .*trusted\.evil"):
        unpack_data(deb, root)
    long = deb_from_members(tmp_path, "long", [(member("./" + "x" * 300), b"x")])
    with pytest.raises(
        ArchiveError, match=r"package long .*cannot unpack member .*File name too long"
    ):
        unpack_data(long, root)
    # nothing unpacked (tree.py leaves its temporary name behind when a rename fails)
    assert [n for n in os.listdir(root) if n != ".reprobuild-tmp~"] == []


def test_control_tar_bomb_is_refused(tmp_path: Path) -> None:
    control = io.BytesIO()
    with zstandard.ZstdCompressor().stream_writer(control, closefd=False) as z:
        z.write(
            tar_bytes([(member("./control"), b"Package: x\nVersion: 1\nArchitecture: all\n")])[
                :-1024
            ]
        )
        z.write(member("./md5sums", size=CONTROL_MAX + 1).tobuf(format=tarfile.GNU_FORMAT))
        z.write(bytes(CONTROL_MAX + 1 + 1024))
    path = tmp_path / "bomb.deb"
    ar = b"!<arch>\n"
    for name, data in (
        ("debian-binary", b"2.0\n"),
        ("control.tar.zst", control.getvalue()),
        ("data.tar.xz", b""),
    ):
        ar += f"{name:<16}{0:<12}{0:<6}{0:<6}{0o100644:<8o}{len(data):<10}`\n".encode() + data
        ar += b"\n" if len(data) % 2 else b""
    path.write_bytes(ar)
    with pytest.raises(ArchiveError, match=r"control\.tar expands to more than 64\.0 MiB"):
        read_deb(path)


def test_alpm_packages_meet_the_same_rules(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    major, minor = _disk()
    cases = {
        "terabyte": (
            alpm_from_members(tmp_path, "terabyte", size=4096, bomb=("usr/huge", TERABYTE, True)),
            "claims 1.0 TiB",
        ),
        "bomb": (
            alpm_from_members(tmp_path, "bomb", size=4096, bomb=("usr/bomb", BOMB, False)),
            "claims 256.0 MiB",
        ),
        "dup": (
            alpm_from_members(
                tmp_path,
                "dup",
                [
                    (member("usr/", DIR, mode=0o755), None),
                    (member("usr/f"), b"1"),
                    (member("usr/f"), b"2"),
                ],
            ),
            "appears twice",
        ),
        "device": (
            alpm_from_members(
                tmp_path,
                "device",
                [(member("disk", tarfile.BLKTYPE, mode=0o666, device=(major, minor)), None)],
            ),
            "is a block device",
        ),
    }
    for name, (pkg, message) in cases.items():
        target = tmp_path / f"root-{name}"
        target.mkdir()
        with pytest.raises(ArchiveError, match=message) as caught:
            unpack_package(pkg, target)
        assert name in str(caught.value)
        assert not (target / "disk").exists() and not (target / "usr/huge").exists()
    setuid = alpm_from_members(tmp_path, "setuid", [(member("su", mode=0o4755), b"#!/bin/sh\n")])
    unpack_package(setuid, root)
    assert os.stat(root / "su").st_mode & 0o7777 == 0o4755


def test_a_command_past_its_timeout_leaves_no_process(tmp_path: Path) -> None:
    """The other way a step ends: killed at its timeout, with daemons of its own."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    busybox = next((REPO / "snapshots" / "demo").rglob("busybox-static_*.deb"))
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(busybox), str(root)], check=True)
    (root / "bin" / "sh").symlink_to("busybox")
    marker = f"hostile-timeout-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    daemon = root / "usr" / "local" / "bin" / marker
    daemon.parent.mkdir(parents=True)
    daemon.write_text(DAEMON)
    daemon.chmod(0o755)
    script = (
        f"busybox setsid /usr/local/bin/{marker} & "
        f"busybox nohup /usr/local/bin/{marker} >/dev/null 2>&1 & "
        "exec busybox sleep 1000"
    )
    start = time.monotonic()
    with pytest.raises(SandboxError, match="timed out after 2 s"):
        run(SandboxSpec(root=root, command=("/bin/sh", "-c", script), epoch=0), timeout=2)
    assert time.monotonic() - start < 30
    assert _survivors(marker) == []


def test_files_in_dpkg_database_and_named_pipes_are_refused(tmp_path: Path) -> None:
    """A FIFO where reprobuild reads (dpkg's status, a conffile) would hang the build;
    a file in dpkg's database would replace what reprobuild writes there."""
    root = tmp_path / "root"
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("")
    parents = [(member(d, DIR, mode=0o755), None) for d in ("./", "./var/", "./var/lib/", "./var/lib/dpkg/")]
    cases = {
        "fifo": ([*parents, (member("./var/lib/dpkg/status", tarfile.FIFOTYPE), None)], "named pipe"),
        "status": ([*parents, (member("./var/lib/dpkg/status"), b"Package: forged\n")], "dpkg's database"),
        "via-link": (
            [(member("./db", tarfile.SYMTYPE, linkname="var/lib/dpkg"), None), (member("./db/status"), b"x")],
            r"would land in dpkg's database \(/var/lib/dpkg\)",
        ),
    }
    for name, (members, message) in cases.items():
        with pytest.raises(ArchiveError, match=message):
            unpack_data(deb_from_members(tmp_path, f"db-{name}", members), root)
        assert (root / "var/lib/dpkg/status").read_text() == ""
