"""The run step, for real: a script in the sandbox on a configured Debian root."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MIRROR = ROOT.parent / "shared" / "mirrors" / "debian" / "archive" / "debian"

pytestmark = [
    pytest.mark.skipif(
        not MIRROR.exists(), reason="the shared Debian mirror is not beside the repository"
    ),
    pytest.mark.skipif(
        shutil.which("bwrap") is None, reason="bwrap is not installed (Debian package bubblewrap)"
    ),
]

RECIPE = """\
let
  snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ]; };
  base = rootfs { snapshot = snap; variant = "essential"; };
  made = run {
    root = base;
    inputs = { src = ./src; };
    script = ''
      mkdir -p /out
      cat /inputs/src/greeting.txt > /out/hello.txt
      echo "epoch $SOURCE_DATE_EPOCH host $(hostname) pwd $(pwd)" >> /out/hello.txt
      ls /inputs/src > /out/listing.txt
      touch /out/stamp
    '';
    outputs = [ "/out" ];
  };
  grown = run { root = base; script = "echo extra > /etc/extra.conf"; };
in
{
  files = tarball { root = made; };
  tree = tarball { root = grown; };
}
"""


def build(work: Path, store: Path, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPROBUILD_")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "reprobuild",
            "build",
            "--json",
            "--store",
            str(store),
            "--mirror",
            f"debian={MIRROR.as_uri()}/",
            *extra,
            "r.repro",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


def recipe_dir(where: Path, text: str = RECIPE) -> Path:
    (where / "src").mkdir(parents=True)
    (where / "src" / "greeting.txt").write_text("hello from the recipe\n")
    (where / "r.repro").write_text(text)
    return where


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:  # type: ignore[type-arg]
    base = tmp_path_factory.mktemp("run")
    work = recipe_dir(base / "a")
    r = build(work, base / "store")
    assert r.returncode == 0, r.stderr
    return work, base / "store", json.loads(r.stdout)


def test_outputs_only_and_content(built: tuple[Path, Path, dict]) -> None:  # type: ignore[type-arg]
    work, _, out = built
    with tarfile.open(work / out["outputs"]["files"]["path"]) as t:
        names = sorted(t.getnames())
        f = t.extractfile("./out/hello.txt")
        assert f is not None
        text = f.read().decode()
    assert names == [".", "./out", "./out/hello.txt", "./out/listing.txt", "./out/stamp"]
    assert text == "hello from the recipe\nepoch 1783764997 host reprobuild pwd /build\n"


def test_whole_tree_result(built: tuple[Path, Path, dict]) -> None:  # type: ignore[type-arg]
    work, _, out = built
    with tarfile.open(work / out["outputs"]["tree"]["path"]) as t:
        names = set(t.getnames())
    assert "./etc/extra.conf" in names and "./usr/bin/dpkg" in names
    assert "./build" not in names and "./inputs" not in names


def test_identical_elsewhere(built: tuple[Path, Path, dict], tmp_path: Path) -> None:  # type: ignore[type-arg]
    _, _store, out = built
    work = recipe_dir(tmp_path / "other" / "place")
    # Reuse the store for the shared root, but the run steps' results must match too:
    r = build(work, tmp_path / "fresh-store")
    assert r.returncode == 0, r.stderr
    again = json.loads(r.stdout)
    assert again["outputs"]["files"]["sha256"] == out["outputs"]["files"]["sha256"]
    assert again["outputs"]["tree"]["sha256"] == out["outputs"]["tree"]["sha256"]


def test_no_network(built: tuple[Path, Path, dict], tmp_path: Path) -> None:  # type: ignore[type-arg]
    _, store, _ = built
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    text = RECIPE.replace(
        "touch /out/stamp", f"busybox wget -q -O /out/x http://127.0.0.1:{port}/ || exit 7"
    )
    work = recipe_dir(tmp_path / "net", text)
    r = build(work, store)
    server.close()
    assert r.returncode == 2
    assert "run step" in r.stderr and "exit code 7" in r.stderr
