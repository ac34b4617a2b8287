"""Hand the deepest differing file pair to diffoscope, when asked and installed.

reprobuild explains archives, images and trees itself (it knows the OCI and
layer structure it writes); diffoscope knows a hundred file formats
(disassembly, PDFs, Java classes, ...). Rather than reimplement those, a
leaf pair is passed to ``diffoscope --json -`` and its tree is grafted in,
each node marked ``origin="diffoscope"``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from reprobuild.diff.context import Context, ToolProblem
from reprobuild.diff.fields import MAX_DIFF_LINES
from reprobuild.diff.model import Difference

__all__ = ["MISSING", "run_diffoscope"]

MISSING: Final = (
    "diffoscope is not installed: --diffoscope was ignored (apt-get install diffoscope-minimal)"
)
_MAX_DEPTH: Final = 30


def _stage(src: Path, dest_dir: Path, name: str) -> Path:
    """A copy (or hard link) under the member's own name: diffoscope reads names."""
    dest_dir.mkdir()
    dest = dest_dir / (name.replace("/", "_") or "file")
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)
    return dest


def _bounded(text: str | None) -> str | None:
    if not text:
        return None
    lines = text.splitlines()
    if len(lines) > MAX_DIFF_LINES:
        more = len(lines) - MAX_DIFF_LINES
        lines = [*lines[:MAX_DIFF_LINES], f"[ {more} more lines not shown ]"]
    return "\n".join(lines)


def _convert(node: dict[str, Any], names: tuple[str, str], depth: int) -> Difference:
    s1 = str(node.get("source1", "?")).replace(names[0] + "/", "")
    s2 = str(node.get("source2", "?")).replace(names[1] + "/", "")
    source = s1 if s1 == s2 else f"{s1} vs {s2}"
    comments = tuple(str(c) for c in node.get("comments") or ())
    details = (node.get("details") or ()) if depth < _MAX_DEPTH else ()
    children = tuple(_convert(d, names, depth + 1) for d in details if isinstance(d, dict))
    summary = comments[0] if comments else ("differs" if not children else "details")
    return Difference(
        source=source,
        kind="diffoscope",
        summary=summary,
        unified_diff=_bounded(node.get("unified_diff")),
        children=children,
        comments=comments[1:],
        origin="diffoscope",
    )


def run_diffoscope(ctx: Context, a: Path, b: Path, name: str) -> Difference:
    """diffoscope's view of *a* and *b*, or raise :class:`ToolProblem` (missing or failed)."""
    if ctx.which("diffoscope") is None:
        raise ToolProblem(MISSING)
    work = ctx.scratch("diffoscope")
    sa = _stage(a, work / "a", name)
    sb = _stage(b, work / "b", name)
    out = ctx.run(
        ["diffoscope", "--no-progress", "--json", "-", str(sa), str(sb)],
        what="the diffoscope handoff failed",
        ok_codes=(0, 1),
    )
    if not out.strip():
        return Difference(name, "diffoscope", "diffoscope found no difference", origin="diffoscope")
    try:
        data = json.loads(out)
    except ValueError as exc:
        raise ToolProblem(f"diffoscope printed something that is not JSON: {exc}") from exc
    top = _convert(data, (str(sa.parent), str(sb.parent)), 0)
    generic = top.summary in ("differs", "details")
    summary = "diffoscope's view" if generic else f"diffoscope: {top.summary}"
    return replace(top, source=name, summary=summary)
