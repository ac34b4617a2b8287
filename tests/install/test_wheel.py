"""An installed reprobuild: a wheel from this checkout in a clean virtual
environment outside it (issue 15).

The archive definitions and keyrings travel as package data, so the
installed command locks the demo recipe to the committed lockfile and
builds; user archives come from ``${XDG_CONFIG_HOME}/reprobuild/archives/``
and ``--archives DIR``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.recipes import NETBASE_RECIPE

ROOT = Path(__file__).resolve().parents[2]
MIRROR = f"debian=file://{ROOT}/snapshots/demo/archive/debian/"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `reprobuild` command of a wheel installed in a fresh venv (outside ROOT)."""
    base = tmp_path_factory.mktemp("wheel")
    dist = base / "dist"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-qq", "--no-deps", "-w", str(dist), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot build a wheel here (no setuptools>=77 to be had?): {r.stderr[-500:]}")
    (wheel,) = dist.glob("reprobuild-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    r = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-qq", str(wheel)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot install the wheel's dependencies here: {r.stderr[-500:]}")
    return venv / "bin" / "reprobuild"


def run(exe: Path, cwd: Path, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    full = {k: v for k, v in os.environ.items() if not k.startswith(("REPROBUILD_", "PYTHON"))}
    full["XDG_CACHE_HOME"] = str(cwd / "cache")
    full["XDG_CONFIG_HOME"] = str(cwd / "config")
    full.update(env or {})
    return subprocess.run(
        [str(exe), *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=1800
    )


def test_the_package_links_to_the_snapshots_directory() -> None:
    """snapshots/ stays the source of truth; the package sees it through a link."""
    assert (ROOT / "reprobuild" / "archives" / "definitions").resolve() == ROOT / "snapshots"
    # and the recipe library verify rebuilds with (issue 13) is recipes/lib
    assert (ROOT / "reprobuild" / "verify" / "library").resolve() == ROOT / "recipes" / "lib"


@pytest.mark.slow  # building the wheel and its venv takes a minute: `make test-slow`
def test_installed_package_locks_the_demo_as_committed(installed: Path, tmp_path: Path) -> None:
    site = next((installed.parent.parent / "lib").glob("python3*/site-packages"))
    definitions = site / "reprobuild" / "archives" / "definitions"
    assert not definitions.is_symlink()
    names = sorted(p.relative_to(definitions).as_posix() for p in definitions.rglob("*"))
    assert "keyrings/ubuntu-archive-keyring.gpg" in names and "debian.toml" in names
    assert not any(n.startswith("demo") for n in names)
    # verify's recipe library travels too, and the installed package finds it there
    library = site / "reprobuild" / "verify" / "library"
    assert not library.is_symlink()
    shipped = sorted(p.relative_to(library).as_posix() for p in library.rglob("*") if p.is_file())
    expected = sorted(
        p.relative_to(ROOT / "recipes" / "lib").as_posix()
        for p in (ROOT / "recipes" / "lib").rglob("*")
        if p.is_file()
    )
    assert shipped == expected
    found = subprocess.run(
        [str(installed.parent / "python"), "-c", "from reprobuild.verify import library_dir; print(library_dir())"],
        capture_output=True, text=True, timeout=120, cwd=site.parent,
    )  # fmt: skip
    assert found.returncode == 0 and Path(found.stdout.strip()) == library.resolve(), found.stderr

    shutil.copy(ROOT / "recipes" / "demo.repro", tmp_path / "demo.repro")
    r = run(installed, tmp_path, "lock", "--mirror", MIRROR, "demo.repro")
    assert r.returncode == 0, r.stderr
    committed = json.loads((ROOT / "recipes" / "demo.repro.lock").read_text())
    committed.pop("outputs")
    assert json.loads((tmp_path / "demo.repro.lock").read_text()) == committed

    r = run(installed, tmp_path, "doctor", "--json")
    assert json.loads(r.stdout)["tools"], r.stderr


@pytest.mark.slow
def test_installed_package_builds(installed: Path, tmp_path: Path) -> None:
    (tmp_path / "net.repro").write_text(NETBASE_RECIPE)
    r = run(installed, tmp_path, "build", "--store", str(tmp_path / "s"), "--mirror", MIRROR, "net.repro")
    assert r.returncode == 0, r.stderr
    assert "created net.repro.lock" in r.stderr


@pytest.mark.slow
def test_installed_package_builds_the_demo_to_the_committed_digests(
    installed: Path, tmp_path: Path
) -> None:
    shutil.copy(ROOT / "recipes" / "demo.repro", tmp_path / "demo.repro")
    shutil.copy(ROOT / "recipes" / "demo.repro.lock", tmp_path / "demo.repro.lock")
    r = run(
        installed, tmp_path, "build", "--locked", "--json", "--store", str(tmp_path / "s"),
        "--mirror", MIRROR, "demo.repro",
    )
    assert r.returncode == 0, r.stderr
    committed = json.loads((ROOT / "recipes" / "demo.repro.lock").read_text())["outputs"]
    built = json.loads(r.stdout)["outputs"]
    assert {k: v["sha256"] for k, v in built.items()} == {
        k: v["sha256"] for k, v in committed.items()
    }


def _user_archive(directory: Path, name: str, keyring: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.toml").write_text(
        'format = "deb"\n'
        'url = "https://snapshot.debian.org/archive/debian/{timestamp}/"\n'
        f'keyring = "{keyring}"\n'
        '[date]\nrule = "redirect"\n[defaults]\ncomponents = ["main"]\n'
    )


@pytest.mark.slow
@pytest.mark.parametrize("where", ["xdg", "flag"])
def test_user_archives_are_found(installed: Path, tmp_path: Path, where: str) -> None:
    """A company's archive, defined outside the package, signed by a shipped keyring."""
    recipe = NETBASE_RECIPE.replace('archive = "debian"', 'archive = "company"')
    (tmp_path / "net.repro").write_text(recipe)
    flag: list[str] = []
    if where == "xdg":
        _user_archive(tmp_path / "config" / "reprobuild" / "archives", "company", "keyrings/debian-archive-keyring.gpg")
    else:
        _user_archive(tmp_path / "defs", "company", "keyrings/debian-archive-keyring.gpg")
        flag = ["--archives", str(tmp_path / "defs")]
    r = run(
        installed, tmp_path, "lock", *flag, "--mirror", MIRROR.replace("debian=", "company="), "net.repro"
    )
    assert r.returncode == 0, r.stderr
    lock = json.loads((tmp_path / "net.repro.lock").read_text())
    assert lock["snapshots"]["snap"]["archive"] == "company"


@pytest.mark.slow
def test_unknown_archive_names_every_place_searched(installed: Path, tmp_path: Path) -> None:
    recipe = NETBASE_RECIPE.replace('archive = "debian"', 'archive = "nowhere"')
    (tmp_path / "net.repro").write_text(recipe)
    r = run(installed, tmp_path, "lock", "net.repro")
    assert r.returncode == 2
    assert "unknown archive 'nowhere'" in r.stderr
    assert str(tmp_path / "config" / "reprobuild" / "archives") in r.stderr
    assert "Traceback" not in r.stderr
