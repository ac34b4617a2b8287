"""`make lint`'s architecture rules (scripts/check_architecture.py) on small trees,
and on reprobuild itself: no import cycle, no module over 700 lines unless listed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "check_architecture", ROOT / "scripts" / "check_architecture.py"
)
assert _spec is not None and _spec.loader is not None
arch = importlib.util.module_from_spec(_spec)
sys.modules["check_architecture"] = arch
_spec.loader.exec_module(arch)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / "reprobuild" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_reprobuild_itself_passes() -> None:
    assert arch.check() == []


def test_a_cycle_is_named_with_its_loop(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from reprobuild import b\n",
            "b.py": "def f():\n    from reprobuild.c import x\n",  # a lazy import counts
            "c.py": "import reprobuild.a\nx = 1\n",
        },
    )
    problems = arch.check(src, tmp_path / "none.txt")
    assert problems == [
        "import cycle among reprobuild.a, reprobuild.b, reprobuild.c: "
        "reprobuild.a -> reprobuild.b -> reprobuild.c -> reprobuild.a"
    ]


def test_type_checking_and_relative_imports(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "pkg/__init__.py": "from .mod import y\n",  # a package re-exporting: no cycle
            "pkg/mod.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from reprobuild.top import T\ny = 1\n"
            ),
            "top.py": "from reprobuild.pkg import mod\nT = 1\n",
        },
    )
    assert arch.check(src, tmp_path / "none.txt") == []
    (src / "reprobuild" / "pkg" / "mod.py").write_text("from ..top import T\ny = 1\n")
    assert len(arch.check(src, tmp_path / "none.txt")) == 1


def test_long_modules_and_the_allowlist(tmp_path: Path) -> None:
    src = _tree(tmp_path, {"__init__.py": "", "big.py": "x = 1\n" * 701, "ok.py": "x = 1\n"})
    allow = tmp_path / "allow.txt"
    assert arch.check(src, allow) == [
        "reprobuild/big.py: 701 lines, over 700: split it by responsibility"
    ]
    allow.write_text("# comment\nreprobuild/big.py 710\n")
    assert arch.check(src, allow) == []
    allow.write_text("reprobuild/big.py 700\n")
    assert "over its allowance of 700" in arch.check(src, allow)[0]
    allow.write_text("reprobuild/big.py 710\nreprobuild/ok.py 800\nreprobuild/gone.py 800\n")
    assert arch.check(src, allow) == [
        "reprobuild/ok.py: 1 lines, under 700 now: remove it from allow.txt",
        "allow.txt lists reprobuild/gone.py, which does not exist",
    ]


def test_distribution_names_are_compared_only_in_their_packages(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "archives/__init__.py": "",
            "archives/debian/__init__.py": "",
            "archives/debian/x.py": 'def f(fmt):\n    return fmt == "deb"\n',
            "build.py": 'def f(fmt, d):\n    a = "deb"\n    if fmt in ("alpm", "x"):\n'
            '        return d != "ubuntu"\n',
        },
    )
    assert arch.check(src, tmp_path / "none.txt") == [
        f"reprobuild/build.py:{n}: compares with a distribution or format name: ask the "
        "snapshot's PackageFormat (reprobuild/archives/formats.py) instead"
        for n in (3, 4)
    ]


def test_layers_name_the_forbidden_import(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "__main__.py": "from reprobuild import cli\n",  # the one importer of the CLI
            "cli.py": "from reprobuild import api\n",
            "api.py": "from reprobuild import cli\n",  # the library never imports the CLI
            "store/__init__.py": "",
            "store/core.py": "from reprobuild.archives import x\n",
            "archives/__init__.py": "x = 1\n",
            "lang/__init__.py": "from reprobuild import errors\n",
            "lang/eval.py": "import reprobuild.store.core\n",
            "errors.py": "",
        },
    )
    problems = arch.check(src, tmp_path / "none.txt")
    layered = [p for p in problems if "What may import what" in p]
    assert [p.split(":")[0] for p in layered] == [
        "reprobuild.api imports reprobuild.cli",
        "reprobuild.lang.eval imports reprobuild.store.core",
        "reprobuild.store.core imports reprobuild.archives",
    ]
    assert "reprobuild.lang may import only" in layered[1]
    assert "reprobuild.store must not import" in layered[2]
