"""Another shape of data through every exporter and through ``diff``.

The other exporter tests use trees whose root is 0:0 mode 0755 and that
carry no extended attribute, so an exporter that takes the root's owner from
the disk, ignores its mode, or drops ``security.capability`` passes them.
This tree has a root owned 4242:4343 with mode 0750, a file with a file
capability, one with a POSIX ACL, setuid and all-twelve-bits files, a sticky
directory, a mode-0000 file, owners above the ustar limit and a symlink
owned 7:8. Each exporter's output is read back with the tool that consumes
it (python's tarfile, a newc parser, unsquashfs, debugfs, fsck.erofs,
xorriso) and must say what the tree says, for everything its format can
hold; what it cannot hold (xattrs in cpio and ISO, ACLs in squashfs) is
listed in LOST and must then be absent, not half there.

``diff`` then meets pairs of trees that differ in one attribute only, in
every format, and must name the path and the attribute (exit 1), or, where
the format cannot hold the attribute, find the artifacts identical (exit 0).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from reprobuild.export.cpio import export_cpio
from reprobuild.export.disk import export_disk
from reprobuild.export.iso import export_iso
from reprobuild.export.oci import ImageConfig, write_oci_archive, write_oci_layout
from reprobuild.export.squashfs import export_squashfs
from reprobuild.export.tar import export_tarball
from reprobuild.tree import write_canonical_tar
from tests.support.cli import reprobuild

EPOCH = 1_700_000_000
CAP = bytes.fromhex("0100000200200000000000000000000000000000")  # cap_net_raw+ep
ACL = struct.pack("<I", 2) + b"".join(
    struct.pack("<HHI", tag, perm, ident)
    for tag, perm, ident in [
        (0x01, 6, 0xFFFFFFFF),  # user::rw-
        (0x02, 4, 1000),  # user:1000:r--
        (0x04, 4, 0xFFFFFFFF),  # group::r--
        (0x10, 4, 0xFFFFFFFF),  # mask::r--
        (0x20, 0, 0xFFFFFFFF),  # other::---
    ]
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="the shaped tree needs root (chown, security.capability)"
)

# Meta: path ("" is the root) -> (type letter, 12 mode bits, uid, gid, xattr names)
Meta = dict[str, tuple[str, int, int, int, frozenset[str]]]


def make_shaped_tree(root: Path) -> None:
    root.mkdir()
    os.chown(root, 4242, 4343)
    os.chmod(root, 0o750)
    (root / "bin").mkdir()
    os.chmod(root / "bin", 0o711)
    files = {
        "bin/ping": (0o755, 0, 0),
        "bin/su": (0o4755, 0, 0),
        "bin/all-bits": (0o7777, 0, 0),
        "secret": (0o000, 0, 0),
        "nobody": (0o600, 65534, 65534),
        "big-id": (0o640, 3_000_000, 3_000_001),  # beyond ustar's 2,097,151: pax only
        "acl-file": (0o640, 0, 42),
    }
    for rel, (mode, uid, gid) in files.items():
        path = root / rel
        path.write_bytes(rel.encode() + b"\n")
        os.chown(path, uid, gid)
        os.chmod(path, mode)  # after chown, which clears setuid bits
    os.setxattr(root / "bin" / "ping", "security.capability", CAP)
    os.setxattr(root / "acl-file", "system.posix_acl_access", ACL)
    (root / "tmp").mkdir()
    os.chmod(root / "tmp", 0o1777)
    os.symlink("bin/su", root / "link")
    os.lchown(root / "link", 7, 8)


def canonical(root: Path, out: Path) -> Path:
    with open(out, "wb") as f:
        write_canonical_tar(root, f, epoch=EPOCH)
    return out


def _type(mode: int) -> str:
    return "d" if stat.S_ISDIR(mode) else "l" if stat.S_ISLNK(mode) else "-"


def meta_of_tar(fileobj: object) -> Meta:
    """What a tar says, read by python's tarfile (not reprobuild's reader)."""
    out: Meta = {}
    with tarfile.open(fileobj=fileobj, mode="r:*") as t:  # type: ignore[call-overload]
        for m in t:
            kind = "d" if m.isdir() else "l" if m.issym() else "-"
            names = frozenset(
                k.removeprefix("SCHILY.xattr.")
                for k in m.pax_headers
                if k.startswith("SCHILY.xattr.")
            )
            out[m.name.removeprefix("./").rstrip("/").removeprefix(".")] = (
                kind, m.mode & 0o7777, m.uid, m.gid, names,
            )  # fmt: skip
    return out


def meta_of_dir(root: Path, *, xattrs: bool = True) -> Meta:
    out: Meta = {}
    for path in [root, *sorted(root.rglob("*"))]:
        rel = str(path.relative_to(root)) if path != root else ""
        if rel == "lost+found":
            continue
        st = os.lstat(path)
        names = frozenset(os.listxattr(path, follow_symlinks=False)) if xattrs else frozenset()
        out[rel] = (_type(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, names)
    return out


def meta_of_newc(data: bytes) -> Meta:
    """A newc (070701) parser written here from the format, not reprobuild's."""
    out: Meta = {}
    pos = 0
    while True:
        assert data[pos : pos + 6] == b"070701", pos
        f = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, uid, gid, size, namesize = f[1], f[2], f[3], f[6], f[11]
        name = data[pos + 110 : pos + 110 + namesize - 1].decode()
        pos = (pos + 110 + namesize + 3) & ~3
        if name == "TRAILER!!!":
            return out
        pos = (pos + size + 3) & ~3
        out["" if name == "." else name] = (_type(mode), stat.S_IMODE(mode), uid, gid, frozenset())


_LSDL = re.compile(r"^(\S{10})\s+\d+\s+(\d+)\s+(\d+)\s+.*? '(.*?)'(?: -> '.*')?$")


def _mode_of(text: str) -> int:
    mode = 0
    for i, (char, bit) in enumerate(zip("rwxrwxrwx", range(8, -1, -1), strict=True)):
        c = text[1 + i]
        if c == char or (char == "x" and c in "st"):
            mode |= 1 << bit
    mode |= stat.S_ISUID if text[3] in "sS" else 0
    mode |= stat.S_ISGID if text[6] in "sS" else 0
    mode |= stat.S_ISVTX if text[9] in "tT" else 0
    return mode


def meta_of_iso(image: Path) -> Meta:
    listing = subprocess.run(
        ["xorriso", "-no_rc", "-indev", str(image), "-find", "/", "-exec", "lsdl"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    out: Meta = {}
    for line in listing.splitlines():
        m = _LSDL.match(line)
        if m:
            kind = {"d": "d", "l": "l"}.get(m.group(1)[0], "-")
            rel = m.group(4).strip("/")
            out[rel] = (kind, _mode_of(m.group(1)), int(m.group(2)), int(m.group(3)), frozenset())
    return out


def meta_of_ext4(partition: Path, paths: list[str]) -> Meta:
    """debugfs ``stat`` of each path: mode, owner and the extended attributes' names."""
    script = "".join(f'stat "/{p}"\n' for p in paths)
    text = subprocess.run(
        ["debugfs", "-f", "-", str(partition)], input=script, capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip
    out: Meta = {}
    for p, block in zip(paths, text.split("debugfs: stat ")[1:], strict=True):
        kind = {"directory": "d", "symlink": "l"}.get(re.search(r"Type: (\w+)", block)[1], "-")  # type: ignore[index]
        mode = int(re.search(r"Mode:\s+(\d+)", block)[1], 8)  # type: ignore[index]
        uid, gid = re.search(r"User:\s+(\d+)\s+Group:\s+(\d+)", block).groups()  # type: ignore[union-attr]
        names = frozenset(re.findall(r"^\s+([a-z]+\.[\w.]+) \(\d+\)", block, re.M))
        out[p] = (kind, mode, int(uid), int(gid), names)
    return out


def partition_of(disk: Path, dest: Path) -> Path:
    """The root file system of a GPT disk made by export_disk (it starts at 1 MiB)."""
    with open(disk, "rb") as src, open(dest, "wb") as out:
        src.seek(1 << 20)
        shutil.copyfileobj(src, out)
    return dest


# What each format cannot hold (documented in its exporter), by xattr name.
LOST: dict[str, frozenset[str]] = {
    "tar": frozenset(),
    "oci": frozenset(),
    "ext4": frozenset(),
    "erofs": frozenset(),
    "squashfs": frozenset({"system.posix_acl_access"}),  # squashfs stores no system.* names
    "cpio": frozenset({"security.capability", "system.posix_acl_access"}),  # newc has no xattrs
    "iso": frozenset({"security.capability", "system.posix_acl_access"}),  # -xattr off -acl off
}


@pytest.fixture(scope="module")
def shaped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Meta]:
    base = tmp_path_factory.mktemp("shaped")
    make_shaped_tree(base / "root")
    tar = canonical(base / "root", base / "tree.tar")
    expected = meta_of_dir(base / "root")
    assert expected[""][1:4] == (0o750, 4242, 4343)
    assert expected["bin/ping"][4] == {"security.capability"}
    with open(tar, "rb") as f:
        assert meta_of_tar(f) == expected  # the canonical tar holds all of it
    return tar, expected


def _expect(expected: Meta, fmt: str) -> Meta:
    return {p: (*m[:4], m[4] - LOST[fmt]) for p, m in expected.items()}


def _compare(got: Meta, want: Meta, fmt: str) -> None:
    wrong = {p: (got.get(p), w) for p, w in want.items() if got.get(p) != w}
    assert not wrong, f"{fmt}: path -> (read back, expected):\n" + "\n".join(
        f"  /{p}: {g} != {w}" for p, (g, w) in sorted(wrong.items())
    )


def test_tarballs(shaped: tuple[Path, Meta], tmp_path: Path) -> None:
    tar, expected = shaped
    for compression in ("gzip", "zstd", "xz", "none"):
        out = tmp_path / f"t.{compression}"
        export_tarball(tar, out, compression)
        data = out.read_bytes()
        if compression == "zstd":
            import zstandard

            data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
        import io

        _compare(meta_of_tar(io.BytesIO(data)), _expect(expected, "tar"), f"tarball {compression}")


def test_oci_layer_and_archive(shaped: tuple[Path, Meta], tmp_path: Path) -> None:
    tar, expected = shaped
    layout = tmp_path / "layout"
    write_oci_layout([tar], ImageConfig(), layout, compression="gzip", epoch=EPOCH)
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((layout / "blobs/sha256" / manifest_digest).read_bytes())
    (layer,) = manifest["layers"]
    blob = layout / "blobs/sha256" / layer["digest"].split(":")[1]
    with gzip.open(blob) as f:
        _compare(meta_of_tar(f), _expect(expected, "oci"), "OCI layer")
    # The archive of the layout takes owners and modes from nowhere but itself:
    # files on disk owned by a build user and with a stray umask change nothing.
    for path in [layout, *layout.rglob("*")]:
        os.chown(path, 1234, 5678)
        os.chmod(path, 0o700 if path.is_dir() else 0o600)
    archive = tmp_path / "oci.tar"
    write_oci_archive(layout, archive, epoch=EPOCH)
    with tarfile.open(archive) as t:
        for m in t:
            assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", ""), m.name
            assert m.mode == (0o755 if m.isdir() else 0o644), (m.name, oct(m.mode))
            assert m.mtime == EPOCH, m.name


def test_cpio(shaped: tuple[Path, Meta], tmp_path: Path) -> None:
    tar, expected = shaped
    export_cpio(tar, tmp_path / "a.cpio", epoch=EPOCH)
    _compare(meta_of_newc((tmp_path / "a.cpio").read_bytes()), _expect(expected, "cpio"), "cpio")


def test_squashfs(shaped: tuple[Path, Meta], tmp_path: Path) -> None:
    tar, expected = shaped
    export_squashfs(tar, tmp_path / "a.sqfs", epoch=EPOCH)
    subprocess.run(
        ["unsquashfs", "-q", "-no-progress", "-d", str(tmp_path / "x"), str(tmp_path / "a.sqfs")],
        check=True, capture_output=True,
    )  # fmt: skip
    got = meta_of_dir(tmp_path / "x")
    _compare(got, _expect(expected, "squashfs"), "squashfs")
    assert os.getxattr(tmp_path / "x/bin/ping", "security.capability") == CAP


def test_iso(shaped: tuple[Path, Meta], tmp_path: Path) -> None:
    tar, expected = shaped
    export_iso(tar, tmp_path / "a.iso", epoch=EPOCH, seed="shapes", volume_id="SHAPES")
    _compare(meta_of_iso(tmp_path / "a.iso"), _expect(expected, "iso"), "ISO (Rock Ridge)")


def test_ext4_disk(shaped: tuple[Path, Meta], tmp_path: Path) -> None:
    tar, expected = shaped
    export_disk(tar, tmp_path / "d.raw", epoch=EPOCH, seed="shapes", size="64M", filesystem="ext4")
    part = partition_of(tmp_path / "d.raw", tmp_path / "p.img")
    _compare(meta_of_ext4(part, sorted(expected)), _expect(expected, "ext4"), "ext4")
    raw = subprocess.run(
        ["debugfs", "-R", "ea_get -x /bin/ping security.capability", str(part)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert bytes.fromhex(raw.split(" = ", 1)[1]) == CAP, raw


def test_erofs_disk(shaped: tuple[Path, Meta], tmp_path: Path) -> None:
    """Read by the kernel itself (fsck.erofs and dump.erofs 1.5 drop setuid bits on the way)."""
    tar, expected = shaped
    export_disk(tar, tmp_path / "d.raw", epoch=EPOCH, seed="shapes", size="64M", filesystem="erofs")
    part = partition_of(tmp_path / "d.raw", tmp_path / "p.img")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "erofs", "-o", "loop,ro", str(part), str(mnt)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot loop-mount an EROFS image here: {r.stderr.strip()}")
    try:
        _compare(meta_of_dir(mnt), _expect(expected, "erofs"), "EROFS")
        assert os.getxattr(mnt / "bin/ping", "security.capability") == CAP
        assert os.getxattr(mnt / "acl-file", "system.posix_acl_access") == ACL
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


# ------------------------------------------------------------------------- diff

Tweak = Callable[[Path], None]
VARIANTS: dict[str, tuple[Tweak, str, str]] = {
    # name: (change to the tree, path as diff prints it, what diff must say)
    "root owner": (lambda r: os.chown(r, 4242, 4344), ".", "owner 4242:4343 vs 4242:4344"),
    "root mode": (lambda r: os.chmod(r, 0o755), ".", "mode 0750 vs 0755"),
    "setuid bit": (lambda r: os.chmod(r / "bin/su", 0o755), "bin/su", "mode 4755 vs 0755"),
    "sticky bit": (lambda r: os.chmod(r / "tmp", 0o777), "tmp", "mode 1777 vs 0777"),
    "link owner": (lambda r: os.lchown(r / "link", 9, 10), "link", "owner 7:8 vs 9:10"),
    "file capability": (
        lambda r: os.setxattr(r / "bin/ping", "security.capability", CAP.replace(b"\x20", b"\x10")),
        "bin/ping",
        "xattrs differ (security.capability)",
    ),
}
FORMATS = ("tar", "cpio", "squashfs", "iso", "ext4")
# (variant, format) pairs where the format cannot hold what differs: identical artifacts.
SAME = {("file capability", "cpio"), ("file capability", "iso")}


def _export(tar: Path, fmt: str, out: Path) -> Path:
    if fmt == "tar":
        export_tarball(tar, out, "zstd")
    elif fmt == "cpio":
        export_cpio(tar, out, epoch=EPOCH)
    elif fmt == "squashfs":
        export_squashfs(tar, out, epoch=EPOCH)
    elif fmt == "iso":
        export_iso(tar, out, epoch=EPOCH, seed="shapes", volume_id="SHAPES")
    else:
        export_disk(tar, out, epoch=EPOCH, seed="shapes", size="64M", filesystem=fmt)  # type: ignore[arg-type]
    return out


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    base = tmp_path_factory.mktemp("variants")
    out = {}
    for variant, (tweak, _, _) in {"original": (lambda r: None, "", ""), **VARIANTS}.items():
        d = base / variant.replace(" ", "-")
        d.mkdir()
        make_shaped_tree(d / "root")
        tweak(d / "root")
        tar = canonical(d / "root", d / "tree.tar")
        for fmt in FORMATS:
            out[variant, fmt] = _export(tar, fmt, d / f"a.{fmt}")
    return out


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_diff_names_the_one_attribute_that_differs(
    artifacts: dict[tuple[str, str], Path], tmp_path: Path, variant: str, fmt: str
) -> None:
    a, b = artifacts["original", fmt], artifacts[variant, fmt]
    r = reprobuild(tmp_path, "diff", str(a), str(b), timeout=300)
    if (variant, fmt) in SAME:
        assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
        assert r.returncode == 0, r.stdout + r.stderr
        return
    _, path, says = VARIANTS[variant]
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"{path}: {says}" in r.stdout, r.stdout
    assert "same files, other bytes" not in r.stdout
