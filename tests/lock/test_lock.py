"""`reprobuild lock` end to end: real signed indexes, real mirrors, real failures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reprobuild import api
from reprobuild.errors import FetchError, IntegrityError, ResolveError, SignatureError
from reprobuild.fetch import Fetcher, FetchPolicy
from reprobuild.locking import Sources
from tests.support.mirror import Fault, free_port, serve

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "snapshots" / "demo"
SHARED_MIRROR = ROOT.parent / "shared" / "mirrors" / "debian"
TS = "20260711T101637Z"
INRELEASE = f"archive/debian/{TS}/dists/bookworm/InRelease"
PACKAGES = f"archive/debian/{TS}/dists/bookworm/main/binary-amd64/Packages.xz"


def recipe(tmp: Path, packages: str, variant: str = "none") -> Path:
    p = tmp / "r.repro"
    p.write_text(
        "let\n"
        '  snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ]; };\n'
        f'  root = rootfs {{ snapshot = snap; variant = "{variant}"; packages = [ {packages} ]; }};\n'
        "in { t = tarball { inherit root; }; }\n"
    )
    return p


def fast() -> Fetcher:
    return Fetcher(FetchPolicy(retries=1, backoff=0.01, timeout=2.0))


def mirror_of(root: Path) -> Sources:
    return Sources(mirrors={"debian": (root / "archive" / "debian").as_uri() + "/"})


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "mirror"
    shutil.copytree(DEMO, dst)
    for p in dst.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst


def test_demo_lock_is_byte_identical_to_the_committed_one(tmp_path: Path) -> None:
    work = tmp_path / "recipes"
    work.mkdir()
    shutil.copy(ROOT / "recipes" / "demo.repro", work / "demo.repro")
    result = api.lock(work / "demo.repro", sources=mirror_of(DEMO), fetcher=fast())
    assert result.changed
    committed = json.loads((ROOT / "recipes" / "demo.repro.lock").read_text())
    committed.pop("outputs", None)  # recorded by builds, not by lock
    assert json.loads(result.path.read_text()) == committed
    assert result.path.read_text() == json.dumps(committed, sort_keys=True, indent=2) + "\n"
    data = json.loads(result.path.read_text())
    snap = data["snapshots"]["snap"]
    assert snap["url"] == f"https://snapshot.debian.org/archive/debian/{TS}/"
    assert snap["suites"]["bookworm"]["fingerprint"] == "B8B80B5B623EAB6AD8775C45B7C5D7D6350947F8"
    assert "file:" not in result.path.read_text() and str(tmp_path) not in result.path.read_text()


def test_lock_over_http_and_up_to_date(tmp_path: Path) -> None:
    if not SHARED_MIRROR.exists():
        pytest.skip("the shared Debian mirror is not beside the repository")
    r = recipe(tmp_path, '"busybox-static" "ca-certificates" "netbase"')
    with serve(SHARED_MIRROR) as srv:
        sources = Sources(mirrors={"debian": srv.url + "archive/debian/"})
        first = api.lock(r, sources=sources, fetcher=fast())
        assert first.changed and first.packages > 5
        again = api.lock(r, sources=sources, fetcher=fast())
        assert not again.changed
        n = len(srv.requests)
        api.lock(r, sources=sources, fetcher=fast())
        assert len(srv.requests) == n  # a current lockfile needs no network
        # Editing the recipe makes the lock stale; it is re-resolved.
        r.write_text(r.read_text().replace('"netbase"', '"netbase" "tzdata"'))
        third = api.lock(r, sources=sources, fetcher=fast())
        assert third.changed and third.packages > first.packages
    names = {p["name"] for p in json.loads(third.path.read_text())["packages"]}
    assert {"busybox-static", "ca-certificates", "netbase", "tzdata", "openssl"} <= names


def test_edited_inrelease_is_refused(demo_copy: Path, tmp_path: Path) -> None:
    f = demo_copy / INRELEASE
    f.write_bytes(f.read_bytes().replace(b"Suite: oldstable", b"Suite: oldstabl3", 1))
    r = recipe(tmp_path, '"netbase"')
    with pytest.raises(SignatureError):
        api.lock(r, sources=mirror_of(demo_copy), fetcher=fast())
    assert not (tmp_path / "r.repro.lock").exists()


def test_unknown_key_is_refused(demo_copy: Path, tmp_path: Path) -> None:
    other = ROOT / "snapshots" / "keyrings" / "archlinux.gpg"
    sources = Sources(mirrors=mirror_of(demo_copy).mirrors, keyrings={"debian": other})
    with pytest.raises(SignatureError):
        api.lock(recipe(tmp_path, '"netbase"'), sources=sources, fetcher=fast())


def test_insecure_lock_says_so(demo_copy: Path, tmp_path: Path) -> None:
    sources = Sources(mirrors=mirror_of(demo_copy).mirrors, insecure=True)
    result = api.lock(recipe(tmp_path, '"netbase"'), sources=sources, fetcher=fast())
    data = json.loads(result.path.read_text())
    assert data["insecure"] == "signature checks were disabled with --insecure-allow-unsigned"
    assert data["snapshots"]["snap"]["signed"] is False


def test_flipped_byte_in_packages_index(demo_copy: Path, tmp_path: Path) -> None:
    f = demo_copy / PACKAGES
    data = bytearray(f.read_bytes())
    data[5000] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as info:
        api.lock(recipe(tmp_path, '"netbase"'), sources=mirror_of(demo_copy), fetcher=fast())
    assert "9e0b5aabb2465b3d" in info.value.message  # the expected hash is named
    assert not (tmp_path / "r.repro.lock").exists()


def test_missing_index_is_an_error(demo_copy: Path, tmp_path: Path) -> None:
    (demo_copy / PACKAGES).unlink()
    with pytest.raises(Exception) as info:
        api.lock(recipe(tmp_path, '"netbase"'), sources=mirror_of(demo_copy), fetcher=fast())
    assert "Packages" in str(info.value)


def test_unknown_and_conflicting_packages(tmp_path: Path) -> None:
    with pytest.raises(ResolveError) as info:
        api.lock(recipe(tmp_path, '"netbsae"'), sources=mirror_of(DEMO), fetcher=fast())
    assert "netbsae" in info.value.message
    with pytest.raises(ResolveError) as info:
        api.lock(
            recipe(tmp_path, '"busybox" "busybox-static"'), sources=mirror_of(DEMO), fetcher=fast()
        )
    assert "busybox" in info.value.message and "busybox-static" in info.value.message


def test_mirror_that_does_not_answer(tmp_path: Path) -> None:
    sources = Sources(mirrors={"debian": f"http://127.0.0.1:{free_port()}/archive/debian/"})
    with pytest.raises(FetchError) as info:
        api.lock(recipe(tmp_path, '"netbase"'), sources=sources, fetcher=fast())
    assert "InRelease" in info.value.message


def test_server_errors_are_retried(tmp_path: Path) -> None:
    with serve(DEMO) as srv:
        srv.fault("/" + INRELEASE, Fault(status=503), Fault(status=429, retry_after="0"))
        sources = Sources(mirrors={"debian": srv.url + "archive/debian/"})
        fetcher = Fetcher(FetchPolicy(retries=3, backoff=0.01))
        assert api.lock(recipe(tmp_path, '"netbase"'), sources=sources, fetcher=fetcher).changed


def test_cli_errors_exit_2_without_traceback(run_cli, tmp_path: Path, demo_copy: Path) -> None:  # type: ignore[no-untyped-def]
    r = recipe(tmp_path, '"netbase"')
    f = demo_copy / INRELEASE
    f.write_bytes(f.read_bytes().replace(b"Suite: oldstable", b"Suite: oldstabl3", 1))
    proc = run_cli(
        "lock", "--mirror", f"debian={(demo_copy / 'archive' / 'debian').as_uri()}/", str(r)
    )
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r.repro.lock").exists()
    proc = run_cli("lock", "--mirror", "debian", str(r))
    assert proc.returncode == 2 and "NAME=VALUE" in proc.stderr


def test_cli_env_mirror_and_json(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = recipe(tmp_path, '"netbase"')
    env = {"REPROBUILD_MIRROR_DEBIAN": (DEMO / "archive" / "debian").as_uri() + "/"}
    proc = run_cli("lock", "--json", str(r), env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["changed"] is True and out["snapshots"] == {"snap": TS}


# ---------------------------------------------------- lockfile.py on its own (no lock run)

COMMITTED = ROOT / "recipes" / "demo.repro.lock"


def test_identity_ignores_the_recorded_outputs() -> None:
    import dataclasses

    from reprobuild import lockfile as lf

    lock = lf.load(COMMITTED)
    assert lock.outputs
    bare = dataclasses.replace(lock, outputs={})
    assert lock.identity() == bare.identity()
    assert lock.dumps() != bare.dumps()
    assert lock.identity() != dataclasses.replace(lock, recipe="1" * 64).identity()


def test_write_replaces_atomically_and_removes_a_dead_writers_temp(tmp_path: Path) -> None:
    from reprobuild import lockfile as lf

    lock = lf.load(COMMITTED)
    path = tmp_path / "demo.repro.lock"
    dead = tmp_path / ".demo.repro.lock.99999999.tmp"  # no such process
    dead.write_text("half")
    other = tmp_path / ".other.lock.99999999.tmp"  # another file's temp: not ours
    other.write_text("half")
    lf.write(path, lock)
    assert path.read_text() == COMMITTED.read_text()
    assert not dead.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.lock.99999999.tmp", path.name]


def test_staleness_names_every_changed_source() -> None:
    from reprobuild import lockfile as lf

    lock = lf.load(COMMITTED)
    assert not lf.staleness(lock, lock.recipe, lock.sources, {}, {}).stale
    sources = {**lock.sources, "lib/new.repro": "2" * 64}  # a file the recipe now reads
    state = lf.staleness(lock, "1" * 64, sources, {}, {})
    assert state.reasons == ("recipe changed: lib/new.repro",)
    gone = lf.staleness(lock, "1" * 64, {}, {}, {})  # a file it no longer reads
    assert gone.reasons == ("recipe changed: " + ", ".join(sorted(lock.sources)),)
    top = lf.staleness(lock, "1" * 64, lock.sources, {}, {})
    assert top.reasons == ("recipe changed: (top-level file)",)


def test_an_unreadable_lockfile_says_why(tmp_path: Path) -> None:
    from reprobuild import lockfile as lf
    from reprobuild.errors import LockfileError

    path = tmp_path / "demo.repro.lock"
    with pytest.raises(LockfileError, match="no lockfile") as missing:
        lf.load(path)
    assert missing.value.hint == "run 'reprobuild lock demo.repro' first"
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(LockfileError, match="not a lockfile \\(not UTF-8 text"):
        lf.load(path)
    path.write_text('{\n  "version": 1,\n  oops\n}\n')
    with pytest.raises(LockfileError, match=f"{path}:3:3: not valid JSON"):
        lf.load(path)
    path.unlink()
    path.mkdir()
    with pytest.raises(LockfileError, match="cannot read the lockfile"):
        lf.load(path)


def test_a_lockfile_of_another_format_version_says_how_to_rewrite_it(tmp_path: Path) -> None:
    from reprobuild import lockfile as lf
    from reprobuild.errors import LockfileError

    data = json.loads(COMMITTED.read_text())
    data["version"] = 2
    with pytest.raises(LockfileError, match="format version 2 is not supported") as caught:
        lf.Lockfile.from_json(data)
    assert caught.value.hint == "run 'reprobuild lock --update' with this version to rewrite it"


def test_an_empty_package_is_a_valid_size() -> None:
    from reprobuild import lockfile as lf

    data = json.loads(COMMITTED.read_text())
    data["packages"][0]["size"] = 0
    assert lf.Lockfile.from_json(data).packages[0].size == 0
