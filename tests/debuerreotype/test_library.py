"""recipes/lib/debuerreotype.repro against debuerreotype 0.15 itself: the
plain, include and slim tarballs are the same bytes.

Slow (each variant: debuerreotype about 80 s, the library build 60-150 s on
this machine): ``make test-long`` runs them; ``test_primitives.py`` checks
every primitive the library uses against the real tools in the default run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests.support.cli import reprobuild as rb
from tests.support.debuerreotype import SHARED

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "recipes" / "lib"
MIRROR = "debian=" + (SHARED / "archive" / "debian").as_uri() + "/"
VARIANTS: dict[str, tuple[tuple[str, ...], bool]] = {
    "plain": ((), False),
    "include": (("busybox-static",), False),
    "slim": (("busybox-static",), True),
}


def library_recipe(include: Sequence[str], slim: bool) -> str:
    """The recipe of the issue: the shared mirror's snapshot, through the library."""
    packages = " ".join(f'"{p}"' for p in include)
    return (
        "let\n"
        '  snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; '
        'suites = [ "bookworm" ]; components = [ "main" ]; arch = "amd64"; };\n'
        "  debuerreotype = import ./lib/debuerreotype.repro;\n"
        f"in debuerreotype {{ snapshot = snap; include = [ {packages} ]; "
        f"slim = {'true' if slim else 'false'}; }}\n"
    )


def build_library(work: Path, store: Path, include: Sequence[str], slim: bool) -> Path:
    shutil.copytree(LIB, work / "lib", dirs_exist_ok=True)
    (work / "r.repro").write_text(library_recipe(include, slim))
    r = rb(
        work, "build", "--json", "--store", str(store), "--mirror", MIRROR, "r.repro", timeout=3600
    )
    assert r.returncode == 0, r.stderr
    return work / json.loads(r.stdout)["outputs"]["rootfs"]["path"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tar_differences(a: Path, b: Path, limit: int = 20) -> list[str]:
    """Member-level differences, for a failure message worth reading."""

    def members(p: Path) -> dict[str, tuple[object, ...]]:
        out = {}
        with tarfile.open(p) as t:
            for m in t.getmembers():
                f = t.extractfile(m) if m.isfile() else None
                digest = hashlib.sha256(f.read()).hexdigest()[:12] if f else None
                out[m.name] = (m.type, m.mode, m.uid, m.gid, m.mtime, m.linkname, digest)
        return out

    ma, mb = members(a), members(b)
    lines = [f"only in debuerreotype's: {n}" for n in sorted(set(ma) - set(mb))]
    lines += [f"only in the library's: {n}" for n in sorted(set(mb) - set(ma))]
    lines += [
        f"differs: {n} {ma[n]} != {mb[n]}" for n in sorted(set(ma) & set(mb)) if ma[n] != mb[n]
    ]
    return lines[:limit] or ["same members, different bytes (member order or headers)"]


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_library_is_byte_identical_to_debuerreotype(
    variant: str,
    tmp_path: Path,
    debuerreotype_tarball: Callable[..., Path],
    library_store: Path,
) -> None:
    include, slim = VARIANTS[variant]
    reference = debuerreotype_tarball(include, slim)
    ours = build_library(tmp_path, library_store, include, slim)
    assert sha256(ours) == sha256(reference), "\n".join(tar_differences(reference, ours))
