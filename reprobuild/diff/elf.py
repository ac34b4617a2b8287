"""Just enough ELF to say *why* two binaries differ, without binutils.

The classic causes of a non-reproducible binary are its identifiers: the
GNU build ID (``.note.gnu.build-id``, a hash the linker computes or is
given) and Go's build ID (``.note.go.buildid``, note name ``Go``, type 4).
Naming those, and which sections differ, answers the question in most
cases; a disassembly diff is diffoscope's job (``--diffoscope``).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from reprobuild.diff.model import Difference

__all__ = ["ElfFile", "ElfNote", "compare_elf", "is_elf", "parse_elf"]

ELF_MAGIC: Final = b"\x7fELF"
_SHT_NOTE: Final = 7
_SHT_NOBITS: Final = 8
_NT_GNU_BUILD_ID: Final = 3
_NT_GO_BUILD_ID: Final = 4
_MAX_SECTIONS: Final = 65536


class ElfError(ValueError):
    """The file starts like ELF but its headers do not hold together."""


@dataclass(frozen=True)
class ElfNote:
    section: str
    name: str
    type: int
    desc: bytes

    @property
    def label(self) -> str:
        if self.name == "GNU" and self.type == _NT_GNU_BUILD_ID:
            return ".note.gnu.build-id"
        if self.name == "Go" and self.type == _NT_GO_BUILD_ID:
            return "Go build ID"
        return f"{self.section} note {self.name}/{self.type}"

    @property
    def value(self) -> str:
        if self.name == "Go" and self.type == _NT_GO_BUILD_ID:
            return self.desc.rstrip(b"\0").decode("utf-8", "backslashreplace")
        return self.desc.hex()


@dataclass(frozen=True)
class ElfSection:
    name: str
    type: int
    size: int
    digest: str | None  # None for NOBITS (.bss): no bytes in the file


@dataclass(frozen=True)
class ElfFile:
    bits: int
    endian: str
    machine: int
    elf_type: int
    sections: tuple[ElfSection, ...]
    notes: tuple[ElfNote, ...]


def is_elf(head: bytes) -> bool:
    return head[:4] == ELF_MAGIC and head[4:5] in (b"\x01", b"\x02")


def _notes(section: str, data: bytes, endian: str) -> list[ElfNote]:
    out: list[ElfNote] = []
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from(endian + "III", data, pos)
        pos += 12
        name = data[pos : pos + namesz].rstrip(b"\0").decode("ascii", "replace")
        pos += (namesz + 3) & ~3
        desc = data[pos : pos + descsz]
        pos += (descsz + 3) & ~3
        if len(desc) != descsz:
            break
        out.append(ElfNote(section, name, ntype, desc))
    return out


def parse_elf(path: Path) -> ElfFile:
    """Section table (name, type, size, sha256 of bytes) and every SHT_NOTE note."""
    with open(path, "rb") as f:
        ident = f.read(16)
        if not is_elf(ident):
            raise ElfError("not an ELF file")
        bits = 64 if ident[4] == 2 else 32
        endian = "<" if ident[5] == 1 else ">"
        fmt = endian + ("HHIQQQIHHHHHH" if bits == 64 else "HHIIIIIHHHHHH")
        header = f.read(struct.calcsize(fmt))
        if len(header) != struct.calcsize(fmt):
            raise ElfError("truncated ELF header")
        (
            e_type,
            machine,
            _v,
            _entry,
            _phoff,
            shoff,
            _flags,
            _ehsize,
            _phentsize,
            _phnum,
            shentsize,
            shnum,
            shstrndx,
        ) = struct.unpack(fmt, header)
        if shoff == 0 or shnum == 0:
            return ElfFile(bits, endian, machine, e_type, (), ())
        if shnum > _MAX_SECTIONS or shentsize < (64 if bits == 64 else 40):
            raise ElfError("implausible section header table")
        shfmt = endian + ("IIQQQQIIQQ" if bits == 64 else "IIIIIIIIII")
        f.seek(shoff)
        raw = f.read(shentsize * shnum)
        if len(raw) != shentsize * shnum:
            raise ElfError("truncated section header table")
        headers = [struct.unpack_from(shfmt, raw, i * shentsize) for i in range(shnum)]

        def contents(h: tuple[int, ...]) -> bytes:
            if h[1] == _SHT_NOBITS:
                return b""
            f.seek(h[4])
            return f.read(h[5])

        names = contents(headers[shstrndx]) if shstrndx < shnum else b""
        sections: list[ElfSection] = []
        notes: list[ElfNote] = []
        for h in headers[1:]:
            end = names.find(b"\0", h[0])
            name = names[h[0] : end if end >= 0 else None].decode("utf-8", "backslashreplace")
            data = contents(h)
            digest = None if h[1] == _SHT_NOBITS else hashlib.sha256(data).hexdigest()
            sections.append(ElfSection(name, h[1], h[5], digest))
            if h[1] == _SHT_NOTE:
                notes.extend(_notes(name, data, endian))
    return ElfFile(bits, endian, machine, e_type, tuple(sections), tuple(notes))


def _short(va: str, vb: str) -> tuple[str, str]:
    """Eight characters each, starting where the values diverge if their starts agree."""
    start = 0
    if va[:8] == vb[:8]:
        start = next((i for i, (x, y) in enumerate(zip(va, vb, strict=False)) if x != y), 0)
    out = []
    for v in (va, vb):
        part = v[start : start + 8]
        out.append((".." if start else "") + part + (".." if len(v) > start + 8 else ""))
    return out[0], out[1]


def compare_elf(a: Path, b: Path, label: str) -> Difference:
    """Explain two differing ELF files: identifier notes first, then sections."""
    try:
        ea, eb = parse_elf(a), parse_elf(b)
    except (ElfError, struct.error, OSError) as exc:
        return Difference(
            label, "elf", "content differs (ELF)", comments=(f"cannot parse ELF: {exc}",)
        )
    children: list[Difference] = []
    headline: list[str] = []
    for what, ha, hb in (
        ("class", ea.bits, eb.bits),
        ("machine", ea.machine, eb.machine),
        ("type", ea.elf_type, eb.elf_type),
    ):
        if ha != hb:
            children.append(Difference(f"ELF {what}", "elf-header", f"{ha} vs {hb}"))
    notes_a = {n.label: n for n in ea.notes}
    notes_b = {n.label: n for n in eb.notes}
    for key in sorted(notes_a.keys() | notes_b.keys()):
        na, nb = notes_a.get(key), notes_b.get(key)
        va = na.value if na else "(absent)"
        vb = nb.value if nb else "(absent)"
        if va != vb:
            children.append(Difference(key, "elf-note", f"{va} vs {vb}"))
            if key in (".note.gnu.build-id", "Go build ID"):
                short_a, short_b = _short(va, vb)
                headline.append(f"{key} {short_a} vs {short_b}")
    secs_a = {s.name: s for s in ea.sections}
    secs_b = {s.name: s for s in eb.sections}
    differing: list[str] = []
    for name in [s.name for s in ea.sections] + [
        s.name for s in eb.sections if s.name not in secs_a
    ]:
        sa, sb = secs_a.get(name), secs_b.get(name)
        if sa is None or sb is None:
            children.append(
                Difference(
                    f"section {name}", "elf-section", "only in " + ("B" if sa is None else "A")
                )
            )
            differing.append(name)
        elif (sa.type, sa.size, sa.digest) != (sb.type, sb.size, sb.digest):
            detail = f"{sa.size} vs {sb.size} bytes" if sa.size != sb.size else f"{sa.size} bytes"
            children.append(
                Difference(f"section {name}", "elf-section", f"content differs ({detail})")
            )
            differing.append(name)
    if not headline:
        shown = ", ".join(differing[:5]) + (", ..." if len(differing) > 5 else "")
        headline.append(f"sections {shown}" if differing else "headers or padding")
    return Difference(
        label, "elf", f"content differs (ELF {'; '.join(headline)})", children=tuple(children)
    )
