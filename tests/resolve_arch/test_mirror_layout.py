"""``--mirror archlinux=URL``: the archive's root or its repos/ directory; otherwise an
error that names the URLs tried and the layout expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from reprobuild import api
from reprobuild.errors import ArchiveError
from reprobuild.locking import Sources

from .pacman import ARCHIVE_2022, db_2022

RECIPE = (
    'let snap = snapshot { archive = "archlinux"; date = "2022-09-12T08:00:00Z"; '
    'repos = [ "core" ]; };\n'
    'in { t = tarball { root = rootfs { snapshot = snap; variant = "none"; '
    'packages = [ "filesystem" ]; }; }; }\n'
)


def _lock(tmp: Path, mirror: str) -> api.LockResult:
    (tmp / "r.repro").write_text(RECIPE)
    sources = Sources.from_env(mirrors=[f"archlinux={mirror}"], environ={}, allow_expired=True)
    return api.lock(tmp / "r.repro", sources=sources, update=True)


@pytest.mark.parametrize("suffix", ["", "/", "/repos", "/repos/"])
def test_root_or_repos_directory(tmp_path: Path, suffix: str) -> None:
    db_2022("core")
    lock = _lock(tmp_path, ARCHIVE_2022.as_uri() + suffix).lockfile
    (snap,) = lock.snapshots
    assert snap.url == "https://archive.archlinux.org/repos/2022/09/12/"  # canonical, always
    assert [p.name for p in lock.packages] == ["filesystem", "iana-etc"]


def test_nothing_there_names_the_urls_and_the_layout(tmp_path: Path) -> None:
    empty = tmp_path / "mirror"
    empty.mkdir()
    with pytest.raises(ArchiveError) as info:
        _lock(tmp_path, empty.as_uri())
    message, hint = info.value.message, info.value.hint or ""
    assert f"{empty.as_uri()}/2022/09/12/core/os/x86_64/core.db" in message
    assert f"{empty.as_uri()}/repos/2022/09/12/core/os/x86_64/core.db" in message
    assert "7 days" in message
    assert "ROOT/repos/YYYY/MM/DD/REPO/os/x86_64/REPO.db" in hint
    assert "root or its repos/ directory" in hint
