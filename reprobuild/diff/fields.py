"""Field-by-field differences of structured documents (JSON, control files).

A changed digest in an OCI manifest or a changed ``Version:`` in a Debian
control file is one line a human can act on; a unified diff of minified
JSON is not. These helpers turn two parsed documents into one
:class:`Difference` per changed field, named by its path (``config.Env``,
``rootfs.diff_ids[1]``).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Final

from reprobuild.diff.model import Difference

__all__ = [
    "MAX_DIFF_LINES",
    "json_fields",
    "parse_deb822",
    "parse_pkginfo",
    "unified",
]

MAX_DIFF_LINES: Final = 400
_MAX_VALUE: Final = 160


def _dump(value: object) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 3] + "..."


def _scalar(value: object) -> bool:
    return not isinstance(value, dict | list)


def _field(path: str, summary: str) -> Difference:
    return Difference(path, "field", summary)


def json_fields(a: object, b: object, path: str = "") -> list[Difference]:
    """One difference per changed leaf.

    Lists of scalars (``Env``, ``Entrypoint``) read best as removed/added
    items; lists of digests (``diff_ids``) are ordered, so by position.
    """
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[Difference] = []
        for key in sorted(a.keys() | b.keys()):
            sub = f"{path}.{key}" if path else str(key)
            if key not in b:
                out.append(_field(sub, f"removed (was {_dump(a[key])})"))
            elif key not in a:
                out.append(_field(sub, f"added ({_dump(b[key])})"))
            else:
                out.extend(json_fields(a[key], b[key], sub))
        return out
    if isinstance(a, list) and isinstance(b, list) and a != b:
        digests = all(isinstance(x, str) and x.startswith("sha256:") for x in (*a, *b))
        if all(_scalar(x) for x in (*a, *b)) and not (digests and len(a) == len(b)):
            gone = [x for x in a if x not in b]
            new = [x for x in b if x not in a]
            if not gone and not new:
                return [_field(path, f"order differs: {_dump(a)} vs {_dump(b)}")]
            parts = []
            if gone:
                parts.append(f"removed {_dump(gone)}")
            if new:
                parts.append(f"added {_dump(new)}")
            return [_field(path, ", ".join(parts))]
        if len(a) == len(b):
            out = []
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                out.extend(json_fields(x, y, f"{path}[{i}]"))
            return out
        return [_field(path, f"{len(a)} vs {len(b)} items: {_dump(a)} vs {_dump(b)}")]
    if a != b or type(a) is not type(b):
        return [_field(path or "(value)", f"{_dump(a)} vs {_dump(b)}")]
    return []


def parse_deb822(text: str) -> dict[str, str]:
    """``Key: value`` paragraphs with continuation lines (first paragraph wins a key)."""
    fields: dict[str, str] = {}
    key: str | None = None
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and key is not None:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip()
            if key in fields:
                key = None  # a later paragraph: keep the first
                continue
            fields[key] = value.strip()
        else:
            key = None
    return fields


def parse_pkginfo(text: str) -> dict[str, list[str]]:
    """pacman's ``key = value`` lines (.PKGINFO, .BUILDINFO); keys may repeat."""
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("#") or " = " not in line:
            continue
        key, _, value = line.partition(" = ")
        fields.setdefault(key.strip(), []).append(value)
    return fields


def field_differences(a: Mapping[str, object], b: Mapping[str, object]) -> list[Difference]:
    """Changed, added and removed keys of two flat field maps."""
    out: list[Difference] = []
    for key in sorted(a.keys() | b.keys()):
        va, vb = a.get(key), b.get(key)
        if va == vb:
            continue
        if va is None:
            out.append(_field(key, f"added ({_dump(vb)})"))
        elif vb is None:
            out.append(_field(key, f"removed (was {_dump(va)})"))
        elif isinstance(va, list) and isinstance(vb, list):
            out.extend(json_fields(va, vb, key))
        else:
            out.append(_field(key, f"{_dump(va)} vs {_dump(vb)}"))
    return out


def unified(a: str, b: str, name_a: str = "a", name_b: str = "b") -> str:
    """A ``diff -u`` body bounded to :data:`MAX_DIFF_LINES` lines."""
    lines = list(
        difflib.unified_diff(
            a.splitlines(), b.splitlines(), fromfile=name_a, tofile=name_b, lineterm="", n=3
        )
    )[2:]  # the ---/+++ header repeats the label
    if len(lines) > MAX_DIFF_LINES:
        more = len(lines) - MAX_DIFF_LINES
        lines = [*lines[:MAX_DIFF_LINES], f"[ {more} more lines not shown ]"]
    return "\n".join(lines)
