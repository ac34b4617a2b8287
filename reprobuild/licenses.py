"""Package licenses from Debian's machine-readable ``debian/copyright`` (DEP-5).

A package installs its copyright file as ``/usr/share/doc/NAME/copyright``;
when it starts with ``Format: .../copyright-format/1.0/`` its ``License:``
fields name the licenses with Debian's short names, which map onto SPDX
identifiers. A package whose file is free-form, or names a license SPDX does
not know, gets no SPDX expression (NOASSERTION), never a guess; the short
names are still reported (CycloneDX takes them as names).
"""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

# Debian short names (copyright-format 1.0, "License specification") -> SPDX ids.
_SPDX = {
    "apache-2.0": "Apache-2.0",
    "artistic": "Artistic-1.0-Perl",
    "artistic-2.0": "Artistic-2.0",
    "bsd-2-clause": "BSD-2-Clause",
    "bsd-3-clause": "BSD-3-Clause",
    "bsd-4-clause": "BSD-4-Clause",
    "cc0-1.0": "CC0-1.0",
    "expat": "MIT",
    "mit": "MIT",
    "isc": "ISC",
    "mpl-1.1": "MPL-1.1",
    "mpl-2.0": "MPL-2.0",
    "zlib": "Zlib",
    "python-2.0": "Python-2.0",
    "public-domain": None,  # not a license expression in SPDX
    "ofl-1.1": "OFL-1.1",
    "curl": "curl",
    "openssl": "OpenSSL",
    "unicode-dfs-2016": "Unicode-DFS-2016",
    "x11": "X11",
    "sleepycat": "Sleepycat",
    "zpl-2.1": "ZPL-2.1",
    "ftl": "FTL",
    "unlicense": "Unlicense",
    "wtfpl": "WTFPL",
    "psf-2": "PSF-2.0",
}
_FAMILIES = {"gpl": "GPL", "lgpl": "LGPL", "agpl": "AGPL", "gfdl": "GFDL"}
_VERSIONED = re.compile(r"^(gpl|lgpl|agpl|gfdl)-(\d(?:\.\d)?)(\+)?$")
FORMAT_MARK = "copyright-format/1.0"


@dataclass(frozen=True)
class PackageLicense:
    names: tuple[str, ...]  # Debian short names, as written, sorted
    spdx: str | None  # an SPDX expression when every name maps, else None


def spdx_id(short: str) -> str | None:
    """An SPDX identifier for one Debian short name (``GPL-2+`` -> ``GPL-2.0-or-later``)."""
    key = short.strip().lower()
    if key in _SPDX:
        return _SPDX[key]
    m = _VERSIONED.match(key)
    if m is None:
        return None
    family, version, plus = _FAMILIES[m.group(1)], m.group(2), m.group(3)
    if "." not in version:
        version += ".0"
    if family == "LGPL" and version not in ("2.0", "2.1", "3.0"):
        return None
    return f"{family}-{version}-{'or-later' if plus else 'only'}"


def _field_expression(first_line: str) -> tuple[list[str], str | None]:
    """A License field's short names and its SPDX expression (``GPL-2+ or Artistic``
    -> ``(GPL-2.0-or-later OR Artistic-1.0-Perl)``); None if a name does not map.
    Exceptions (``with ... exception``) are left out of the expression's reach:
    the field then gets no SPDX expression."""
    if re.search(r"\bwith\b", first_line, flags=re.I):
        listed = [t.strip() for t in re.split(r"\s+(?:or|and)\s+|,", first_line) if t.strip()]
        return listed, None
    parts = re.split(r"\s+(or|and)\s+|\s*,\s*", first_line.strip(), flags=re.I)
    names: list[str] = []
    out: list[str] = []
    for i, part in enumerate(parts):
        if part is None or not part.strip():
            continue
        if i % 2 == 1:
            out.append(part.upper())
            continue
        names.append(part.strip())
        out.append(spdx_id(part) or "")
    if any(x == "" for x in out) or not names:
        return names, None
    # A comma lists alternatives of equal standing only loosely: treat it as AND.
    fixed: list[str] = []
    for t in out:
        if fixed and t not in ("OR", "AND") and fixed[-1] not in ("OR", "AND"):
            fixed.append("AND")
        fixed.append(t)
    expr = " ".join(fixed)
    return names, f"({expr})" if len(names) > 1 else expr


def parse_copyright(text: str) -> PackageLicense | None:
    """The licenses of a DEP-5 copyright file (None if it is not machine-readable)."""
    if FORMAT_MARK not in text.split("\n\n", 1)[0]:
        return None
    names: set[str] = set()
    exprs: set[str] = set()
    unmapped = False
    for line in text.splitlines():
        if line.lower().startswith("license:"):
            first = line.split(":", 1)[1].strip()
            if not first:
                continue
            field_names, expr = _field_expression(first)
            names.update(field_names)
            if expr is None:
                unmapped = True
            else:
                exprs.add(expr)
    if not names:
        return None
    spdx = None if unmapped or not exprs else " AND ".join(sorted(exprs))
    return PackageLicense(tuple(sorted(names)), spdx)


def from_deb(path: Path, name: str) -> PackageLicense | None:
    """Read ``usr/share/doc/NAME/copyright`` out of a .deb's data.tar."""
    from reprobuild.archives.debian.unpack import decompressed_data, read_deb

    try:
        data = decompressed_data(read_deb(path), limit=512 << 20)
    except Exception:  # a package reprobuild cannot read has no license to report
        return None
    if data is None:
        return None
    import io

    wanted = {f"./usr/share/doc/{name}/copyright", f"usr/share/doc/{name}/copyright"}
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            for member in t:
                if member.name in wanted and member.isfile() and member.size < (1 << 20):
                    f = t.extractfile(member)
                    if f is not None:
                        return parse_copyright(f.read().decode("utf-8", "replace"))
    except tarfile.TarError:
        return None
    return None
