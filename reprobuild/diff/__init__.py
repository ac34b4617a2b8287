"""``reprobuild diff``: explain why two artefacts are not bit-for-bit identical.

Modelled on diffoscope (DESIGN.md section 9): one small class per format
(:mod:`reprobuild.diff.formats`), a missing external tool becomes a comment
rather than a crash, and presenters (:mod:`reprobuild.diff.present`)
consume one :class:`Difference` tree. reprobuild knows the OCI, layer and
tree structures it writes; for the hundred other file formats, ``--diffoscope``
hands the deepest differing pair to diffoscope.

    >>> diff = compare(Path("a.oci.tar"), Path("b.oci.tar"))
    >>> print(render_text(diff))
    layer 1: usr/bin/cosign: content differs (ELF .note.gnu.build-id c2849cac.. vs 4c4f2c71..)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from reprobuild.diff.context import Context, Probe
from reprobuild.diff.formats import Format, compare_probes, detect
from reprobuild.diff.model import Difference
from reprobuild.diff.present import render_html, render_json, render_text
from reprobuild.errors import ReprobuildError

__all__ = [
    "DiffError",
    "Difference",
    "Format",
    "compare",
    "detect",
    "render_html",
    "render_json",
    "render_text",
]


class DiffError(ReprobuildError):
    """An input to ``reprobuild diff`` cannot be read at all (exit 2)."""


def _label(a: Path, b: Path) -> str:
    return str(a) if str(a) == str(b) else f"{a} vs {b}"


def compare(a: Path, b: Path, *, use_diffoscope: bool = False) -> Difference | None:
    """Compare two artefacts (files or directories); ``None`` when identical.

    Scratch space (unpacked archives and images) lives in a temporary
    directory removed before returning; the tree returned refers to nothing
    on disk. *use_diffoscope* hands leaf file pairs to diffoscope when it is
    installed, and otherwise says in a comment that it was not.
    """
    a, b = Path(a), Path(b)
    for path in (a, b):
        if not path.exists():
            raise DiffError(f"{path} does not exist")
        if not (path.is_file() or path.is_dir()):
            raise DiffError(f"{path} is neither a file nor a directory")
    try:
        pa, pb = Probe.of(a), Probe.of(b)
    except OSError as exc:
        raise DiffError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    with tempfile.TemporaryDirectory(prefix="reprobuild-diff-") as work:
        ctx = Context(workdir=Path(work), compare_fn=compare_probes, use_diffoscope=use_diffoscope)
        result = compare_probes(ctx, pa, pb, _label(a, b))
    if result is not None and ctx.notes:
        result = result.with_comments(*ctx.notes)
    return result
