"""Builtins on paths and files, confined to the recipe's directory tree.

A path value cannot name anything outside the tree of the top-level recipe
(:meth:`Evaluator.make_path` refuses ``..`` and symbolic links that lead out),
and these builtins take path values only, never strings such as ``"/etc"``:
so, like ``import``, they read nothing else of the machine. A file read is
recorded in ``Evaluator.files_read`` (it is a source of the recipe, hashed
into the lockfile); a path probed is recorded in ``Evaluator.paths_probed``.
"""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from reprobuild.errors import ImportEscapes, SourceSpan
from reprobuild.lang.primops import builtin
from reprobuild.lang.values import PathValue, Thunk, Value, type_name

if TYPE_CHECKING:
    from reprobuild.lang.evaluate import Evaluator

G = "files"


def confined(ev: Evaluator, target: Value, span: SourceSpan, what: str) -> tuple[PathValue, Path]:
    """The path value ``target`` and where it really leads, checked to be inside the tree."""
    if not isinstance(target, PathValue):
        raise ev.error(
            f"value is {type_name(target)} while a path was expected ({what} takes a path "
            "such as ./file, relative to the recipe)",
            span,
        )
    real = Path(os.path.realpath(target.absolute))
    if not real.is_relative_to(ev.root_dir):
        raise ev.error(
            f"'{target.display()}' leaves the directory tree of the top-level recipe "
            "(through a symbolic link)",
            span,
            ImportEscapes,
            hint="keep every file a recipe uses below the recipe's own directory",
        )
    return target, real


@builtin("readFile", "path", group=G)
def _read_file(ev: Evaluator, span: SourceSpan, p: Thunk) -> Value:
    """The contents of the file *path* (inside the recipe's tree), which must be UTF-8 text."""
    target, real = confined(ev, ev.force(p), span, "readFile")
    name = target.display()
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ev.error(f"cannot read '{name}': no such file", span) from None
    except OSError as exc:
        raise ev.error(f"cannot read '{name}': {exc.strerror}", span) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise ev.error(f"cannot read '{name}': it is {kind}", span)
        ev.check_str_len(st.st_size, span)
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(ev.limits.max_string + 1)
    finally:
        os.close(fd)
    ev.check_str_len(len(data), span)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ev.error(
            f"cannot read '{name}': it is not UTF-8 text (byte {exc.start})", span
        ) from None
    if "\0" in text:
        raise ev.error(f"the contents of the file '{name}' cannot be represented as a string",
                       span)
    ev.files_read.setdefault(_display(ev, real), real)
    return text


def _display(ev: Evaluator, real: Path) -> str:
    """The name ``files_read`` keys a file by: as ``import`` would show it."""
    top = next(iter(ev.file_dirs), "")
    rel = real.relative_to(ev.root_dir)
    return str(PurePosixPath(top).parent / rel) if top else str(rel)


@builtin("pathExists", "path", group=G)
def _path_exists(ev: Evaluator, span: SourceSpan, p: Thunk) -> Value:
    """Whether *path* (inside the recipe's tree) exists."""
    target = ev.force(p)
    if not isinstance(target, PathValue):
        confined(ev, target, span, "pathExists")  # raises: not a path
    assert isinstance(target, PathValue)
    ev.paths_probed.add(str(target.rel))
    return os.path.lexists(target.absolute)


def _coerce(ev: Evaluator, x: Thunk, span: SourceSpan) -> Value:
    v = ev.force(x)
    if isinstance(v, PathValue):
        return v
    return ev.coerce_to_string(v, span, more=False)


@builtin("baseNameOf", "s", bare=True, group=G)
def _base_name_of(ev: Evaluator, span: SourceSpan, x: Thunk) -> Value:
    """The last component of the path or string *s*, ignoring one trailing `/`:
    `baseNameOf "a/b/"` is `"b"`. Always a string."""
    v = _coerce(ev, x, span)
    if isinstance(v, PathValue):
        if str(v.rel) == ".":
            raise ev.error(
                "the recipe's own directory has no name a recipe may see (it would differ "
                "from machine to machine)",
                span,
            )
        return v.rel.name
    assert isinstance(v, str)
    if not v:
        return ""
    last = len(v) - 1
    if v[last] == "/" and last > 0:
        last -= 1
    return v[v.rfind("/", 0, last + 1) + 1 : last + 1]


@builtin("dirOf", "s", bare=True, group=G)
def _dir_of(ev: Evaluator, span: SourceSpan, x: Thunk) -> Value:
    """Everything before the last `/` of *s*: `dirOf "a/b/c"` is `"a/b"`, `dirOf "c"` is
    `"."`. For a path the result is a path (it may not leave the recipe's tree)."""
    v = _coerce(ev, x, span)
    if isinstance(v, PathValue):
        parent = posixpath.dirname(str(v.rel)) if str(v.rel) != "." else ".."
        if parent == "..":
            raise ev.error(
                f"the directory of '{v.display()}' is outside the directory tree of the "
                "top-level recipe",
                span,
                ImportEscapes,
            )
        return PathValue(v.root, PurePosixPath(parent or "."))
    assert isinstance(v, str)
    pos = v.rfind("/")
    if pos < 0:
        return "."
    return "/" if pos == 0 else v[:pos]
