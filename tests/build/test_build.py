"""`reprobuild build` end to end: real packages, real store, real sandbox."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO_MIRROR = (ROOT / "snapshots" / "demo" / "archive" / "debian").as_uri() + "/"
SHARED_MIRROR = ROOT.parent / "shared" / "mirrors" / "debian" / "archive" / "debian"

SMALL = """\
let
  snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ]; };
  root = rootfs {
    snapshot = snap;
    variant = "none";
    packages = [ "busybox-static" "base-files" "netbase" "tzdata" ];
    files = { "/etc/motd" = "built by reprobuild\\n"; "/etc/app.conf" = ./app.conf; };
    hostname = "demo";
  };
in
{
  tarball = tarball { inherit root; compression = "zstd"; };
  plain = tarball { inherit root; };
}
"""


def build(
    workdir: Path, *args: str, env: dict[str, str] | None = None, umask: int | None = None
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("REPROBUILD_")}
    full.update(env or {})

    def preexec() -> None:
        if umask is not None:
            os.umask(umask)

    return subprocess.run(
        [sys.executable, "-m", "reprobuild", "build", *args],
        cwd=workdir,
        env=full,
        capture_output=True,
        text=True,
        timeout=900,
        preexec_fn=preexec,
    )


def small_recipe(where: Path, *, reverse: bool = False) -> Path:
    where.mkdir(parents=True)
    names = ["r.repro", "app.conf"]
    for name in reversed(names) if reverse else names:
        if name == "r.repro":
            (where / name).write_text(SMALL)
        else:
            (where / name).write_text("key = value\n")
    return where / "r.repro"


@pytest.fixture(scope="module")
def first_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:  # type: ignore[type-arg]
    work = tmp_path_factory.mktemp("a")
    small_recipe(work / "recipe")
    r = build(
        work / "recipe",
        "--json",
        "--store",
        str(work / "store"),
        "--mirror",
        f"debian={DEMO_MIRROR}",
        "r.repro",
    )
    assert r.returncode == 0, r.stderr
    return work, json.loads(r.stdout)


def test_outputs_and_json_shape(first_build: tuple[Path, dict]) -> None:  # type: ignore[type-arg]
    work, out = first_build
    assert set(out["outputs"]) == {"tarball", "plain"}
    assert out["steps"]["total"] == out["steps"]["run"] + out["steps"]["cached"]
    plain = work / "recipe" / out["outputs"]["plain"]["path"]
    with tarfile.open(plain) as t:
        names = t.getnames()
        motd = t.extractfile("./etc/motd")
        assert motd is not None and motd.read() == b"built by reprobuild\n"
        host = t.extractfile("./etc/hostname")
        assert host is not None and host.read() == b"demo\n"
        assert all(m.uname == "" and m.mtime <= 1783765000 for m in t.getmembers())
    assert "./usr/bin/busybox" in names or "./bin/busybox" in names
    lock = json.loads((work / "recipe" / "r.repro.lock").read_text())
    assert lock["outputs"]["plain"]["sha256"] == out["outputs"]["plain"]["sha256"]


def test_rebuild_runs_nothing(first_build: tuple[Path, dict]) -> None:  # type: ignore[type-arg]
    work, out = first_build
    r = build(work / "recipe", "--json", "--locked", "--store", str(work / "store"), "r.repro")
    assert r.returncode == 0, r.stderr
    again = json.loads(r.stdout)
    assert again["steps"]["run"] == 0
    assert again["outputs"]["tarball"]["sha256"] == out["outputs"]["tarball"]["sha256"]


def test_rebuild_leaves_outputs_in_place_and_restores_changed_ones(
    first_build: tuple[Path, dict],  # type: ignore[type-arg]
) -> None:
    work, out = first_build
    plain = work / "recipe" / out["outputs"]["plain"]["path"]
    packed = work / "recipe" / out["outputs"]["tarball"]["path"]
    args = ("--json", "--locked", "--store", str(work / "store"), "r.repro")
    assert build(work / "recipe", *args).returncode == 0  # records what is in place
    before = plain.stat().st_ino, packed.stat().st_ino
    assert build(work / "recipe", *args).returncode == 0
    assert (plain.stat().st_ino, packed.stat().st_ino) == before  # not copied again
    good = plain.read_bytes()
    with plain.open("r+b") as f:  # changed in place: same size, same inode
        f.write(b"X")
    r = build(work / "recipe", *args)
    assert r.returncode == 0, r.stderr
    assert plain.read_bytes() == good
    assert packed.stat().st_ino == before[1]


def test_identical_in_another_directory_umask_tz_and_order(
    first_build: tuple[Path, dict], tmp_path: Path
) -> None:  # type: ignore[type-arg]
    _, out = first_build
    recipe = small_recipe(tmp_path / "elsewhere" / "deeper", reverse=True)
    r = build(
        recipe.parent,
        "--json",
        "-j",
        "1",
        "--store",
        str(tmp_path / "store2"),
        "--mirror",
        f"debian={DEMO_MIRROR}",
        "r.repro",
        env={"TZ": "Asia/Tokyo", "LC_ALL": "C", "HOME": str(tmp_path)},
        umask=0o077,
    )
    assert r.returncode == 0, r.stderr
    other = json.loads(r.stdout)
    for name in ("tarball", "plain"):
        assert other["outputs"][name]["sha256"] == out["outputs"][name]["sha256"]


def test_store_records_the_build(first_build: tuple[Path, dict], run_cli) -> None:  # type: ignore[no-untyped-def, type-arg]
    work, _ = first_build
    r = run_cli("store", "verify", "--store", str(work / "store"))
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_cli("store", "log", "--store", str(work / "store"))
    assert r.returncode == 0 and "r" in r.stdout


def test_locked_refuses_a_stale_lock(first_build: tuple[Path, dict], tmp_path: Path) -> None:  # type: ignore[type-arg]
    work, _ = first_build
    copy = tmp_path / "copy"
    shutil.copytree(work / "recipe", copy, ignore=shutil.ignore_patterns("out"))
    (copy / "r.repro").write_text(SMALL.replace('"tzdata"', '"tzdata" "mawk"'))
    r = build(copy, "--locked", "--store", str(work / "store"), "r.repro")
    assert r.returncode == 2
    assert "stale" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.skipif(
    not SHARED_MIRROR.exists(), reason="the shared Debian mirror is not beside the repository"
)
@pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="bwrap is not installed (Debian package bubblewrap)"
)
def test_essential_rootfs_is_configured(tmp_path: Path) -> None:
    (tmp_path / "e.repro").write_text(
        'let snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ]; };\n'
        "in { t = tarball { root = rootfs {\n"
        '  snapshot = snap; variant = "essential"; packages = [ "busybox-static" "passwd" ];\n'
        '  groups = [ { name = "app"; gid = 1500; } ];\n'
        '  users = [ { name = "app"; uid = 1500; group = "app"; shell = "/bin/bash"; } ];\n'
        '  remove = [ "/usr/share/doc/*" ];\n'
        "}; }; }\n"
    )
    r = build(
        tmp_path,
        "--json",
        "--store",
        str(tmp_path / "store"),
        "--mirror",
        f"debian={SHARED_MIRROR.as_uri()}/",
        "e.repro",
    )
    assert r.returncode == 0, r.stderr
    tar_path = tmp_path / json.loads(r.stdout)["outputs"]["t"]["path"]
    root = tmp_path / "root"
    root.mkdir()
    with tarfile.open(tar_path) as t:
        t.extractall(root, **({"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}))
    status = (root / "var/lib/dpkg/status").read_text()
    stanzas = [s for s in status.split("\n\n") if s.strip()]
    assert stanzas and all("Status: install ok installed" in s for s in stanzas)
    assert (root / "etc/passwd").read_text().startswith("root:")
    assert (root / "etc/group").exists()
    assert not (root / "usr/sbin/policy-rc.d").exists()
    # useradd ran in the sandbox: passwd, shadow and group agree; the shadow
    # date is the epoch's day, not today's.
    assert "app:x:1500:1500::/home/app:/bin/bash" in (root / "etc/passwd").read_text()
    assert "app:x:1500:" in (root / "etc/group").read_text()
    shadow = [
        line for line in (root / "etc/shadow").read_text().splitlines() if line.startswith("app:")
    ]
    assert shadow and shadow[0].split(":")[2] == str(1783764997 // 86400)
    assert (root / "home/app").is_dir() and (root / "home/app").stat().st_uid == 1500
    assert list((root / "usr/share/doc").iterdir()) == []
    for cmd in ("/usr/bin/busybox true", "/bin/sh -c 'echo ok'"):
        res = subprocess.run(
            [
                "bwrap",
                "--bind",
                str(root),
                "/",
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                "--unshare-net",
                "/bin/sh",
                "-c",
                cmd,
            ],
            capture_output=True,
            text=True,
        )
        assert res.returncode == 0, res.stderr
