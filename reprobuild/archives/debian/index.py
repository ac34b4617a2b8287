"""Debian archives: signed ``InRelease``, checked ``Packages`` indexes, dpkg versions.

Trust flows one way: the archive keyring vouches for ``InRelease`` (checked
with ``gpgv``), whose SHA256 list vouches for each ``Packages`` file, whose
entries vouch for each ``.deb``. Nothing is used before the link above it has
been checked, and only the signed text of ``InRelease`` is ever parsed.
"""

from __future__ import annotations

import gc
import hashlib
import lzma
import re
import shutil
import subprocess
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cached_property, lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Literal

from reprobuild.archives.debian.versions import (
    DebianVersion,
    compare_debian_versions,
    parse_debian_version,
    validate_debian_version,
)
from reprobuild.archives.signature import Signer, verify_clearsigned
from reprobuild.errors import ArchiveError, IntegrityError

__all__ = [
    "BinaryPackage",
    "DebianVersion",
    "IndexEntry",
    "Relation",
    "RelationField",
    "Release",
    "VerifiedRelease",
    "check_index",
    "compare_versions",
    "decompress_index",
    "packages_index_candidates",
    "parse_debian_version",
    "parse_packages",
    "parse_relations",
    "parse_release",
    "read_packages",
    "validate_debian_version",
    "verify_inrelease",
]

compare_versions = compare_debian_versions
"""dpkg's version order (-1/0/1); the name the rest of reprobuild uses."""


# --------------------------------------------------------------------------
# Release / InRelease
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexEntry:
    """One line of a Release file's SHA256 list: a path below ``dists/SUITE/``."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Release:
    """The fields of a (signed) Release file that reprobuild relies on."""

    suite: str
    codename: str
    date: datetime
    valid_until: datetime | None
    architectures: tuple[str, ...]
    components: tuple[str, ...]
    sha256: tuple[IndexEntry, ...]
    origin: str | None = None
    label: str | None = None
    version: str | None = None
    acquire_by_hash: bool = False

    @cached_property
    def _by_path(self) -> dict[str, IndexEntry]:
        return {e.path: e for e in self.sha256}

    def entry(self, path: str) -> IndexEntry | None:
        """The SHA256 entry for ``path`` (relative to the suite directory), if listed."""
        return self._by_path.get(path)


@dataclass(frozen=True)
class VerifiedRelease:
    """A Release whose signature checked out, with what a lockfile records about it."""

    release: Release
    signers: tuple[Signer, ...]
    file_sha256: str
    signed_text: bytes

    @property
    def fingerprint(self) -> str:
        """Primary-key fingerprint of the first good signature (what lockfiles record)."""
        return self.signers[0].primary_fingerprint


def _deb822_fields(text: str, what: str) -> dict[str, str]:
    """Fields of a single deb822 paragraph; continuation lines keep their newlines."""
    out: dict[str, str] = {}
    key: str | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            if out:
                break
            continue
        if line[0] in " \t":
            if key is None:
                raise ArchiveError(f"{what}:{lineno}: continuation line before any field")
            out[key] += "\n" + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep or not name:
            raise ArchiveError(f"{what}:{lineno}: expected 'Field: value', got {line[:60]!r}")
        key = name.strip().lower()
        out[key] = value.strip()
    return out


def _parse_date(value: str, field: str, what: str) -> datetime:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError) as exc:
        raise ArchiveError(f"{what}: cannot parse {field} {value!r}") from exc
    # Naive means "-0000" (RFC 5322: UTC, origin unknown); compare in UTC.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_release(text: str, *, what: str = "Release") -> Release:
    """Parse the text of a Release file (already verified: pass signed text only)."""
    f = _deb822_fields(text, what)
    if "date" not in f:
        raise ArchiveError(f"{what}: no Date field")
    if "suite" not in f and "codename" not in f:
        raise ArchiveError(f"{what}: neither Suite nor Codename is set")
    date = _parse_date(f["date"], "Date", what)
    valid_until_text = f.get("valid-until")
    valid_until = _parse_date(valid_until_text, "Valid-Until", what) if valid_until_text else None
    entries: list[IndexEntry] = []
    for lineno, line in enumerate(f.get("sha256", "").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or not parts[1].isdigit() or len(parts[0]) != 64:
            raise ArchiveError(f"{what}: malformed SHA256 entry {lineno}: {line!r}")
        entries.append(IndexEntry(parts[2], int(parts[1]), parts[0].lower()))
    if not entries:
        raise ArchiveError(
            f"{what}: no SHA256 list",
            hint="reprobuild refuses MD5/SHA1-only archives; indexes could not be checked",
        )
    return Release(
        suite=f.get("suite", f.get("codename", "")),
        codename=f.get("codename", f.get("suite", "")),
        date=date,
        valid_until=valid_until,
        architectures=tuple(f.get("architectures", "").split()),
        components=tuple(f.get("components", "").split()),
        sha256=tuple(entries),
        origin=f.get("origin"),
        label=f.get("label"),
        version=f.get("version"),
        acquire_by_hash=f.get("acquire-by-hash", "no").lower() == "yes",
    )


def verify_inrelease(
    data: bytes,
    keyring: Path,
    *,
    what: str = "InRelease",
    allow_expired_keys: bool = False,
) -> VerifiedRelease:
    """Check an InRelease file's signature and parse only its signed part.

    Dates are checked separately by :func:`check_dates`, which needs to know
    when the snapshot was taken and whether an expired Release is accepted.
    """
    verified = verify_clearsigned(data, keyring, what=what, allow_expired_keys=allow_expired_keys)
    try:
        text = verified.text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ArchiveError(f"{what}: signed text is not UTF-8") from exc
    return VerifiedRelease(
        release=parse_release(text, what=what),
        signers=verified.signers,
        file_sha256=hashlib.sha256(data).hexdigest(),
        signed_text=verified.text,
    )


def _span(seconds: float) -> str:
    """apt's way of saying how long: ``7d 2h 5min 3s``."""
    s = int(abs(seconds))
    parts = [(s // 86400, "d"), (s // 3600 % 24, "h"), (s // 60 % 60, "min"), (s % 60, "s")]
    shown = [f"{n}{unit}" for n, unit in parts if n]
    return " ".join(shown) or "0s"


def check_dates(
    release: Release,
    *,
    now: datetime,
    taken: datetime | None = None,
    allow_expired: bool = False,
    what: str = "InRelease",
) -> None:
    """Refuse a Release that is not valid now, as apt does, and one that does
    not belong to the snapshot it was served as.

    apt refuses a Release whose ``Date`` lies in the future ("not valid yet")
    and one whose ``Valid-Until`` has passed ("expired"); the latter protects
    against a mirror replaying an old, signed Release to hide security
    updates. A dated snapshot is old on purpose, so ``allow_expired`` accepts
    a Release that expired since (apt: ``Acquire::Check-Valid-Until=false``).
    Even then it must have been valid when the snapshot was ``taken``: a
    Release that had already expired, or was not yet written, at the
    snapshot's time is a stale or foreign file served under that date.
    """
    stamp = "%a, %d %b %Y %H:%M:%S UTC"
    if release.date > now:
        ahead = _span((release.date - now).total_seconds())
        raise ArchiveError(
            f"{what} is not valid yet (invalid for another {ahead}): "
            f"its Date is {release.date.strftime(stamp)}",
            hint="check this machine's clock; a Release from the future is never accepted",
        )
    if taken is not None and release.date > taken:
        raise ArchiveError(
            f"{what} is dated {release.date.strftime(stamp)}, after the snapshot it was served as "
            f"({taken.strftime(stamp)}): the mirror serves another snapshot under this date",
            hint="check the --mirror URL; a snapshot cannot contain a Release written after it",
        )
    if release.valid_until is None:
        return
    if taken is not None and release.valid_until < taken:
        raise ArchiveError(
            f"{what} had already expired when the snapshot was taken (invalid since "
            f"{release.valid_until.strftime(stamp)}, snapshot {taken.strftime(stamp)}): "
            "a stale Release was served under this date",
            hint="this is refused even with --allow-expired; check the mirror",
        )
    if release.valid_until < now and not allow_expired:
        raise ArchiveError(
            f"{what} is expired (invalid since {release.valid_until.strftime(stamp)}, "
            f"{_span((now - release.valid_until).total_seconds())} ago)",
            hint="a dated snapshot is old on purpose: pass --allow-expired (or set "
            "REPROBUILD_ALLOW_EXPIRED=1) to accept a Release that expired after the snapshot "
            "was taken, as apt's Acquire::Check-Valid-Until=false does",
        )


def check_index(release: Release, path: str, data: bytes, *, what: str | None = None) -> None:
    """Refuse ``data`` unless its size and sha256 match the Release entry for ``path``."""
    what = what or path
    entry = release.entry(path)
    if entry is None:
        raise ArchiveError(
            f"{what}: {path} is not listed in the Release file of {release.suite}",
            hint="check the component and architecture names of the archive",
        )
    actual = hashlib.sha256(data).hexdigest()
    if len(data) != entry.size or actual != entry.sha256:
        raise IntegrityError(
            f"{what}: sha256 {actual} ({len(data)} bytes) does not match "
            f"{entry.sha256} ({entry.size} bytes) listed in the signed Release",
            hint="the mirror served a damaged or different file; fetch it again",
        )


_COMPRESSIONS: tuple[tuple[str, str], ...] = ((".xz", "xz"), (".gz", "gz"), ("", "plain"))


def packages_index_candidates(
    release: Release, component: str, architecture: str
) -> tuple[IndexEntry, ...]:
    """The Packages files of one component/architecture listed in the Release, best first.

    Order: ``.xz``, then ``.gz``, then uncompressed, as the design asks.
    """
    base = f"{component}/binary-{architecture}/Packages"
    found = tuple(e for suffix, _ in _COMPRESSIONS if (e := release.entry(base + suffix)))
    if not found:
        raise ArchiveError(
            f"{release.suite}: no Packages index for {component}/{architecture}",
            hint=f"the Release lists components {', '.join(release.components)} and "
            f"architectures {', '.join(release.architectures)}",
        )
    return found


def _compression_of(name: str) -> str:
    for suffix, kind in _COMPRESSIONS:
        if suffix and name.endswith(suffix):
            return kind
    return "plain"


def _iter_decompressed(data: bytes, kind: str, what: str) -> Iterator[bytes]:
    """Yield the decompressed bytes in chunks so parsing overlaps decompression.

    xz goes through the ``xz`` program when present: it decompresses Debian's
    multi-block files on several threads in another process while Python
    parses, which halves the wall time against the in-process ``lzma`` module.
    """
    chunk = _CHUNK
    if kind == "plain":
        yield from _rechunk(data)
        return
    if kind == "gz":
        d = zlib.decompressobj(wbits=47)
        try:
            buf = data
            while buf:
                yield d.decompress(buf, chunk)
                buf = d.unconsumed_tail
            yield d.flush()
        except zlib.error as exc:
            raise ArchiveError(f"{what}: corrupt gzip data: {exc}") from exc
        return
    xz = shutil.which("xz")
    if xz is None:
        try:
            yield lzma.decompress(data)
        except lzma.LZMAError as exc:
            raise ArchiveError(f"{what}: corrupt xz data: {exc}") from exc
        return
    proc = subprocess.Popen(
        [xz, "--decompress", "--stdout", "--threads=0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stdin = proc.stdin

    def feed() -> None:
        try:
            stdin.write(data)
        except BrokenPipeError:
            pass
        finally:
            stdin.close()

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        while out := proc.stdout.read(chunk):
            yield out
    finally:
        proc.stdout.close()
        writer.join()
        err = proc.stderr.read().decode(errors="replace").strip()
        proc.stderr.close()
        rc = proc.wait()
    if rc != 0:
        raise ArchiveError(f"{what}: corrupt xz data: {err or f'xz exited {rc}'}")


def decompress_index(name: str, data: bytes) -> bytes:
    """Decompress an index by its file name (``.xz``, ``.gz`` or none)."""
    return b"".join(_iter_decompressed(data, _compression_of(name), name))


# --------------------------------------------------------------------------
# Relations
# --------------------------------------------------------------------------

_OPS = {"<<": "<<", "<=": "<=", "=": "=", ">=": ">=", ">>": ">>", "<": "<=", ">": ">="}


@dataclass(frozen=True, slots=True)
class Relation:
    """One alternative of a relation field: ``name[:arch] [(op version)] [[archs]]``.

    The obsolete ``<`` and ``>`` are stored as dpkg reads them (``<=``, ``>=``).
    Architecture restrictions only occur in source packages; build profiles
    (``<...>``) are dropped.
    """

    name: str
    arch: str | None = None
    op: str | None = None
    version: str | None = None
    arch_restrictions: tuple[str, ...] = ()

    def satisfied_by(self, version: str) -> bool:
        """Whether a package (or Provides) at ``version`` meets the version constraint."""
        if self.op is None or self.version is None:
            return True
        c = compare_debian_versions(version, self.version)
        op = self.op
        if op == ">=":
            return c >= 0
        if op == "<=":
            return c <= 0
        if op == "=":
            return c == 0
        if op == ">>":
            return c > 0
        return c < 0

    def __str__(self) -> str:
        text = self.name if self.arch is None else f"{self.name}:{self.arch}"
        if self.op is not None:
            text += f" ({self.op} {self.version})"
        if self.arch_restrictions:
            text += f" [{' '.join(self.arch_restrictions)}]"
        return text


_RELATION_RE = re.compile(
    r"""\s*(?P<name>[A-Za-z0-9][A-Za-z0-9+.\-]*)
        (?::(?P<arch>[A-Za-z0-9\-]+))?\s*
        (?:\(\s*(?P<op><<|<=|>=|>>|<|>|=)\s*(?P<version>[^\s)<>=][^\s)]*)\s*\)\s*)?
        (?:\[(?P<archs>[^\]]*)\]\s*)?
        (?:<[^>]*>\s*)*$""",
    re.VERBOSE,
)


@lru_cache(maxsize=131072)
def parse_relations(text: str) -> tuple[tuple[Relation, ...], ...]:
    """Parse a relation field into AND-ed groups of OR-ed alternatives.

    Cached because the same strings (``libc6 (>= 2.34)``) recur thousands of
    times in one index.
    """
    groups: list[tuple[Relation, ...]] = []
    for group in text.split(","):
        if not group.strip():
            continue
        alts: list[Relation] = []
        for alt in group.split("|"):
            m = _RELATION_RE.match(alt)
            if m is None:
                raise ArchiveError(f"cannot parse package relation {alt.strip()!r} in {text!r}")
            op = m.group("op")
            archs = m.group("archs")
            alts.append(
                Relation(
                    name=m.group("name"),
                    arch=m.group("arch"),
                    op=_OPS[op] if op else None,
                    version=m.group("version"),
                    arch_restrictions=tuple(archs.split()) if archs else (),
                )
            )
        groups.append(tuple(alts))
    return tuple(groups)


# --------------------------------------------------------------------------
# Packages
# --------------------------------------------------------------------------

RelationField = Literal[
    "depends",
    "pre_depends",
    "recommends",
    "provides",
    "conflicts",
    "breaks",
    "replaces",
    "suggests",
    "enhances",
]


@dataclass(frozen=True)
class BinaryPackage:
    """One stanza of a Packages index, reduced to what resolution and fetching need.

    Relation fields keep their text; :meth:`relations` parses them on demand
    (most of the 60,000 stanzas of an index are never looked at closely).
    Fields that resolution and fetching never use (Description, Section,
    Installed-Size, Suggests, Enhances, ...) are not extracted: every extra
    field costs about 5% of the parse time of a full index.
    """

    name: str
    version: str
    architecture: str
    filename: str
    size: int
    sha256: str
    source: str
    source_version: str
    multi_arch: str = "no"
    essential: bool = False
    protected: bool = False
    priority: str | None = None
    depends: str = ""
    pre_depends: str = ""
    recommends: str = ""
    provides: str = ""
    conflicts: str = ""
    breaks: str = ""
    replaces: str = ""
    # Only for apt's provider tie-break (cache order counts names first seen here).
    suggests: str = ""
    enhances: str = ""

    def relations(self, field: RelationField) -> tuple[tuple[Relation, ...], ...]:
        """The named relation field, parsed (see :func:`parse_relations`)."""
        text: str = getattr(self, field)
        return parse_relations(text) if text else ()


_WANTED = (
    "Package|Version|Architecture|Filename|Size|SHA256|Source|Multi-Arch|Essential|"
    "Protected|Priority|Depends|Pre-Depends|Recommends|Provides|Conflicts|Breaks|Replaces|"
    "Suggests|Enhances"
)
# One pass over a whole chunk finds the wanted fields (with continuation lines)
# and, as empty matches, the blank lines between stanzas. Searching for the
# literal "\n" first lets the regex engine skip descriptions at C speed.
_FIELD_RE = re.compile(r"\n(?:(?=\n)|(" + _WANTED + r"):[ \t]*([^\n]*(?:\n[ \t][^\n]*)*))")
_BOUNDARY = ("", "")
_ATTR = {name: name.lower().replace("-", "_") for name in _WANTED.split("|")} | {
    "Package": "name",
    "SHA256": "sha256",
}
_FIELD_OF = {attr: name for name, attr in _ATTR.items()}
_OPTIONAL: dict[str, object] = {
    "source": None,
    "multi_arch": "no",
    "essential": None,
    "protected": None,
    "priority": None,
    "depends": "",
    "pre_depends": "",
    "recommends": "",
    "provides": "",
    "conflicts": "",
    "breaks": "",
    "replaces": "",
    "suggests": "",
    "enhances": "",
}
_REQUIRED = ("name", "version", "architecture", "filename", "size", "sha256")
# Every stanza that has all required fields yields exactly this many keys
# (source_version is added below), so one len() checks them all.
_N_PARSED = len(_OPTIONAL) + len(_REQUIRED)
_new_object = object.__new__
_set_attr = object.__setattr__
_value_of = itemgetter(1)


def _redecode(values: dict[str, object]) -> None:
    """Undo the latin-1 decoding of a chunk for values that were UTF-8."""
    for key, value in values.items():
        if isinstance(value, str) and not value.isascii():
            values[key] = value.encode("latin-1").decode("utf-8", errors="replace")


def _package(f: dict[str, str], utf8: bool, what: str) -> BinaryPackage:
    """Build a BinaryPackage from one stanza's raw fields.

    Bypasses the dataclass ``__init__``: a frozen dataclass sets each field
    through ``object.__setattr__``, which alone costs 0.2 s over a full
    index; filling ``__dict__`` at once builds an identical, equal object.
    """
    v = _OPTIONAL.copy()
    v.update(zip(map(_ATTR.__getitem__, f), f.values(), strict=True))
    if utf8:
        _redecode(v)
    if len(v) != _N_PARSED:
        missing = [k for k in _REQUIRED if k not in v]
        raise ArchiveError(
            f"{what}: stanza of package {v.get('name', '?')} has no "
            f"{', '.join(_FIELD_OF[k] for k in missing)} field"
        )
    try:
        v["size"] = int(v["size"])  # type: ignore[call-overload]
    except ValueError as exc:
        raise ArchiveError(f"{what}: bad size in package {v['name']}: {exc}") from None
    v["essential"] = v["essential"] == "yes"
    v["protected"] = v["protected"] == "yes"
    src = v["source"]
    if src is None:
        v["source"] = v["name"]
        v["source_version"] = v["version"]
    elif src.endswith(")"):  # type: ignore[attr-defined]
        s_name, _, s_ver = src.partition("(")  # type: ignore[attr-defined]
        v["source"] = s_name.rstrip()
        v["source_version"] = s_ver[:-1].strip()
    else:
        v["source_version"] = v["version"]
    pkg: BinaryPackage = _new_object(BinaryPackage)
    _set_attr(pkg, "__dict__", v)
    return pkg


def _parse_block(block: bytes, out: list[BinaryPackage], what: str) -> None:
    """Parse whole stanzas from ``block``.

    The block is decoded as latin-1 (a copy, unlike UTF-8 decoding, and the
    result stays a compact one-byte string the regex scans fast); the few
    values that are not ASCII are decoded again as UTF-8.
    """
    text = block.decode("latin-1")
    flat: list[tuple[str, str]] = _FIELD_RE.findall("\n" + text + "\n\n")
    utf8 = not block.isascii() and not "".join(map(_value_of, flat)).isascii()
    index = flat.index
    append = out.append
    i, n = 0, len(flat)
    while i < n:
        j = index(_BOUNDARY, i)
        if j > i:
            append(_package(dict(flat[i:j]), utf8, what))
        i = j + 1


def _parse_chunks(chunks: Iterable[bytes], what: str) -> list[BinaryPackage]:
    out: list[BinaryPackage] = []
    rest = b""
    # Millions of small tuples would trigger the cyclic GC dozens of times for
    # nothing (nothing here forms cycles); it is re-enabled right after.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for chunk in chunks:
            if b"\r" in chunk:
                chunk = chunk.replace(b"\r\n", b"\n")
            buf = rest + chunk if rest else chunk
            cut = buf.rfind(b"\n\n")
            if cut < 0:
                rest = buf
                continue
            _parse_block(buf[:cut], out, what)
            rest = buf[cut + 2 :]
        if rest.strip():
            _parse_block(rest, out, what)
    finally:
        if gc_was_enabled:
            gc.enable()
    return out


_CHUNK = 1 << 20


def _rechunk(data: bytes) -> Iterator[bytes]:
    """Cut a big buffer into ~1 MiB pieces: parsing stays in CPU cache and the
    temporary match lists stay small, which is about twice as fast."""
    for start in range(0, len(data), _CHUNK):
        yield data[start : start + _CHUNK]


def parse_packages(data: bytes, *, what: str = "Packages") -> tuple[BinaryPackage, ...]:
    """Parse an uncompressed Packages index.

    Field names are matched as the archive writes them (``Package``,
    ``Pre-Depends``...); deb822 allows other capitalisations, which no
    archive software produces.
    """
    return tuple(_parse_chunks(_rechunk(data), what))


def read_packages(
    release: Release, path: str, data: bytes, *, what: str | None = None
) -> tuple[BinaryPackage, ...]:
    """Check a (compressed) Packages file against the Release, then parse it.

    ``path`` is the file's path below the suite directory, for example
    ``main/binary-amd64/Packages.xz``; its suffix picks the decompressor.
    """
    what = what or path
    check_index(release, path, data, what=what)
    return tuple(_parse_chunks(_iter_decompressed(data, _compression_of(path), what), what))
