"""recipes/go-hello: a static Go program built in a Debian root with golang-go, twice, same bytes.

golang-go is not among the shared mirror's 101 ``.deb`` files, so a module
fixture makes a temporary signed mirror (tests/support/debmirror.py): the
shared mirror's packages plus golang-go's closure fetched with ``apt-get
download``, a generated index, and an InRelease signed with a throwaway key
that ``reprobuild lock --keyring`` checks for real. Without apt or network
the tests skip, saying why. Slow: ``make test-slow`` runs it.

The recipe is copied to two different places and built into two stores
under a different umask, time zone and locale; the tarballs (and OCI images)
must be byte-identical, the program must run, and the binary must carry no
Go build id and none of the paths it was built under.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from tests.support.debmirror import SHARED_SNAPSHOT, DebMirror, MirrorUnavailable, build_mirror

ROOT = Path(__file__).resolve().parents[2]
RECIPE_DIR = ROOT / "recipes" / "go-hello"
RECIPE = "go-hello.repro"
EXPECTED = "hello from a reproducible Go build (go1.19"

pytestmark = [
    # Two Go toolchain builds (about 2.5 min idle): make test-slow.
    pytest.mark.slow,
    pytest.mark.skipif(
        not SHARED_SNAPSHOT.exists(), reason="the shared Debian mirror is not beside the repository"
    ),
    pytest.mark.skipif(
        shutil.which("bwrap") is None, reason="bwrap is not installed (Debian package bubblewrap)"
    ),
    pytest.mark.skipif(shutil.which("gpgv") is None, reason="gpgv is not installed"),
]


@dataclass
class Built:
    work: Path
    store: Path
    summary: dict  # type: ignore[type-arg]
    seconds: float

    def output(self, name: str) -> Path:
        return self.work / str(self.summary["outputs"][name]["path"])


def reprobuild(
    *args: str, cwd: Path, umask: int, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("REPROBUILD_")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "reprobuild", *args],
        cwd=cwd,
        env=full,
        umask=umask,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> DebMirror:
    try:
        return build_mirror(tmp_path_factory.mktemp("go-mirror"), ["golang-go"])
    except MirrorUnavailable as exc:
        pytest.skip(f"cannot make a Debian mirror with golang-go: {exc}")


def lock_and_build(
    mirror: DebMirror, work: Path, store: Path, *, umask: int, env: dict[str, str]
) -> Built:
    shutil.copytree(RECIPE_DIR, work)
    (work / f"{RECIPE}.lock").unlink(missing_ok=True)
    where = ("--keyring", f"debian={mirror.keyring}", "--mirror", f"debian={mirror.url}")
    r = reprobuild("lock", *where, RECIPE, cwd=work, umask=umask, env=env)
    assert r.returncode == 0, r.stderr
    assert "NOT checked" not in r.stderr
    start = time.monotonic()
    r = reprobuild(
        "build", "--json", "--locked", "--store", str(store), *where, RECIPE,
        cwd=work, umask=umask, env=env,
    )  # fmt: skip
    seconds = time.monotonic() - start
    assert r.returncode == 0, r.stderr
    return Built(work, store, json.loads(r.stdout), seconds)


@pytest.fixture(scope="module")
def builds(mirror: DebMirror, tmp_path_factory: pytest.TempPathFactory) -> tuple[Built, Built]:
    a = tmp_path_factory.mktemp("go-a")
    b = tmp_path_factory.mktemp("go-b")
    first = lock_and_build(
        mirror,
        a / "go-hello",
        a / "store",
        umask=0o022,
        env={"TZ": "UTC", "LC_ALL": "C.UTF-8", "XDG_CACHE_HOME": str(a / "cache")},
    )
    second = lock_and_build(
        mirror,
        b / "somewhere" / "else" / "entirely",
        b / "another-store",
        umask=0o077,
        env={"TZ": "Pacific/Kiritimati", "LC_ALL": "C", "XDG_CACHE_HOME": str(b / "cache")},
    )
    print(f"go-hello builds: {first.seconds:.1f}s and {second.seconds:.1f}s")
    return first, second


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tar_members(tarball: Path) -> dict[str, tarfile.TarInfo | bytes]:
    raw = zstandard.ZstdDecompressor().stream_reader(tarball.open("rb")).read()
    out: dict[str, tarfile.TarInfo | bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        for m in t.getmembers():
            f = t.extractfile(m) if m.isfile() else None
            out[m.name] = f.read() if f is not None else m
    return out


def hello_binary(built: Built) -> bytes:
    data = tar_members(built.output("tarball"))["./out/hello"]
    assert isinstance(data, bytes)
    return data


def elf_sections(data: bytes) -> dict[str, bytes]:
    """Section name -> contents of a little-endian ELF64 file (what the Go linker makes)."""
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, "not an ELF64 LE file"
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names_at = headers[shstrndx][4]
    out = {}
    for name_off, sh_type, _f, _a, offset, size, *_ in headers:
        end = data.index(b"\0", names_at + name_off)
        name = data[names_at + name_off : end].decode()
        out[name] = b"" if sh_type == 8 else data[offset : offset + size]  # 8: SHT_NOBITS
    return out


def note_descs(section: bytes) -> list[tuple[bytes, int, bytes]]:
    """(name, type, desc) of each ELF note in a note section."""
    notes = []
    pos = 0
    while pos + 12 <= len(section):
        namesz, descsz, ntype = struct.unpack_from("<III", section, pos)
        pos += 12
        name = section[pos : pos + namesz].rstrip(b"\0")
        pos += (namesz + 3) & ~3
        notes.append((name, ntype, section[pos : pos + descsz]))
        pos += (descsz + 3) & ~3
    return notes


def test_mirror_is_signed_and_complete(mirror: DebMirror) -> None:
    assert {"golang-go", "golang-1.19-go", "golang-1.19-src"} <= set(mirror.fetched)
    listed = {p.name: p for p in mirror.packages()}
    assert set(listed) == set(mirror.debs)  # one version of each name, exactly the files present
    for name, pkg in listed.items():
        path = mirror.snapshot_dir / pkg.filename
        assert path.is_file(), name
        assert sha256_file(path) == pkg.sha256 and path.stat().st_size == pkg.size
    inrelease = (mirror.snapshot_dir / "dists" / mirror.suite / "InRelease").read_text()
    assert inrelease.startswith("-----BEGIN PGP SIGNED MESSAGE-----")


def test_lockfiles_agree_and_are_signed(mirror: DebMirror, builds: tuple[Built, Built]) -> None:
    a, b = builds
    lock_a = (a.work / f"{RECIPE}.lock").read_bytes()
    assert lock_a == (b.work / f"{RECIPE}.lock").read_bytes()
    lock = json.loads(lock_a)
    (snap,) = lock["snapshots"].values()
    assert snap["signed"] is True
    assert snap["suites"]["bookworm"]["fingerprint"] == mirror.fingerprint
    names = {p["name"] for p in lock["packages"]}
    assert {"golang-go", "golang-1.19-go", "golang-1.19-src", "ca-certificates", "dpkg"} <= names


def test_lock_matches_the_genuine_snapshot(builds: tuple[Built, Built], mirror: DebMirror) -> None:
    """While apt's bookworm still has the snapshot's versions, the fixture resolves as Debian's
    own signed index does: same packages, versions, files and sha256."""
    from reprobuild.archives.debian.index import parse_packages
    from reprobuild.archives.debian.resolve import DebianUniverse, Request, resolve

    index = SHARED_SNAPSHOT / "dists" / "bookworm" / "main" / "binary-amd64" / "Packages.xz"
    genuine_pkgs = parse_packages(lzma.decompress(index.read_bytes()))
    by_name = {p.name: p for p in genuine_pkgs}
    drifted = [
        n
        for n in mirror.fetched
        if n not in by_name or by_name[n].version != mirror.debs[n].version
    ]
    if drifted:
        pytest.skip(f"apt's bookworm has moved past the snapshot for {drifted}")
    universe = DebianUniverse.from_packages(genuine_pkgs, architecture="amd64")
    resolution = resolve(universe, Request(("golang-go", "ca-certificates"), "essential", "amd64"))
    genuine = {(p.name, p.version, p.filename, p.sha256) for p in resolution.packages}
    lock = json.loads((builds[0].work / f"{RECIPE}.lock").read_text())
    ours = {(p["name"], p["version"], p["filename"], p["sha256"]) for p in lock["packages"]}
    assert ours == genuine


def test_byte_identical_twice(builds: tuple[Built, Built]) -> None:
    a, b = builds
    for name in ("tarball", "oci"):
        assert a.summary["outputs"][name]["sha256"] == b.summary["outputs"][name]["sha256"], name
    assert a.summary["steps"]["cached"] == 0 and b.summary["steps"]["cached"] == 0
    ta, tb = a.output("tarball"), b.output("tarball")
    assert sha256_file(ta) == sha256_file(tb) == a.summary["outputs"]["tarball"]["sha256"]


def test_only_the_program_is_output(builds: tuple[Built, Built]) -> None:
    members = tar_members(builds[0].output("tarball"))
    assert sorted(members) == [".", "./out", "./out/hello"]


def test_program_runs(builds: tuple[Built, Built], tmp_path: Path) -> None:
    exe = tmp_path / "hello"
    exe.write_bytes(hello_binary(builds[0]))
    exe.chmod(0o755)
    # Static (CGO_ENABLED=0): runs on the host without the root it was built in.
    r = subprocess.run([str(exe)], capture_output=True, text=True, env={}, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(EXPECTED) and r.stdout.endswith(", linux/amd64)\n"), r.stdout


def test_no_build_id_and_no_paths(builds: tuple[Built, Built], mirror: DebMirror) -> None:
    data = hello_binary(builds[0])
    sections = elf_sections(data)
    assert ".interp" not in sections  # static
    for name in (".note.go.buildid", ".note.gnu.build-id"):
        for owner, _type, desc in note_descs(sections.get(name, b"")):
            assert desc == b"", f"{name} carries a build id from {owner!r}: {desc!r}"
    for name, contents in sections.items():
        if name.startswith(".note"):
            for owner, _type, desc in note_descs(contents):
                assert owner not in (b"Go", b"GNU") or not desc, (name, owner, desc)
    assert b"Go build ID:" not in data
    info = sections[".go.buildinfo"] + data  # the settings are in the binary's data
    assert b"build\t-trimpath=true" in info and b"build\tCGO_ENABLED=0" in info
    for built in builds:
        for where in (built.work, built.store, built.work.parent):
            assert str(where).encode() not in data, where
    assert str(mirror.root).encode() not in data
    for leak in (b"/build/", b"/inputs/", b"/tmp/", b"pytest-of-"):
        assert leak not in data, leak
