"""``reprobuild verify`` on debuerreotype's tarballs (slow) and on bad input (default run)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from reprobuild.verify.compare import compare_trees
from reprobuild.verify.debian import UnknownImageError, identify_debian, recipe_for
from reprobuild.verify.target import Member, Target, read_tarball
from tests.support.cli import reprobuild as rb
from tests.support.debuerreotype import SHARED, run_debuerreotype, unavailable
from tests.support.mirror import serve

MIRROR = "debian=" + (SHARED / "archive" / "debian").as_uri() + "/"


def flip_byte(src: Path, dest: Path, member: str, at: int = 100) -> None:
    """A copy of the tarball with one byte of *member*'s data inverted."""
    shutil.copyfile(src, dest)
    with tarfile.open(src) as t:
        m = t.getmember(member)
        offset = m.offset_data + min(at, m.size - 1)
    with dest.open("r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0xFF]))


def tar_of(root: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w") as t:
        t.add(root, arcname=".")
    return dest


# ---------------------------------------------------------------- default run


def test_not_an_image_exits_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a tarball at all\n" * 100)
    r = rb(tmp_path, "verify", str(junk))
    assert r.returncode == 2, r.stderr
    assert "not a tarball, an OCI layout or an image archive" in r.stderr
    assert "Traceback" not in r.stderr
    r = rb(tmp_path, "verify", str(tmp_path))  # a directory without index.json
    assert r.returncode == 2 and "not an OCI image layout" in r.stderr
    r = rb(tmp_path, "verify", str(tmp_path / "missing.tar"))
    assert r.returncode == 2 and "no such file" in r.stderr


def test_unknown_distribution_exits_2(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "os-release").write_text("ID=alpine\n")
    r = rb(tmp_path, "verify", str(tar_of(root, tmp_path / "alpine.tar")))
    assert r.returncode == 2, r.stderr
    assert "not a Debian root" in r.stderr
    # A Debian root that debuerreotype did not make: how it was made is unknown.
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(
        "Package: dpkg\nStatus: install ok installed\nVersion: 1.21.23\nArchitecture: amd64\n"
    )
    r = rb(tmp_path, "verify", str(tar_of(root, tmp_path / "debian.tar")))
    assert r.returncode == 2, r.stderr
    assert "not debuerreotype's" in r.stderr


def _debuerreotype_like(root: Path, *, slim: bool) -> None:
    for d in ("var/lib/dpkg", "var/lib/apt", "etc/apt/apt.conf.d", "etc/dpkg/dpkg.cfg.d"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "var/lib/dpkg/status").write_text(
        "Package: dpkg\nStatus: install ok installed\nVersion: 1.21.23\nArchitecture: amd64\n\n"
        "Package: jq\nStatus: install ok installed\nVersion: 1.6-2.1\nArchitecture: amd64\n\n"
        "Package: gone\nStatus: deinstall ok config-files\nVersion: 1\nArchitecture: amd64\n"
    )
    (root / "var/lib/apt/extended_states").write_text(
        "Package: dpkg\nArchitecture: amd64\nAuto-Installed: 1\n"
    )
    (root / "etc/apt/apt.conf.d/docker-clean").write_text("")
    (root / "etc/apt/sources.list").write_text(
        "deb http://snapshot.debian.org/archive/debian/20260711T101637Z bookworm main\n"
    )
    if slim:
        (root / "etc/dpkg/dpkg.cfg.d/docker").write_text("# slim\n")


@pytest.mark.parametrize("slim", [False, True])
def test_identifies_debuerreotype_roots(tmp_path: Path, slim: bool) -> None:
    root = tmp_path / "root"
    _debuerreotype_like(root, slim=slim)
    tar = tar_of(root, tmp_path / "r.tar")
    members, digest = read_tarball(tar)
    found = identify_debian(Target(str(tar), "tarball", digest, members, _layers=[tar]))
    assert found.include == ("jq",)  # installed, not marked automatic: --include=jq
    assert found.slim is slim
    assert (found.suite, found.snapshot, found.architecture) == (
        "bookworm",
        "20260711T101637Z",
        "amd64",
    )
    assert found.packages == {"dpkg": "1.21.23", "jq": "1.6-2.1"}
    text = recipe_for(found)
    assert 'mirror = "http://snapshot.debian.org/archive/debian/{timestamp}"' in text
    assert f"slim = {'true' if slim else 'false'}" in text


@pytest.mark.parametrize("deb822", [False, True])
def test_debian_mode_roots_are_named_not_rebuilt(tmp_path: Path, deb822: bool) -> None:
    """debuerreotype-init --debian (Docker Hub's debian images): deb.debian.org in the
    sources, the snapshot in a comment; the library does not make those."""
    root = tmp_path / "root"
    _debuerreotype_like(root, slim=False)
    (root / "etc/apt/sources.list").unlink()
    snapshot = "# http://snapshot.debian.org/archive/debian/20240110T000000Z"
    if deb822:
        (root / "etc/apt/sources.list.d").mkdir(parents=True)
        (root / "etc/apt/sources.list.d/debian.sources").write_text(
            f"Types: deb\n{snapshot}\nURIs: http://deb.debian.org/debian\n"
            "Suites: bookworm bookworm-updates\nComponents: main\n"
        )
    else:
        (root / "etc/apt/sources.list").write_text(
            snapshot.replace("# ", "# deb ") + " bookworm main\n"
            "deb http://deb.debian.org/debian bookworm main\n"
        )
    tar = tar_of(root, tmp_path / "r.tar")
    members, digest = read_tarball(tar)
    with pytest.raises(UnknownImageError, match=r"debuerreotype-init --debian .* 20240110T000000Z"):
        identify_debian(Target(str(tar), "tarball", digest, members, _layers=[tar]))


def test_attribution() -> None:
    def m(path: str, sha: str, mode: int = 0o644) -> Member:
        return Member(path, "file", mode, 0, 0, 1, 3, "", sha)

    image = {
        "usr/bin/jq": m("usr/bin/jq", "aa"),
        "etc/shadow": m("etc/shadow", "s1"),
        "opt/mystery": m("opt/mystery", "x1"),
        "var/lib/dpkg/info/jq.list": m("var/lib/dpkg/info/jq.list", "l"),
        "usr/bin/tool": m("usr/bin/tool", "t", 0o755),
    }
    rebuild = dict(image)
    rebuild["usr/bin/jq"] = m("usr/bin/jq", "bb")
    rebuild["etc/shadow"] = m("etc/shadow", "s2")
    rebuild["opt/mystery"] = m("opt/mystery", "x2")
    rebuild["usr/bin/tool"] = m("usr/bin/tool", "t", 0o4755)
    contents = {"usr/bin/jq": (b"jq-image", b"jq-built")}

    def read(side: int) -> Callable[[str], bytes]:
        def get(path: str) -> bytes:
            if path.endswith(".list"):
                return b"/.\n/usr\n/usr/bin\n/usr/bin/jq\n/usr/bin/tool\n"
            return contents.get(path, (b"same", b"same"))[side]

        return get

    diffs, summary = compare_trees(
        image, rebuild, read_image=read(0), read_rebuild=read(1),
        package_file=lambda package, path: b"jq-built" if path == "usr/bin/jq" else None,
    )  # fmt: skip
    by = {d.path: d for d in diffs}
    assert by["usr/bin/jq"].cause == "package" and by["usr/bin/jq"].package == "jq"
    assert "the image's bytes are not the package's" in by["usr/bin/jq"].explanation
    assert by["usr/bin/jq"].first_difference == {
        "offset": 3,
        "image": b"image".hex(),
        "rebuild": b"built".hex(),
    }
    assert by["etc/shadow"].cause == "generated"
    assert by["opt/mystery"].cause == "unexplained"
    assert by["usr/bin/tool"].change == "metadata" and by["usr/bin/tool"].fields == ("mode",)
    assert summary.line() == "1 of 5 paths identical (20.00%)"


# ---------------------------------------------------------------- slow: real images


@pytest.mark.slow
def test_verify_debuerreotype_tarball_is_identical(
    tmp_path: Path, debuerreotype_tarball: Callable[..., Path], library_store: Path
) -> None:
    reference = debuerreotype_tarball()
    r = rb(tmp_path, "verify", "--json", "--store", str(library_store), "--mirror", MIRROR,
           str(reference), timeout=3600)  # fmt: skip
    assert r.returncode == 0, r.stderr + r.stdout
    report = json.loads(r.stdout)
    assert report["verdict"] == "identical"
    assert report["target_digest"] == report["rebuilt_digest"]
    assert report["method"] == "debuerreotype"


def _as_image(tarball: Path, work: Path) -> Path:
    """*tarball* as the one layer of an image in a docker-archive (umoci adds the
    tar as it is, gzipped, as docker-library's oci-import publishes Debian)."""
    for tool in ("umoci", "skopeo"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    layout = work / "layout"
    for argv in (
        ["umoci", "init", "--layout", str(layout)],
        ["umoci", "new", "--image", f"{layout}:bookworm"],
        ["umoci", "raw", "add-layer", "--image", f"{layout}:bookworm", str(tarball)],
        ["skopeo", "copy", "-q", f"oci:{layout}:bookworm",
         f"docker-archive:{work / 'debian.tar'}:debian:bookworm"],
    ):  # fmt: skip
        subprocess.run(argv, check=True, capture_output=True, timeout=600)
    return work / "debian.tar"


@pytest.mark.slow
def test_verify_debuerreotype_image_and_a_retarred_root(
    tmp_path: Path, debuerreotype_tarball: Callable[..., Path], library_store: Path
) -> None:
    """The same root as an image's layer, and re-written by another tar writer
    (every path the same, the archive not: exit 1, saying so)."""
    reference = debuerreotype_tarball()
    args = ["--store", str(library_store), "--mirror", MIRROR]
    r = rb(tmp_path, "verify", "--json", *args, f"docker-archive:{_as_image(reference, tmp_path)}",
           timeout=3600)  # fmt: skip
    assert r.returncode == 0, r.stderr + r.stdout
    report = json.loads(r.stdout)
    assert report["compared"]["target"] == "the layer's tar"
    assert report["target_digest"] == "sha256:" + hashlib.sha256(reference.read_bytes()).hexdigest()
    assert report["rebuilt_digest"] == report["target_digest"]

    retarred = tmp_path / "retarred.tar"
    with (
        tarfile.open(reference) as src,
        tarfile.open(retarred, "w", format=tarfile.PAX_FORMAT) as out,
    ):
        for m in src:
            out.addfile(m, src.extractfile(m) if m.isreg() else None)
    r = rb(tmp_path, "verify", "--json", *args, str(retarred), timeout=3600)
    assert r.returncode == 1, r.stderr + r.stdout
    report = json.loads(r.stdout)
    assert report["differences"] == []
    assert report["summary"]["identical"] == report["summary"]["total"]
    assert any("every path is identical" in n for n in report["notes"])


@pytest.fixture(scope="module")
def jq_mirror(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The shared mirror plus jq (apt-get download), signed with a throwaway key."""
    from tests.support.debmirror import MirrorUnavailable, build_mirror

    try:
        return build_mirror(tmp_path_factory.mktemp("jq-mirror"), ["jq"], archive_layout=True)
    except MirrorUnavailable as exc:
        pytest.skip(str(exc))


@pytest.mark.slow
def test_verify_names_the_flipped_file_and_its_package(
    tmp_path: Path,
    jq_mirror,
    library_store: Path,  # type: ignore[no-untyped-def]
) -> None:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    with serve(jq_mirror.root) as server:
        reference = run_debuerreotype(
            tmp_path, proxy=server.url, include=["jq"], keyring=jq_mirror.keyring
        )
    flipped = tmp_path / "flipped.tar"
    flip_byte(reference, flipped, "usr/bin/jq")
    args = ["--store", str(library_store), "--mirror", f"debian={jq_mirror.url}",
            "--keyring", f"debian={jq_mirror.keyring}"]  # fmt: skip
    r = rb(tmp_path, "verify", *args, str(flipped), timeout=3600)
    assert r.returncode == 1, r.stderr + r.stdout
    assert "usr/bin/jq: content (sha256): package: shipped by jq" in r.stdout
    assert "first difference at byte 100" in r.stdout
    r = rb(tmp_path, "verify", "--json", *args, str(flipped))
    report = json.loads(r.stdout)
    assert [(d["path"], d["package"], d["cause"]) for d in report["differences"]] == [
        ("usr/bin/jq", "jq", "package")
    ]
    assert report["summary"]["identical"] == report["summary"]["total"] - 1
    r = rb(tmp_path, "verify", *args, str(reference))
    assert r.returncode == 0, r.stderr + r.stdout
    assert r.stdout.rstrip().endswith("identical")
