"""One small class per format, registered in a table, and the dispatcher.

Formats are recognised by content (magic numbers, member names), not by
extension: a layer blob is named by its digest, a member of a disk image by
nothing at all. Each class says how to *explain* a difference; archives and
images unpack into a :mod:`~reprobuild.diff.trees` tree, whose file contents
come back through :func:`compare_probes`, so nesting (a ``.tar.gz`` inside
a tar, a ``.deb`` inside a directory, a partition inside a disk) works at
any depth. A missing tool or an unreadable member becomes a comment, and the
pair is still compared as bytes: the answer is never a traceback.
"""

from __future__ import annotations

import bz2
import filecmp
import gzip
import io
import json
import lzma
import os
import shutil
import struct
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import IO, ClassVar, Final

import zstandard

from reprobuild.diff import elf
from reprobuild.diff.context import Context, Probe, ToolProblem
from reprobuild.diff.diffoscope import run_diffoscope
from reprobuild.diff.fields import (
    field_differences,
    json_fields,
    parse_deb822,
    parse_pkginfo,
    unified,
)
from reprobuild.diff.model import Difference
from reprobuild.diff.trees import (
    Entry,
    compare_trees,
    tree_from_cpio,
    tree_from_directory,
    tree_from_tar,
)
from reprobuild.tree import TarReader, member_parts

__all__ = ["Format", "compare_probes", "detect"]

_CHUNK: Final = 1 << 20
_MAX_TEXT: Final = 1 << 20
_SECTOR: Final = 512


class Format:
    """A file format: how to recognise it and how to explain two instances.

    Subclasses with a ``name`` register themselves; :func:`detect` tries
    them by ascending ``order``. ``leaf`` formats are where the recursion
    ends and where ``--diffoscope`` hands the pair over.
    """

    name: ClassVar[str] = ""
    order: ClassVar[int] = 50
    leaf: ClassVar[bool] = False
    registry: ClassVar[list[type[Format]]] = []

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            Format.registry.append(cls)
            Format.registry.sort(key=lambda f: f.order)

    @classmethod
    def recognizes(cls, probe: Probe) -> bool:
        raise NotImplementedError

    @classmethod
    def compare(cls, ctx: Context, a: Probe, b: Probe, label: str) -> Difference | None:
        raise NotImplementedError


def detect(probe: Probe) -> type[Format]:
    """The first registered format that recognises *probe* (Binary always does)."""
    for fmt in Format.registry:
        if fmt.recognizes(probe):
            return fmt
    return Binary  # pragma: no cover - Binary recognises everything


def _same_file(a: Probe, b: Probe) -> bool:
    return not a.is_dir and not b.is_dir and filecmp.cmp(a.path, b.path, shallow=False)


def compare_probes(ctx: Context, a: Probe, b: Probe, label: str) -> Difference | None:
    """Compare two files or directories by content; ``None`` when identical."""
    if a.is_dir != b.is_dir:
        kinds = ("directory" if p.is_dir else "file" for p in (a, b))
        return Difference(label, "file", "type changed: {} vs {}".format(*kinds))
    if _same_file(a, b):
        return None
    fa, fb = detect(a), detect(b)
    comments: list[str] = []
    result: Difference | None
    if fa is not fb and (issubclass(fa, Compressed) or issubclass(fb, Compressed)):
        # a.tar vs b.tar.gz: say so, then compare what is inside.
        if issubclass(fa, Compressed):
            a = Probe.of(fa.decompress(ctx, a.path), fa.inner_name(a.name))
            note = f"only A is {fa.name}-compressed"
        elif issubclass(fb, Compressed):
            b = Probe.of(fb.decompress(ctx, b.path), fb.inner_name(b.name))
            note = f"only B is {fb.name}-compressed"
        inner = compare_probes(ctx, a, b, label)
        if inner is None:
            return Difference(label, "compression", f"{note}; decompressed content is identical")
        return inner.with_comments(note)
    if fa is not fb:
        inner = Binary.compare(ctx, a, b, label)
        assert inner is not None
        result = Difference(
            label, "file", f"file format differs: {fa.name} vs {fb.name}; {inner.summary}"
        )
        fa = Binary
    else:
        try:
            result = fa.compare(ctx, a, b, label)
        except Exception as exc:  # diffoscope's rule: say what failed, then compare bytes
            comments.append(f"could not compare as {fa.name}: {type(exc).__name__}: {exc}")
            if a.is_dir:
                result = Difference(label, "directory", "could not be compared")
            else:
                result = Binary.compare(ctx, a, b, label)
            fa = Binary
    if result is None:
        return None
    if fa.leaf and ctx.use_diffoscope and not a.is_dir:
        try:
            view = run_diffoscope(ctx, a.path, b.path, a.name)
            result = Difference(
                result.source,
                result.kind,
                result.summary,
                result.unified_diff,
                (*result.children, view),
                result.comments,
                result.origin,
            )
        except ToolProblem as exc:
            ctx.note(str(exc))
    return result.with_comments(*comments) if comments else result


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _container(
    label: str, kind: str, children: list[Difference], what: str = ""
) -> Difference | None:
    children = [c for c in children if c is not None]
    if not children:
        return None
    summary = what or f"{len(children)} difference{'s' if len(children) > 1 else ''}"
    return Difference(label, kind, summary, children=tuple(children))


def _fields_node(label: str, diffs: list[Difference]) -> Difference | None:
    if not diffs:
        return None
    n = len(diffs)
    return Difference(
        label,
        "json",
        f"{n} field{'s' if n > 1 else ''} differ{'s' if n == 1 else ''}",
        children=tuple(diffs),
    )


def _bytes_summary(a: Path, b: Path) -> str:
    sa, sb = a.stat().st_size, b.stat().st_size
    offset = 0
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(_CHUNK), fb.read(_CHUNK)
            if ca != cb:
                for i, (x, y) in enumerate(zip(ca, cb, strict=False)):
                    if x != y:
                        offset += i
                        break
                else:
                    offset += min(len(ca), len(cb))
                break
            if not ca:
                break
            offset += len(ca)
    sizes = f"{sa} vs {sb} bytes" if sa != sb else f"{sa} bytes"
    return f"{sizes}, first difference at byte {offset}"


def _read_text(path: Path) -> str | None:
    if path.stat().st_size > _MAX_TEXT:
        return None
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


class _Charged(io.RawIOBase):
    """A file whose writes are counted against the comparison's scratch limit."""

    def __init__(self, handle: IO[bytes], ctx: Context, what: str) -> None:
        self.handle, self.ctx, self.what = handle, ctx, what

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.ctx.charge(len(data), self.what)
        return self.handle.write(data)


def _extract(ctx: Context, what: str, write: Callable[[IO[bytes]], None]) -> Path:
    out = ctx.scratch(what) / "data"
    try:
        with open(out, "wb") as handle:
            write(_Charged(handle, ctx, what))  # type: ignore[arg-type]
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return out


# --------------------------------------------------------------------------
# Directories and OCI
# --------------------------------------------------------------------------


class Directory(Format):
    """Two directories: one tree comparison, contents compared in place."""

    name = "directory"
    order = 90

    @classmethod
    def recognizes(cls, probe: Probe) -> bool:
        return probe.is_dir

    @classmethod
    def compare(cls, ctx: Context, a: Probe, b: Probe, label: str) -> Difference | None:
        return compare_trees(
            ctx, tree_from_directory(a.path), tree_from_directory(b.path), label, "directory"
        )


def _load_json(path: Path) -> object:
    return json.loads(path.read_bytes())


def _blob(layout: Path, digest: str) -> Path:
    algo, _, hexdigest = digest.partition(":")
    if not algo or "/" in algo or "/" in hexdigest or not hexdigest:
        raise ValueError(f"malformed digest {digest!r}")
    return layout / "blobs" / algo / hexdigest


def _descriptors(doc: object, key: str) -> list[dict[str, object]]:
    if not isinstance(doc, dict):
        return []
    items = doc.get(key)
    return [d for d in items if isinstance(d, dict)] if isinstance(items, list) else []


def _platform(desc: dict[str, object]) -> str:
    p = desc.get("platform")
    if isinstance(p, dict):
        return "/".join(str(p[k]) for k in ("os", "architecture", "variant") if p.get(k))
    return ""


def _compare_image(
    ctx: Context, la: Path, lb: Path, da: dict[str, object], db: dict[str, object]
) -> list[Difference]:
    """Manifest fields, config fields, then every layer whose digest differs."""
    out: list[Difference] = []
    ma = _load_json(_blob(la, str(da.get("digest"))))
    mb = _load_json(_blob(lb, str(db.get("digest"))))
    if _descriptors(ma, "manifests") or _descriptors(mb, "manifests"):
        return _compare_index(ctx, la, lb, ma, mb, "image index")
    node = _fields_node("manifest", json_fields(ma, mb))
    if node:
        out.append(node)
    ca = ma.get("config") if isinstance(ma, dict) else None
    cb = mb.get("config") if isinstance(mb, dict) else None
    config_a: object = {}
    config_b: object = {}
    if isinstance(ca, dict) and isinstance(cb, dict) and ca.get("digest") != cb.get("digest"):
        config_a = _load_json(_blob(la, str(ca.get("digest"))))
        config_b = _load_json(_blob(lb, str(cb.get("digest"))))
        node = _fields_node("image config", json_fields(config_a, config_b))
        if node:
            out.append(node)
    layers_a, layers_b = _descriptors(ma, "layers"), _descriptors(mb, "layers")
    for i in range(max(len(layers_a), len(layers_b))):
        label = f"layer {i}"
        if i >= len(layers_a) or i >= len(layers_b):
            side = "B" if i >= len(layers_a) else "A"
            out.append(Difference(label, "layer", f"only in {side}"))
            continue
        if layers_a[i].get("digest") == layers_b[i].get("digest"):
            continue
        pa = Probe.of(_blob(la, str(layers_a[i].get("digest"))), "layer")
        pb = Probe.of(_blob(lb, str(layers_b[i].get("digest"))), "layer")
        diff = ctx.compare(pa, pb, label)
        if diff is not None:
            out.append(diff.relabel(label))
    return out


def _compare_index(
    ctx: Context, la: Path, lb: Path, ia: object, ib: object, label: str
) -> list[Difference]:
    out: list[Difference] = []
    node = _fields_node(label, json_fields(ia, ib))
    if node:
        out.append(node)
    ma, mb = _descriptors(ia, "manifests"), _descriptors(ib, "manifests")
    many = max(len(ma), len(mb)) > 1
    for i, (da, db) in enumerate(zip(ma, mb, strict=False)):
        if da.get("digest") == db.get("digest"):
            continue
        children = _compare_image(ctx, la, lb, da, db)
        if many:
            name = f"image {i} ({_platform(da) or 'no platform'})"
            node = _container(name, "oci-manifest", children)
            if node:
                out.append(node)
        else:
            out.extend(children)
    return out


def _is_layout(path: Path) -> bool:
    return (path / "oci-layout").is_file() and (path / "index.json").is_file()


def _compare_layouts(ctx: Context, la: Path, lb: Path, label: str, kind: str) -> Difference | None:
    children = _compare_index(
        ctx, la, lb, _load_json(la / "index.json"), _load_json(lb / "index.json"), "index.json"
    )
    if not children:  # same images, other bytes (e.g. unreferenced blobs)
        tree = compare_trees(ctx, tree_from_directory(la), tree_from_directory(lb), label, kind)
        return tree.relabel(label) if tree else None
    n = sum(1 for c in children if c.source.startswith("layer"))
    what = f"{n} layer{'s' if n != 1 else ''} differ" if n else "image metadata differs"
    return Difference(label, kind, what, children=tuple(children))


class OciLayout(Format):
    """An OCI image layout directory: index, manifest and config by field, layers by tree."""

    name = "OCI image layout"
    order = 10

    @classmethod
    def recognizes(cls, probe: Probe) -> bool:
        return probe.is_dir and _is_layout(probe.path)

    @classmethod
    def compare(cls, ctx: Context, a: Probe, b: Probe, label: str) -> Difference | None:
        return _compare_layouts(ctx, a.path, b.path, label, "oci-layout")


# --------------------------------------------------------------------------
# Compression
# --------------------------------------------------------------------------


class Compressed(Format):
    """A single compressed stream: decompress both, compare what is inside."""

    magic: ClassVar[bytes] = b""
    suffixes: ClassVar[tuple[str, ...]] = ()
    leaf = False

    @classmethod
    def recognizes(cls, probe: Probe) -> bool:
        return bool(cls.magic) and probe.head.startswith(cls.magic)

    @classmethod
    def open(cls, path: Path) -> io.BufferedIOBase:
        raise NotImplementedError

    @classmethod
    def copy(cls, path: Path, out: IO[bytes]) -> None:
        """Decompress *path* into *out* (all concatenated members or frames)."""
        with cls.open(path) as src:
            shutil.copyfileobj(src, out, _CHUNK)

    @classmethod
    def header_notes(cls, a: bytes, b: bytes) -> list[Difference]:
        del a, b
        return []

    @classmethod
    def inner_name(cls, name: str) -> str:
        if name.endswith(".tgz"):
            return name[:-4] + ".tar"
        for suffix in cls.suffixes:
            if name.endswith(suffix):
                return name[: -len(suffix)]
        return name

    @classmethod
    def decompress(cls, ctx: Context, path: Path) -> Path:
        return _extract(ctx, cls.name, lambda out: cls.copy(path, out))

    @classmethod
    def compare(cls, ctx: Context, a: Probe, b: Probe, label: str) -> Difference | None:
        da, db = cls.decompress(ctx, a.path), cls.decompress(ctx, b.path)
        notes = cls.header_notes(a.head, b.head)
        name = cls.inner_name(a.name)
        inner = ctx.compare(Probe.of(da, name), Probe.of(db, name), label)
        if inner is None:
            return Difference(
                label,
                cls.name,
                f"{cls.name} streams differ; decompressed content is identical",
                children=tuple(notes),
            )
        if notes:
            inner = Difference(
                inner.source,
                inner.kind,
                inner.summary,
                inner.unified_diff,
                (*notes, *inner.children),
                inner.comments,
                inner.origin,
            )
        return inner


class Gzip(Compressed):
    name = "gzip"
    magic = b"\x1f\x8b"
    suffixes = (".gz",)

    @classmethod
    def open(cls, path: Path) -> io.BufferedIOBase:
        return gzip.open(path, "rb")

    @classmethod
    def header_notes(cls, a: bytes, b: bytes) -> list[Difference]:
        """The gzip header carries a timestamp and a file name: classic leaks."""
        out: list[Difference] = []
        ta, tb = struct.unpack("<I", a[4:8])[0], struct.unpack("<I", b[4:8])[0]
        if ta != tb:
            out.append(Difference("gzip header", "field", f"mtime {ta} vs {tb}"))
        if a[9] != b[9]:
            out.append(Difference("gzip header", "field", f"OS {a[9]} vs {b[9]}"))
        na = a[10 : a.find(b"\0", 10)] if a[3] & 8 else b""
        nb = b[10 : b.find(b"\0", 10)] if b[3] & 8 else b""
        if na != nb:
            out.append(Difference("gzip header", "field", f"file name {na!r} vs {nb!r}"))
        return out


class Zstd(Compressed):
    name = "zstd"
    magic = b"\x28\xb5\x2f\xfd"
    suffixes = (".zst", ".zstd")

    @classmethod
    def copy(cls, path: Path, out: IO[bytes]) -> None:
        with (
            open(path, "rb") as raw,
            zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True) as src,
        ):
            shutil.copyfileobj(src, out, _CHUNK)


class Xz(Compressed):
    name = "xz"
    magic = b"\xfd7zXZ\x00"
    suffixes = (".xz", ".lzma")

    @classmethod
    def open(cls, path: Path) -> io.BufferedIOBase:
        return lzma.open(path, "rb")


class Bzip2(Compressed):
    name = "bzip2"
    magic = b"BZh"
    suffixes = (".bz2",)

    @classmethod
    def open(cls, path: Path) -> io.BufferedIOBase:
        return bz2.open(path, "rb")


# --------------------------------------------------------------------------
# Archives
# --------------------------------------------------------------------------


def _is_tar(head: bytes) -> bool:
    return head[257:262] == b"ustar"


def _tar_root_names(path: Path, limit: int = 100_000) -> set[str]:
    """Top-level member names, from the headers only (seeking over the data)."""
    names: set[str] = set()
    with open(path, "rb") as f:
        for _ in range(limit):
            header = f.read(512)
            if len(header) < 512 or header == b"\0" * 512:
                break
            try:
                size = int(header[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
            except ValueError:
                break
            name = header[:100].split(b"\0", 1)[0]
            if header[156:157] not in (b"x", b"g", b"L", b"K"):
                first = [p for p in name.split(b"/") if p not in (b"", b".")][:1]
                names.update(p.decode("utf-8", "replace") for p in first)
            f.seek(size + (-size % 512), os.SEEK_CUR)
    return names


class OciArchive(Format):
    """An ``oci-archive`` tar: unpacked, then compared as an OCI layout."""

    name = "OCI archive"
    order = 20

    @classmethod
    def recognizes(cls, probe: Probe) -> bool:
        return (
            not probe.is_dir
            and _is_tar(probe.head)
            and {"oci-layout", "index.json"} <= _tar_root_names(probe.path)
        )

    @classmethod
    def _unpack(cls, ctx: Context, path: Path) -> Path:
        root = ctx.scratch("oci-archive")
        with open(path, "rb") as stream:
            for member in TarReader(stream):
                parts = member_parts(member.name, context=str(path))
                if not parts:
                    continue
                dest = root.joinpath(*(os.fsdecode(p) for p in parts))
                if member.type == b"5":
                    dest.mkdir(parents=True, exist_ok=True)
                elif member.type == b"0":
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with open(dest, "wb") as out:
                        while chunk := member.read(_CHUNK):
                            out.write(chunk)
        return root

    @classmethod
    def compare(cls, ctx: Context, a: Probe, b: Probe, label: str) -> Difference | None:
        la, lb = cls._unpack(ctx, a.path), cls._unpack(ctx, b.path)
        result = _compare_layouts(ctx, la, lb, label, "oci-archive")
        if result is None:  # same layout, other tar bytes (member times, order, owners)
            return Tar.compare(ctx, a, b, label)
        return result


class Tar(Format):
    """A tar (ustar, GNU, pax): a tree; a pacman package when it holds ``.PKGINFO``."""

    name = "tar"
    order = 30

    @classmethod
    def recognizes(cls, probe: Probe) -> bool:
        return not probe.is_dir and _is_tar(probe.head)

    @classmethod
    def compare(cls, ctx: Context, a: Probe, b: Probe, label: str) -> Difference | None:
        with open(a.path, "rb") as sa, open(b.path, "rb") as sb:
            ta, tb = tree_from_tar(sa, ctx), tree_from_tar(sb, ctx)
        kind = "pacman-package" if ".PKGINFO" in ta or ".PKGINFO" in tb else "tar"
        result = compare_trees(ctx, ta, tb, label, kind)
        if result is None:  # same tree: the difference is in padding or header encoding
            return Difference(
                label, "tar", f"same members, other bytes ({_bytes_summary(a.path, b.path)})"
            )
        return result


def _ar_members(path: Path) -> list[tuple[str, int, int, int, int, int, int]]:
    """(name, mtime, uid, gid, mode, size, data offset) of each ar member."""
    out = []
    with open(path, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise ValueError("not an ar archive")
        offset = 8
        while True:
            header = f.read(60)
            if len(header) < 60:
                break
            if header[58:60] != b"`\n":
                raise ValueError(f"bad ar member header at offset {offset}")
            name = header[:16].decode("utf-8", "replace").rstrip().rstrip("/")

            def num(field: bytes, base: int = 10) -> int:
                text = field.decode("ascii", "replace").strip()
                return int(text, base) if text else 0

            size = num(header[48:58])
            out.append(
                (
                    name,
                    num(header[16:28]),
                    num(header[28:34]),
                    num(header[34:40]),
                    num(header[40:48], 8),
                    size,
                    offset + 60,
                )
            )
            offset += 60 + size + (size % 2)
            f.seek(offset)
    return out


def _ar_extract(ctx: Context, path: Path, offset: int, size: int) -> Path:
    def write(out: IO[bytes]) -> None:
        with open(path, "rb") as f:
            f.seek(offset)
            left = size
            while left:
                chunk = f.read(min(left, _CHUNK))
                if not chunk:
                    raise ValueError("ar member is truncated")
                out.write(chunk)
                left -= len(chunk)

    return _extract(ctx, "ar-member", write)


class Ar(Format):
    """An ar archive; a ``.deb`` when its first member is ``debian-binary``.

    Member headers (mtime, owner, mode, order) are compared, then each
    member's content: ``control.tar.*`` leads to the ``control`` fields,
    ``data.tar.*`` to the file tree.
    """

    name = "ar"
    order = 30

    @classmethod
    def recognizes(cls, probe: Probe) -> bool:
        return probe.head.startswith(b"!<arch>\n")

    @classmethod
    def compare(cls, ctx: Context, a: Probe, b: Probe, label: str) -> Difference | None:
        ma, mb = _ar_members(a.path), _ar_members(b.path)
        kind = "deb" if ma[:1] and ma[0][0] == "debian-binary" else "ar"
        children: list[Difference] = []
        names_a, names_b = [m[0] for m in ma], [m[0] for m in mb]
        if names_a != names_b:
            children.append(Difference("members", "field", f"{names_a} vs {names_b}"))
        by_b = {m[0]: m for m in mb}
        for m in ma:
            n = by_b.get(m[0])
            if n is None:
                continue
            parts = [
                f"{what} {fmt(x)} vs {fmt(y)}"
                for what, x, y, fmt in (
                    ("mtime", m[1], n[1], str),
                    ("owner", f"{m[2]}:{m[3]}", f"{n[2]}:{n[3]}", str),
                    ("mode", m[4], n[4], lambda v: f"{v:o}"),
                )
                if x != y
            ]
            pa, pb = _ar_extract(ctx, a.path, m[6], m[5]), _ar_extract(ctx, b.path, n[6], n[5])
            content = ctx.compare(Probe.of(pa, m[0]), Probe.of(pb, m[0]), m[0])
            if parts:
                summary = ", ".join(([content.summary] if content else []) + parts)
                children.append(
                    Difference(m[0], "file", summary, children=content.children if content else ())
                )
            elif content is not None:
                children.append(content.relabel(m[0]))
        if not children:
            return Difference(
                label, kind, f"same members, other bytes ({_bytes_summary(a.path, b.path)})"
            )
        return Difference(label, kind, f"{len(children)} members differ", children=tuple(children))


class Cpio(Format):
    """A newc cpio archive (initramfs), parsed in Python."""

    name = "cpio"
    order = 30

    @classmethod
    def recognizes(cls, probe: Probe) -> bool:
        return probe.head[:6] in (b"070701", b"070702")

    @classmethod
    def compare(cls, ctx: Context, a: Probe, b: Probe, label: str) -> Difference | None:
        with open(a.path, "rb") as sa, open(b.path, "rb") as sb:
            ta, tb = tree_from_cpio(sa, ctx), tree_from_cpio(sb, ctx)
        result = compare_trees(ctx, ta, tb, label, "cpio")
        if result is None:
            return Difference(
                label, "cpio", f"same members, other bytes ({_bytes_summary(a.path, b.path)})"
            )
        return result


# --------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------


class UnpackedImage(Format):
    """A file-system image: header fields read in Python, files via an unpacking tool.

    The tool's output directory is compared as a tree (its root's and symlinks'
    times are the tool's, not the image's, so they are left out). Without
    the tool, the header fields are still compared and a comment says what
    was not.
    """

    @classmethod
    def header(cls, a: bytes, b: bytes) -> list[Difference]:
        del a, b
        return []

    @classmethod
    def unpack(cls, ctx: Context, image: Path, dest: Path) -> None:
        raise NotImplementedError

    @classmethod
    def restore(
        cls, ctx: Context, image: Path, tree: dict[str, Entry], work: Path
    ) -> dict[str, Entry]:
        """What the unpacking tool could not restore, read from the image (default: none)."""
        del ctx, image, work
        return tree

    @classmethod
    def compare(cls, ctx: Context, a: Probe, b: Probe, label: str) -> Difference | None:
        children = cls.header(a.head, b.head)
        comments: list[str] = []
        summary = ""
        try:
            roots = []
            for probe in (a, b):
                root = ctx.scratch(cls.name) / "root"
                cls.unpack(ctx, probe.path, root)
                files = tree_from_directory(root, symlink_times=False)
                # The tools restore the image root's mode and owner onto the
                # directory they unpack into, but not always its time.
                files[""] = replace(files[""], mtime=None)
                roots.append(cls.restore(ctx, probe.path, files, root.parent))
            tree = compare_trees(ctx, roots[0], roots[1], label, cls.name)
            if tree is not None:
                children.extend(tree.children)
                summary = tree.summary
            elif not children:
                summary = f"same files, other bytes ({_bytes_summary(a.path, b.path)})"
            if os.geteuid() != 0:
                comments.append("not running as root: owners were not restored, so not compared")
        except ToolProblem as exc:
            comments.append(str(exc))
            if not children:
                summary = f"content differs ({_bytes_summary(a.path, b.path)})"
        n = len(children)
        return Difference(
            label,
            cls.name,
            summary or f"{n} difference{'s' if n != 1 else ''}",
            children=tuple(children),
            comments=tuple(comments),
        )


class Iso9660(UnpackedImage):
    """ISO 9660: volume descriptor fields, then the files via ``xorriso -extract``.

    The whole image is unpacked (xorriso restores modes, times and, as root,
    owners): with no MD5s recorded there is no cheaper way to know which
    files changed.
    """

    name = "iso9660"
    order = 40
    _PVD: Final = 16 * 2048
    _FIELDS: Final = (
        ("system id", 8, 40),
        ("volume id", 40, 72),
        ("volume set id", 190, 318),
        ("publisher", 318, 446),
        ("preparer", 446, 574),
        ("application", 574, 702),
        ("creation date", 813, 830),
        ("modification date", 830, 847),
        ("expiration date", 847, 864),
        ("effective date", 864, 881),
    )

    @classmethod
    def recognizes(cls, probe: Probe) -> bool:
        return probe.head[cls._PVD + 1 : cls._PVD + 6] == b"CD001"

    @classmethod
    def header(cls, a: bytes, b: bytes) -> list[Difference]:
        pa, pb = a[cls._PVD :], b[cls._PVD :]
        return [
            Difference(
                f"volume descriptor: {what}",
                "field",
                f"{_ascii(pa[s:e])} vs {_ascii(pb[s:e])}",
            )
            for what, s, e in cls._FIELDS
            if pa[s:e] != pb[s:e]
        ]

    @classmethod
    def unpack(cls, ctx: Context, image: Path, dest: Path) -> None:
        ctx.run(
            [
                "xorriso",
                "-no_rc",
                "-osirrox",
                "on",
                "-indev",
                str(image),
                "-extract",
                "/",
                str(dest),
            ],
            what="files inside the ISO image are not compared",
        )

    @classmethod
    def restore(
        cls, ctx: Context, image: Path, tree: dict[str, Entry], work: Path
    ) -> dict[str, Entry]:
        """xorriso does not restore the owners of symbolic links; its listing has them."""
        from reprobuild.diff.isometa import restore_iso_metadata

        return restore_iso_metadata(ctx, image, tree)


def _ascii(raw: bytes) -> str:
    return repr(raw.rstrip(b" \0").decode("ascii", "backslashreplace"))


_EXT4_FIELDS: Final = (
    ("uuid", 0x68, 16, "uuid"),
    ("volume name", 0x78, 16, "str"),
    ("last mounted", 0x88, 64, "str"),
    ("hash seed", 0xEC, 16, "uuid"),
    ("mkfs time", 0x108, 4, "int"),
    ("write time", 0x30, 4, "int"),
    ("mount time", 0x2C, 4, "int"),
    ("last check", 0x40, 4, "int"),
    ("inodes", 0x0, 4, "int"),
    ("blocks", 0x4, 4, "int"),
    ("free blocks", 0xC, 4, "int"),
    ("free inodes", 0x10, 4, "int"),
)


def _sb_value(raw: bytes, kind: str) -> str:
    if kind == "uuid":
        return str(uuid.UUID(bytes=raw))
    if kind == "str":
        return repr(raw.rstrip(b"\0").decode("utf-8", "replace"))
    return str(int.from_bytes(raw, "little"))


class Ext4(UnpackedImage):
    """An ext2/3/4 file system: superblock fields, then ``debugfs rdump``."""

    name = "ext4"
    order = 40

    @classmethod
    def recognizes(cls, probe: Probe) -> bool:
        return probe.head[1080:1082] == b"\x53\xef"

    @classmethod
    def header(cls, a: bytes, b: bytes) -> list[Difference]:
        sa, sb = a[1024:2048], b[1024:2048]
        out = []
        for what, off, size, kind in _EXT4_FIELDS:
            va, vb = _sb_value(sa[off : off + size], kind), _sb_value(sb[off : off + size], kind)
            if va != vb:
                out.append(Difference(f"superblock: {what}", "field", f"{va} vs {vb}"))
        return out

    @classmethod
    def unpack(cls, ctx: Context, image: Path, dest: Path) -> None:
        dest.mkdir()
        ctx.run(
            ["debugfs", "-R", f"rdump / {dest}", str(image)],
            what="files inside the ext4 file system are not compared",
        )

    @classmethod
    def restore(
        cls, ctx: Context, image: Path, tree: dict[str, Entry], work: Path
    ) -> dict[str, Entry]:
        """rdump drops setuid/setgid bits, symlink owners and extended attributes."""
        from reprobuild.diff.ext4meta import restore_ext4_metadata

        return restore_ext4_metadata(ctx, image, tree, work)


class Squashfs(UnpackedImage):
    """squashfs: superblock fields, then ``unsquashfs -d``."""

    name = "squashfs"
    order = 40

    @classmethod
    def recognizes(cls, probe: Probe) -> bool:
        return probe.head[:4] == b"hsqs"

    @classmethod
    def header(cls, a: bytes, b: bytes) -> list[Difference]:
        out = []
        for what, off, size in (("mkfs time", 8, 4), ("block size", 12, 4), ("compression", 20, 2)):
            va = int.from_bytes(a[off : off + size], "little")
            vb = int.from_bytes(b[off : off + size], "little")
            if va != vb:
                out.append(Difference(f"superblock: {what}", "field", f"{va} vs {vb}"))
        return out

    @classmethod
    def unpack(cls, ctx: Context, image: Path, dest: Path) -> None:
        ctx.run(
            ["unsquashfs", "-no-progress", "-d", str(dest), str(image)],
            what="files inside the squashfs image are not compared",
        )


def _gpt(path: Path) -> tuple[str, list[dict[str, object]]]:
    """Disk GUID and partition entries, parsed in Python (no tool needed)."""
    with open(path, "rb") as f:
        f.seek(_SECTOR)
        header = f.read(92)
        if header[:8] != b"EFI PART":
            raise ValueError("no GPT header at LBA 1")
        disk_guid = str(uuid.UUID(bytes_le=header[56:72])).upper()
        entries_lba, count, size = struct.unpack_from("<QII", header, 72)
        if not 0 < size <= 4096 or count > 4096:
            raise ValueError("implausible GPT partition entry array")
        f.seek(entries_lba * _SECTOR)
        raw = f.read(count * size)
    parts: list[dict[str, object]] = []
    for i in range(count):
        e = raw[i * size : (i + 1) * size]
        if len(e) < 128 or e[:16] == b"\0" * 16:
            continue
        first, last, attrs = struct.unpack_from("<QQQ", e, 32)
        parts.append(
            {
                "number": i + 1,
                "type": str(uuid.UUID(bytes_le=e[:16])).upper(),
                "uuid": str(uuid.UUID(bytes_le=e[16:32])).upper(),
                "start": first,
                "sectors": last - first + 1,
                "attributes": attrs,
                "name": e[56:128].decode("utf-16-le", "replace").rstrip("\0"),
            }
        )
    return disk_guid, parts


def _sparse_copy(ctx: Context, src: Path, offset: int, length: int) -> Path:
    """Copy a partition out of a disk image, leaving holes where it is all zeros."""
    out = ctx.scratch("partition") / "data"
    zero = bytes(_CHUNK)
    with open(src, "rb") as f, open(out, "wb") as g:
        f.seek(offset)
        left = length
        while left:
            chunk = f.read(min(left, _CHUNK))
            if not chunk:
                break
            if chunk == zero[: len(chunk)]:
                g.seek(len(chunk), os.SEEK_CUR)
            else:
                g.write(chunk)
            left -= len(chunk)
        g.truncate(length)
    return out


class GptDisk(Format):
    """A raw disk with a GPT: the table by field (``sfdisk --dump`` as a diff), then partitions."""

    name = "GPT disk"
    order = 40

    @classmethod
    def recognizes(cls, probe: Probe) -> bool:
        return probe.head[_SECTOR : _SECTOR + 8] == b"EFI PART"

    @classmethod
    def _dump(cls, ctx: Context, path: Path) -> str:
        text = ctx.run(["sfdisk", "--dump", str(path)], what="no sfdisk --dump diff").decode()
        return text.replace(str(path), "disk")

    @classmethod
    def compare(cls, ctx: Context, a: Probe, b: Probe, label: str) -> Difference | None:
        guid_a, parts_a = _gpt(a.path)
        guid_b, parts_b = _gpt(b.path)
        table = json_fields(
            {"disk guid": guid_a, "partitions": parts_a},
            {"disk guid": guid_b, "partitions": parts_b},
        )
        comments: list[str] = []
        children: list[Difference] = []
        if table:
            dump = None
            try:
                dump = unified(cls._dump(ctx, a.path), cls._dump(ctx, b.path))
            except ToolProblem as exc:
                comments.append(str(exc))
            children.append(
                Difference(
                    "partition table", "gpt", f"{len(table)} fields differ", dump, tuple(table)
                )
            )
        by_number = {p["number"]: p for p in parts_b}
        for pa in parts_a:
            pb = by_number.get(pa["number"])
            if pb is None:
                continue
            plabel = f"partition {pa['number']}" + (f" ({pa['name']})" if pa["name"] else "")
            fa = _sparse_copy(
                ctx, a.path, int(str(pa["start"])) * _SECTOR, int(str(pa["sectors"])) * _SECTOR
            )
            fb = _sparse_copy(
                ctx, b.path, int(str(pb["start"])) * _SECTOR, int(str(pb["sectors"])) * _SECTOR
            )
            diff = ctx.compare(Probe.of(fa, plabel), Probe.of(fb, plabel), plabel)
            if diff is not None:
                children.append(diff.relabel(plabel))
        if not children:
            children.append(Difference("disk", "binary", _bytes_summary(a.path, b.path)))
        return Difference(
            label,
            "disk",
            f"{len(children)} differences",
            children=tuple(children),
            comments=tuple(comments),
        )


# --------------------------------------------------------------------------
# Leaves: ELF, structured text, text, bytes
# --------------------------------------------------------------------------


class Elf(Format):
    """ELF objects: build-ID notes and differing sections, parsed in Python."""

    name = "ELF"
    order = 60
    leaf = True

    @classmethod
    def recognizes(cls, probe: Probe) -> bool:
        return elf.is_elf(probe.head)

    @classmethod
    def compare(cls, ctx: Context, a: Probe, b: Probe, label: str) -> Difference | None:
        return elf.compare_elf(a.path, b.path, label)


_FIELD_FILES: Final = {"control": "deb822", ".PKGINFO": "pkginfo", ".BUILDINFO": "pkginfo"}


class ControlFields(Format):
    """Package metadata (``control``, ``.PKGINFO``, ``.BUILDINFO``): per field, then a diff."""

    name = "package fields"
    order = 70
    leaf = True

    @classmethod
    def recognizes(cls, probe: Probe) -> bool:
        return probe.name in _FIELD_FILES and not probe.is_dir and b"\0" not in probe.head

    @classmethod
    def compare(cls, ctx: Context, a: Probe, b: Probe, label: str) -> Difference | None:
        ta, tb = _read_text(a.path), _read_text(b.path)
        if ta is None or tb is None:
            return Binary.compare(ctx, a, b, label)
        if _FIELD_FILES[a.name] == "deb822":
            fields = field_differences(parse_deb822(ta), parse_deb822(tb))
        else:
            fields = field_differences(parse_pkginfo(ta), parse_pkginfo(tb))
        names = ", ".join(f.source for f in fields) or "formatting only"
        return Difference(
            label, "fields", f"content differs (fields {names})", unified(ta, tb), tuple(fields)
        )


class Json(Format):
    """A ``.json`` file: changed fields by path, and a diff of the text."""

    name = "JSON"
    order = 70
    leaf = True

    @classmethod
    def recognizes(cls, probe: Probe) -> bool:
        return probe.name.endswith(".json") and probe.head.lstrip()[:1] in (b"{", b"[")

    @classmethod
    def compare(cls, ctx: Context, a: Probe, b: Probe, label: str) -> Difference | None:
        ta, tb = _read_text(a.path), _read_text(b.path)
        if ta is None or tb is None:
            return Binary.compare(ctx, a, b, label)
        fields = json_fields(json.loads(ta), json.loads(tb))
        names = ", ".join(f.source for f in fields[:5]) + (", ..." if len(fields) > 5 else "")
        return Difference(
            label,
            "json-file",
            f"content differs (JSON {names or 'formatting only'})",
            unified(ta, tb),
            tuple(fields),
        )


class Text(Format):
    """UTF-8 text without NUL bytes: a bounded unified diff."""

    name = "text"
    order = 80
    leaf = True

    @classmethod
    def recognizes(cls, probe: Probe) -> bool:
        if probe.is_dir or b"\0" in probe.head:
            return False
        try:
            probe.head.decode("utf-8")
        except UnicodeDecodeError as exc:  # a multi-byte character cut at the end is fine
            return exc.start >= len(probe.head) - 3
        return True

    @classmethod
    def compare(cls, ctx: Context, a: Probe, b: Probe, label: str) -> Difference | None:
        ta, tb = _read_text(a.path), _read_text(b.path)
        if ta is None or tb is None:
            return Binary.compare(ctx, a, b, label)
        return Difference(label, "text", "content differs (text)", unified(ta, tb))


class Binary(Format):
    """Anything else: sizes and the first differing offset."""

    name = "binary"
    order = 100
    leaf = True

    @classmethod
    def recognizes(cls, probe: Probe) -> bool:
        return not probe.is_dir

    @classmethod
    def compare(cls, ctx: Context, a: Probe, b: Probe, label: str) -> Difference | None:
        return Difference(
            label, "binary", f"content differs (binary, {_bytes_summary(a.path, b.path)})"
        )
