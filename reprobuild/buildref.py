"""The name a recipe's builds are recorded under in the store (``refs/builds/NAME/N``).

Two recipes both called ``container.repro`` in different directories must not
share a history, so the name is the file's stem plus 8 hex digits of the
sha256 of its path relative to the repository holding it (the nearest
directory with ``.git``: the same on every clone), or of its absolute path
outside any repository. ``demo/3`` still finds ``demo-1a2b3c4d/3`` when only
one recipe of that stem has builds (see ``Store.resolve_build``).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def repository_root(path: Path) -> Path | None:
    return next((d for d in path.parents if (d / ".git").exists()), None)


def build_ref_name(recipe: Path) -> str:
    path = recipe.resolve()
    root = repository_root(path)
    key = path.relative_to(root).as_posix() if root is not None else str(path)
    stem = _UNSAFE.sub("-", path.name.removesuffix(".repro")).strip(".-") or "recipe"
    return f"{stem}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"
