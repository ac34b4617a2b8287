"""OCI layouts checked by the real tools that consume them (skopeo, umoci, bwrap)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from reprobuild.archives.formats import package_format
from reprobuild.canonical import canonical_bytes
from reprobuild.errors import ArchiveError
from reprobuild.export.oci import (
    ImageConfig,
    OciError,
    OciImage,
    diff_layer,
    write_image_index,
    write_oci_archive,
    write_oci_layout,
)
from reprobuild.tree import tree_digest

from .conftest import EPOCH, ROOT, Spec, need, need_root, run

TreeTar = Callable[[str, Spec], Path]

CONFIG = ImageConfig(
    entrypoint=["/bin/sh", "-c"],
    cmd=["echo hello"],
    env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "A": "1"},
    workdir="/",
    user="0:0",
    labels={"org.opencontainers.image.title": "demo"},
    exposed_ports=["8080", "53/udp"],
    tag="demo:1.0",
)

LOWER: Spec = {
    "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n",
    "etc/obsolete.conf": b"old\n",
    "var/cache/gone/a/b": b"deep\n",
    "var/cache/keep": b"k\n",
    "dir-to-file/child": b"c\n",
    "file-to-dir": b"f\n",
    "usr/bin/tool": b"#!/bin/sh\necho v1\n",
    "usr/bin/tool-alias": ("link", "usr/bin/tool"),
    "link-changes": "->etc/passwd",
    "gone-file": b"x\n",
}
UPPER: Spec = {
    "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
    "var/cache/keep": b"k\n",
    "dir-to-file": b"now a file\n",
    "file-to-dir/inner": b"i\n",
    "usr/bin/tool": b"#!/bin/sh\necho v2\n",
    "usr/bin/tool-alias": ("link", "usr/bin/tool"),
    "link-changes": "->usr/bin/tool",
    "home/user/.profile": b"export X=1\n",
    "-early": None,
}


def _blob(layout: Path, digest: str) -> bytes:
    algorithm, _, hexdigest = digest.partition(":")
    return (layout / "blobs" / algorithm / hexdigest).read_bytes()


def _manifest(image: OciImage) -> dict[str, object]:
    return json.loads(_blob(image.layout, image.manifest_digest))  # type: ignore[no-any-return]


def _tar_names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()


def _unpack(layout: Path, tag: str, bundle: Path) -> Path:
    need("umoci")
    need_root()
    run("umoci", "unpack", "--image", f"{layout}:{tag}", bundle)
    return bundle / "rootfs"


# --------------------------------------------------------------------------
# Structure, per image-spec v1.1
# --------------------------------------------------------------------------


def test_layout_follows_the_image_spec(tree_tar: TreeTar, tmp_path: Path) -> None:
    lower, upper = tree_tar("lower", LOWER), tree_tar("upper", UPPER)
    image = write_oci_layout([lower, upper], CONFIG, tmp_path / "oci", epoch=EPOCH)
    layout = image.layout
    assert sorted(p.name for p in layout.iterdir()) == ["blobs", "index.json", "oci-layout"]
    assert (layout / "oci-layout").read_bytes() == b'{"imageLayoutVersion":"1.0.0"}'
    for blob in (layout / "blobs" / "sha256").iterdir():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    index_bytes = (layout / "index.json").read_bytes()
    assert image.index_digest == "sha256:" + hashlib.sha256(index_bytes).hexdigest()
    index = json.loads(index_bytes)
    assert index == {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": image.manifest_digest,
                "size": image.manifest_size,
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {"org.opencontainers.image.ref.name": "demo:1.0"},
            }
        ],
    }
    manifest = _manifest(image)
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"  # type: ignore[index]
    layers = manifest["layers"]
    assert [entry["mediaType"] for entry in layers] == [  # type: ignore[attr-defined]
        "application/vnd.oci.image.layer.v1.tar+gzip"
    ] * 2
    config = json.loads(_blob(layout, image.config_digest))
    # DiffIDs are the sha256 of the uncompressed layers; layer 0 is tree 0 itself.
    uncompressed = [gzip.decompress(_blob(layout, d)) for d in image.layer_digests]
    assert config["rootfs"] == {
        "type": "layers",
        "diff_ids": ["sha256:" + hashlib.sha256(u).hexdigest() for u in uncompressed],
    }
    assert uncompressed[0] == lower.read_bytes()
    assert config["created"] == "2026-07-11T10:36:37Z"
    assert (
        config["history"] == [{"created": "2026-07-11T10:36:37Z", "created_by": "reprobuild"}] * 2
    )
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert config["config"] == {
        "Entrypoint": ["/bin/sh", "-c"],
        "Cmd": ["echo hello"],
        "Env": ["A=1", "LANG=C.UTF-8", "PATH=/usr/bin:/bin"],
        "WorkingDir": "/",
        "User": "0:0",
        "Labels": {"org.opencontainers.image.title": "demo"},
        "ExposedPorts": {"53/udp": {}, "8080/tcp": {}},
    }
    # Every JSON blob is canonical: re-serialising gives the same bytes.
    for digest in (image.manifest_digest, image.config_digest):
        raw = _blob(layout, digest)
        assert canonical_bytes(json.loads(raw)) == raw
    assert canonical_bytes(index) == index_bytes


def test_gzip_layers_have_no_name_or_time(tree_tar: TreeTar, tmp_path: Path) -> None:
    image = write_oci_layout([tree_tar("t", LOWER)], ImageConfig(), tmp_path / "o", epoch=EPOCH)
    head = _blob(image.layout, image.layer_digests[0])[:10]
    assert head[:4] == b"\x1f\x8b\x08\x00"  # deflate, no FNAME/FCOMMENT/FEXTRA
    assert head[4:8] == b"\0\0\0\0"  # MTIME 0


def test_zstd_layer_records_size_and_checksum(tree_tar: TreeTar, tmp_path: Path) -> None:
    tar = tree_tar("t", LOWER)
    image = write_oci_layout([tar], ImageConfig(), tmp_path / "o", compression="zstd", epoch=EPOCH)
    blob = _blob(image.layout, image.layer_digests[0])
    params = zstandard.get_frame_parameters(blob)
    assert params.content_size == tar.stat().st_size
    assert params.has_checksum
    assert zstandard.ZstdDecompressor().decompress(blob) == tar.read_bytes()


# --------------------------------------------------------------------------
# Layer diffs
# --------------------------------------------------------------------------


def test_diff_against_nothing_is_the_tree_itself(tree_tar: TreeTar) -> None:
    upper = tree_tar("upper", UPPER)
    out = io.BytesIO()
    summary = diff_layer(None, upper, out)
    assert out.getvalue() == upper.read_bytes()
    assert summary.deleted == 0 and summary.modified == 0
    assert summary.digest == "sha256:" + hashlib.sha256(upper.read_bytes()).hexdigest()


def test_diff_of_identical_trees_is_empty(tree_tar: TreeTar) -> None:
    a, b = tree_tar("a", LOWER), tree_tar("b", LOWER)
    out = io.BytesIO()
    summary = diff_layer(a, b, out)
    assert (summary.added, summary.modified, summary.deleted) == (0, 0, 0)
    assert _tar_names(out.getvalue()) == []


def test_diff_holds_changes_and_whiteouts_before_siblings(tree_tar: TreeTar) -> None:
    out = io.BytesIO()
    summary = diff_layer(tree_tar("lower", LOWER), tree_tar("upper", UPPER), out)
    names = _tar_names(out.getvalue())
    assert names == [
        ".",
        "./.wh.gone-file",  # before its sibling "-early/" although "-" sorts first
        "./-early",
        "./dir-to-file",  # replaces the directory: no whiteouts beneath it
        "./etc",
        "./etc/.wh.obsolete.conf",
        "./etc/passwd",
        "./file-to-dir",
        "./file-to-dir/inner",
        "./home",
        "./home/user",
        "./home/user/.profile",
        "./link-changes",
        "./usr",
        "./usr/bin",
        "./usr/bin/tool",
        "./usr/bin/tool-alias",  # the hard-link group travels whole
        "./var",
        "./var/cache",
        "./var/cache/.wh.gone",  # only the topmost deleted directory
    ]
    assert summary.deleted == 3
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        alias = tar.getmember("./usr/bin/tool-alias")
        assert alias.islnk() and alias.linkname == "./usr/bin/tool"
        whiteout = tar.getmember("./etc/.wh.obsolete.conf")
        assert whiteout.isfile() and whiteout.size == 0


def test_metadata_only_changes_are_in_the_diff(tmp_path: Path, tree_tar: TreeTar) -> None:
    from .conftest import canonical_tar, make_tree

    spec: Spec = {"a": b"same\n", "b": b"same\n", "c": b"same\n"}
    lower = canonical_tar(make_tree(tmp_path / "l", spec), tmp_path / "l.tar")
    root = make_tree(tmp_path / "u", spec)
    os.chmod(root / "a", 0o600)
    os.chown(root / "b", 1234, 5678)
    os.utime(root / "c", (1000, 1000))
    upper = canonical_tar(root, tmp_path / "u.tar")
    out = io.BytesIO()
    summary = diff_layer(lower, upper, out)
    assert summary.modified == 3
    assert _tar_names(out.getvalue()) == [".", "./a", "./b", "./c"]


def test_whiteout_names_in_a_tree_are_refused(tree_tar: TreeTar, tmp_path: Path) -> None:
    tar = tree_tar("bad", {"etc/.wh.passwd": b""})
    with pytest.raises(OciError, match=r"\.wh\."):
        write_oci_layout([tar], ImageConfig(), tmp_path / "o", epoch=EPOCH)
    assert list((tmp_path / "o").iterdir()) == []  # nothing half-written is left


# --------------------------------------------------------------------------
# Real consumers
# --------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_skopeo_accepts_every_compression(
    compression: str, tree_tar: TreeTar, tmp_path: Path
) -> None:
    need("skopeo")
    lower, upper = tree_tar("lower", LOWER), tree_tar("upper", UPPER)
    image = write_oci_layout(
        [lower, upper],
        CONFIG,
        tmp_path / "oci",
        compression=compression,
        epoch=EPOCH,  # type: ignore[arg-type]
    )
    ref = f"oci:{image.layout}:demo:1.0"
    info = json.loads(run("skopeo", "inspect", ref).stdout)
    assert info["Digest"] == image.manifest_digest
    assert info["Layers"] == list(image.layer_digests)
    assert info["Created"] == "2026-07-11T10:36:37Z"
    raw = run("skopeo", "inspect", "--raw", ref).stdout
    assert raw == _blob(image.layout, image.manifest_digest)
    # skopeo must be able to read the layer data too: recompress to gzip
    # (decompressing ours) and check the uncompressed digests are ours.
    copy = tmp_path / "copy"
    run(
        "skopeo", "copy", "--quiet", "--dest-compress", "--dest-compress-format", "gzip",
        ref, f"oci:{copy}:x",
    )  # fmt: skip
    manifest = json.loads(run("skopeo", "inspect", "--raw", f"oci:{copy}:x").stdout)
    unpacked = [
        "sha256:" + hashlib.sha256(gzip.decompress(_blob(copy, layer["digest"]))).hexdigest()
        for layer in manifest["layers"]
    ]
    assert unpacked == list(image.diff_ids)


def test_umoci_applies_layers_and_whiteouts(tree_tar: TreeTar, tmp_path: Path) -> None:
    lower, upper = tree_tar("lower", LOWER), tree_tar("upper", UPPER)
    image = write_oci_layout([lower, upper], CONFIG, tmp_path / "oci", epoch=EPOCH)
    rootfs = _unpack(image.layout, "demo:1.0", tmp_path / "bundle")
    assert not (rootfs / "etc/obsolete.conf").exists()
    assert not (rootfs / "var/cache/gone").exists()
    assert not (rootfs / "gone-file").exists() and (rootfs / "-early").is_dir()
    assert (rootfs / "dir-to-file").read_bytes() == b"now a file\n"
    assert (rootfs / "file-to-dir/inner").read_bytes() == b"i\n"
    assert os.readlink(rootfs / "link-changes") == "usr/bin/tool"
    tool, alias = (rootfs / "usr/bin/tool").stat(), (rootfs / "usr/bin/tool-alias").stat()
    assert (tool.st_ino, tool.st_nlink) == (alias.st_ino, 2)
    assert not any(p.name.startswith(".wh.") for p in rootfs.rglob("*"))
    # The whole unpacked tree is the upper tree, metadata and all.
    assert tree_digest(rootfs, epoch=EPOCH) == tree_digest(
        tmp_path / "trees" / "upper", epoch=EPOCH
    )


def test_umoci_keeps_modes_and_owners(tmp_path: Path) -> None:
    from .conftest import canonical_tar, make_tree

    root = make_tree(
        tmp_path / "t",
        {
            "usr/bin/su": b"\x7fELF fake\n",
            "srv/private": None,
            "srv/private/key": b"secret\n",
            "tmp": None,
            "run/pipe": "fifo",
            "home/u/file": b"mine\n",
        },
    )
    os.chmod(root / "usr/bin/su", 0o4755)
    os.chmod(root / "srv/private", 0o700)
    os.chmod(root / "srv/private/key", 0o400)
    os.chmod(root / "tmp", 0o1777)
    os.chown(root / "home/u", 1000, 1000)
    os.chown(root / "home/u/file", 1000, 100)
    tar = canonical_tar(root, tmp_path / "t.tar")
    image = write_oci_layout([tar], ImageConfig(tag="t"), tmp_path / "oci", epoch=EPOCH)
    rootfs = _unpack(image.layout, "t", tmp_path / "bundle")

    def meta(rel: str) -> tuple[int, int, int]:
        st = os.lstat(rootfs / rel)
        return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid

    assert meta("usr/bin/su") == (0o4755, 0, 0)
    assert meta("srv/private") == (0o700, 0, 0)
    assert meta("srv/private/key") == (0o400, 0, 0)
    assert meta("tmp") == (0o1777, 0, 0)
    assert meta("home/u") == (0o755, 1000, 1000)
    assert meta("home/u/file") == (0o644, 1000, 100)
    assert stat.S_ISFIFO(os.lstat(rootfs / "run/pipe").st_mode)
    assert os.lstat(rootfs / "home/u/file").st_mtime == EPOCH


def test_busybox_image_runs(busybox_tar: Path, tmp_path: Path) -> None:
    bwrap = need("bwrap")
    config = ImageConfig(entrypoint=["/bin/sh"], env={"PATH": "/bin"}, tag="busybox")
    image = write_oci_layout([busybox_tar], config, tmp_path / "oci", epoch=EPOCH)
    rootfs = _unpack(image.layout, "busybox", tmp_path / "bundle")
    assert os.readlink(rootfs / "bin/sh") == "busybox"
    assert stat.S_IMODE(os.stat(rootfs / "bin/busybox").st_mode) == 0o755
    sandbox = (bwrap, "--bind", rootfs, "/", "--proc", "/proc", "--dev", "/dev", "--unshare-net")
    run(*sandbox, "/bin/busybox", "true")
    done = run(*sandbox, "/bin/sh", "-c", "echo hello from $(busybox uname -s)")
    assert done.stdout == b"hello from Linux\n"


# --------------------------------------------------------------------------
# Identical bytes
# --------------------------------------------------------------------------

_EXPORT = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from reprobuild.export.oci import ImageConfig, write_oci_layout, write_oci_archive
    os.umask(int(sys.argv[1], 8))
    config = ImageConfig(cmd=["/bin/sh"], env={"B": "2", "A": "1"}, tag="x:1")
    dest = Path(sys.argv[2])
    for compression in ("gzip", "zstd", "none"):
        write_oci_layout([Path(p) for p in sys.argv[4:]], config, dest / compression,
                         compression=compression, epoch=int(sys.argv[3]))
        write_oci_archive(dest / compression, dest / (compression + ".tar"), epoch=int(sys.argv[3]))
    """
)


def _snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    out: dict[str, tuple[int, bytes | None]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        data = path.read_bytes() if path.is_file() else None
        out[str(path.relative_to(root))] = (st.st_mode, data)
    return out


def test_exports_are_identical_across_dirs_umask_and_tz(tree_tar: TreeTar, tmp_path: Path) -> None:
    tars = [str(tree_tar("lower", LOWER)), str(tree_tar("upper", UPPER))]
    results = []
    for n, (umask, tz) in enumerate([("022", "UTC"), ("077", "Asia/Kathmandu")]):
        dest = tmp_path / f"run{n}" / ("deeper" * n)
        env = dict(os.environ, TZ=tz, LC_ALL="C" if n else "C.UTF-8")
        run(sys.executable, "-c", _EXPORT, umask, dest, str(EPOCH), *tars, cwd=ROOT, env=env)
        results.append(_snapshot(dest))
    assert results[0] == results[1]
    assert {k for k in results[0] if k.endswith(".tar")} == {"gzip.tar", "zstd.tar", "none.tar"}


def test_oci_archive_is_read_by_skopeo(tree_tar: TreeTar, tmp_path: Path) -> None:
    need("skopeo")
    image = write_oci_layout([tree_tar("t", UPPER)], CONFIG, tmp_path / "oci", epoch=EPOCH)
    archive = tmp_path / "image.tar"
    digest = write_oci_archive(image.layout, archive, epoch=EPOCH)
    assert digest == "sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest()
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
    assert {(m.uid, m.gid, m.mtime) for m in members} == {(0, 0, EPOCH)}
    assert members[-2:][0].name == "index.json" and members[-1].name == "oci-layout"
    info = json.loads(run("skopeo", "inspect", f"oci-archive:{archive}:demo:1.0").stdout)
    assert info["Digest"] == image.manifest_digest


# --------------------------------------------------------------------------
# Multi-platform index
# --------------------------------------------------------------------------


def test_multi_arch_index(busybox_tar: Path, tree_tar: TreeTar, tmp_path: Path) -> None:
    need("skopeo")
    other = tree_tar("arm", UPPER)
    arch, variant = package_format("deb").platform("arm64")
    amd64 = write_oci_layout([busybox_tar], ImageConfig(), tmp_path / "amd64", epoch=EPOCH)
    arm64 = write_oci_layout(
        [busybox_tar, other],
        ImageConfig(architecture=arch, variant=variant),
        tmp_path / "arm64",
        epoch=EPOCH,
    )
    index = write_image_index([amd64, arm64], tmp_path / "multi", tag="multi", epoch=EPOCH)
    # The busybox layer is shared and stored once.
    blobs = sorted(p.name for p in (tmp_path / "multi/blobs/sha256").iterdir())
    assert len(blobs) == len(set(blobs)) == 1 + 2 * 2 + 2  # index, 2 manifests+configs, 2 layers
    raw = run("skopeo", "inspect", "--raw", f"oci:{index.layout}:multi").stdout
    assert raw == _blob(index.layout, index.digest)
    listed = json.loads(raw)
    assert listed["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [m["platform"] for m in listed["manifests"]] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux", "variant": "v8"},
    ]
    for image, (a, v) in ((amd64, ("amd64", None)), (arm64, ("arm64", "v8"))):
        args = ["--override-arch", a] + (["--override-variant", v] if v else [])
        info = json.loads(run("skopeo", *args, "inspect", f"oci:{index.layout}:multi").stdout)
        assert (info["Digest"], info["Architecture"]) == (index.digest, a)
        config = run("skopeo", *args, "inspect", "--config", "--raw", f"oci:{index.layout}:multi")
        assert config.stdout == _blob(index.layout, image.config_digest)


def test_index_refuses_duplicate_platforms(tree_tar: TreeTar, tmp_path: Path) -> None:
    tar = tree_tar("t", LOWER)
    a = write_oci_layout([tar], ImageConfig(), tmp_path / "a", epoch=EPOCH)
    b = write_oci_layout([tar], ImageConfig(cmd=["x"]), tmp_path / "b", epoch=EPOCH)
    with pytest.raises(OciError, match="same platform"):
        write_image_index([a, b], tmp_path / "i", epoch=EPOCH)


# --------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------


def test_refusals(tree_tar: TreeTar, tmp_path: Path) -> None:
    tar = tree_tar("t", LOWER)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_bytes(b"")
    with pytest.raises(OciError, match="not empty"):
        write_oci_layout([tar], ImageConfig(), tmp_path / "full", epoch=EPOCH)
    with pytest.raises(OciError, match="compression"):
        write_oci_layout([tar], ImageConfig(), tmp_path / "c", compression="xz", epoch=EPOCH)  # type: ignore[arg-type]
    with pytest.raises(OciError, match="reference name"):
        write_oci_layout([tar], ImageConfig(tag="bad tag"), tmp_path / "d", epoch=EPOCH)
    with pytest.raises(OciError, match="exposed port"):
        write_oci_layout([tar], ImageConfig(exposed_ports=["http"]), tmp_path / "e", epoch=EPOCH)
    with pytest.raises(OciError, match="at least one layer"):
        write_oci_layout([], ImageConfig(), tmp_path / "f", epoch=EPOCH)
    with pytest.raises(ArchiveError, match="Debian architecture 'pdp11'"):
        package_format("deb").platform("pdp11")


def test_three_layers_with_tricky_transitions(tree_tar: TreeTar, tmp_path: Path) -> None:
    """Links split and joined, directories turned into symlinks and back."""
    first: Spec = {
        "a": b"same\n",
        "b": ("link", "a"),
        "c": b"c\n",
        "lib/x/y": b"y\n",
        "opt": "->lib",
        "s": "->a",
    }
    second: Spec = {
        "a": b"same\n",
        "b": b"same\n",  # the hard link is split: same bytes, separate file
        "c": b"c\n",
        "d": ("link", "c"),  # a new link to an unchanged file
        "lib": "->opt",  # a directory becomes a symlink
        "opt/z": b"z\n",  # a symlink becomes a directory
        "s": b"was a symlink\n",
    }
    third: Spec = {
        "a": b"same\n",
        "c": b"c\n",
        "lib/x/new": b"n\n",
        "opt": "->lib",
    }
    tars = [tree_tar(name, spec) for name, spec in zip("123", (first, second, third), strict=True)]
    image = write_oci_layout(tars, ImageConfig(tag="t"), tmp_path / "oci", epoch=EPOCH)
    assert len(image.layer_digests) == 3
    for depth in (2, 3):
        # Check each stack depth: re-export the prefix and unpack it.
        prefix = write_oci_layout(
            tars[:depth], ImageConfig(tag="t"), tmp_path / f"oci{depth}", epoch=EPOCH
        )
        assert prefix.layer_digests == image.layer_digests[:depth]
        rootfs = _unpack(prefix.layout, "t", tmp_path / f"bundle{depth}")
        assert tree_digest(rootfs, epoch=EPOCH) == tree_digest(
            tmp_path / "trees" / "123"[depth - 1], epoch=EPOCH
        )
