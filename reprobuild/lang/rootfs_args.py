"""Checks of rootfs arguments that go beyond a type: ``packages_from`` and ``files`` entries.

``packages_from`` is read at evaluation, with ``builtins.readFile`` (so the
list is a source of the recipe, like an imported file), and merged into
``packages``. A ``files`` entry is a string, a path, a file step, or a set
saying what to make (:mod:`reprobuild.steps.rootfiles` makes it).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from reprobuild.errors import SourceSpan
from reprobuild.lang.primops import TABLE
from reprobuild.lang.values import AttrsValue, PathValue, StepValue, Thunk, Value, type_name

if TYPE_CHECKING:
    from reprobuild.lang.evaluate import Evaluator

PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.\-]*(:[a-z0-9]+)?$")


def package_list(ev: Evaluator, path: PathValue, span: SourceSpan) -> list[str]:
    """``packages_from``: names one a line (several a line allowed), ``#`` comments."""
    names: list[str] = []
    text = TABLE["readFile"].impl(ev, span, Thunk.of(path))  # recorded as a source
    assert isinstance(text, str)
    for number, line in enumerate(text.splitlines(), 1):
        for word in line.split("#", 1)[0].split():
            if not PACKAGE_RE.match(word):
                raise ev.error(
                    f"{path.display()}:{number}: '{word}' is not a package name", span
                )
            if word not in names:
                names.append(word)
    return names


FILE_KINDS = ("text", "source", "symlink", "directory")
FILE_MODE_RE = re.compile(r"^0?[0-7]{3,4}$")
OWNER_RE = re.compile(r"^[a-z0-9_][a-z0-9_.-]*(:[a-z0-9_][a-z0-9_.-]*)?$")


def file_entry(ev: Evaluator, x: Value, what: str, span: SourceSpan) -> Any:
    """One ``files`` entry: a string, a path, a file step, or a set saying what
    to make: ``{ text | source | symlink | directory; mode ?; owner ?; }``.

    A file step's own ``mode`` is kept with it (it was once dropped: 0644).
    """
    if isinstance(x, str | PathValue):
        return x
    if isinstance(x, StepValue):
        if x.kind == "file" and "mode" in x.args.attrs:
            mode = ev.force(x.args.attrs["mode"])
            if not isinstance(mode, str) or not FILE_MODE_RE.match(mode):
                raise ev.error(f"{what}: the file step's mode must be octal like \"0755\"", span)
            return {"source": x, "mode": mode}
        return x
    if not isinstance(x, AttrsValue):
        raise ev.error(
            f"{what} must be a string, a path, a file step or a set "
            f"{{ text | source | symlink | directory; mode; owner; }}, not {type_name(x)}",
            span,
        )
    unknown = sorted(set(x.attrs) - {*FILE_KINDS, "mode", "owner"})
    if unknown:
        raise ev.error(
            f"{what}: unknown attribute '{unknown[0]}' (expected "
            + ", ".join([*FILE_KINDS, "mode", "owner"])
            + ")",
            x.spans.get(unknown[0], span),
        )
    kinds = [k for k in FILE_KINDS if k in x.attrs]
    if len(kinds) != 1:
        raise ev.error(f"{what} needs exactly one of {', '.join(FILE_KINDS)}", span)
    kind = kinds[0]
    entry: dict[str, Any] = {}
    for key in sorted(x.attrs):
        v = ev.force(x.attrs[key])
        sp = x.spans.get(key, span)
        if key == "source":
            if not isinstance(v, PathValue | StepValue) or (
                isinstance(v, StepValue) and v.kind not in ("file", "fetchurl")
            ):
                raise ev.error(f"{what}: source must be a path or a file step", sp)
        elif key == "directory":
            if v is not True:
                raise ev.error(f"{what}: directory must be true", sp)
        elif not isinstance(v, str):
            raise ev.error(f"{what}: {key} must be a string, not {type_name(v)}", sp)
        elif key == "mode" and not FILE_MODE_RE.match(v):
            raise ev.error(f'{what}: mode must be octal like "0755", not "{v}"', sp)
        elif key == "owner" and not OWNER_RE.match(v):
            raise ev.error(f'{what}: owner must be "USER", "USER:GROUP" or "UID:GID"', sp)
        elif key == "symlink" and (not v or "\0" in v):
            raise ev.error(f"{what}: symlink must name a target", sp)
        if kind == "symlink" and key == "mode":
            raise ev.error(f"{what}: a symlink has no mode", sp)
        entry[key] = v
    return entry
