"""Every rootfs option in one real build (minbase from the snapshot, configured),
its tree compared with a golden listing (``golden/options.txt``).

The packages come from Debian's genuine signed snapshot: the shared mirror's,
plus ``locales`` fetched with ``apt-get download`` (checked against the
lockfile). ``REPROBUILD_REGEN_GOLDEN=1`` rewrites the listing after a
deliberate change.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from reprobuild import api
from reprobuild.locking import Sources
from tests.support.debmirror import SHARED, MirrorUnavailable
from tests.support.snapmirror import locked_mirror

GOLDEN = Path(__file__).parent / "golden" / "options.txt"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOptionsTestKeyOnlyNotARealOne user@host"
RECIPE = """\
let
  snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ]; };
  root = rootfs {
    snapshot = snap;
    variant = "minbase";
    packages = [ "locales" ];
    packages_from = ./packages.list;
    hostname = "opts.example.org";
    hosts = { "10.0.0.2" = "db db.example.org"; };
    timezone = "Europe/Berlin";
    locale = "de_DE.UTF-8";
    keymap = "de";
    root_password_hash = "$6$rootsalt$hash";
    users = [
      { name = "app"; uid = 1001; shell = "/bin/bash"; groups = [ "users" ];
        password_hash = "$y$j9T$appsalt$apphash"; ssh_authorized_keys = [ "KEY" ]; }
    ];
    files = {
      "/usr/local/bin/hello" = file { text = "#!/bin/sh\\necho hello\\n"; mode = "0755"; };
      "/etc/app/secret.conf" = { text = "token=1\\n"; mode = "0640"; owner = "root:app"; };
      "/srv/app" = { directory = true; mode = "0750"; owner = "app"; };
      "/srv/app/data.txt" = { source = ./data.txt; owner = "1001:100"; };
      "/etc/app/current" = { symlink = "/srv/app/data.txt"; };
      "/etc/motd" = "options test\\n";
    };
  };
in
{
  tree = tarball { inherit root; };
}
""".replace("KEY", KEY)
LISTED = (
    "etc/apt/sources.list",
    "etc/app",
    "etc/app/*",
    "etc/default/locale",
    "etc/hosts",
    "etc/hostname",
    "etc/locale.gen",
    "etc/localtime",
    "etc/motd",
    "etc/timezone",
    "etc/vconsole.conf",
    "home/app/.ssh",
    "home/app/.ssh/*",
    "srv/app",
    "srv/app/*",
    "usr/lib/locale/locale-archive",
    "usr/local/bin/hello",
)


def listing(tar: Path) -> str:
    import fnmatch

    lines = []
    with tarfile.open(tar) as t:
        for m in t:
            rel = m.name.removeprefix("./").rstrip("/")
            if rel in ("etc/shadow", "var/lib/dpkg/status"):
                f = t.extractfile(m)
                text = f.read().decode() if f else ""
                if rel == "etc/shadow":
                    lines += [f"{rel}: {e}" for e in text.splitlines() if e.startswith(("root:", "app:"))]
                else:
                    lines += [f"installed: {p}" for p in ("netbase", "tzdata") if f"Package: {p}\n" in text]
            if not any(fnmatch.fnmatchcase(rel, p) for p in LISTED):
                continue
            kind = {tarfile.DIRTYPE: "d", tarfile.SYMTYPE: "l", tarfile.REGTYPE: "f"}[m.type]
            line = f"{rel} {kind} {m.mode:04o} {m.uid}:{m.gid}"
            if m.issym():
                line += f" -> {m.linkname}"
            elif m.isfile():
                f = t.extractfile(m)
                line += " " + hashlib.sha256(f.read() if f else b"").hexdigest()[:16]
            lines.append(line)
    return "\n".join(sorted(lines)) + "\n"


@pytest.fixture(scope="module")
def options_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("a configured root file system with its owners needs root")
    if shutil.which("bwrap") is None:
        pytest.skip("bwrap is not installed")
    base = tmp_path_factory.mktemp("options")
    work = base / "recipe"
    work.mkdir()
    (work / "options.repro").write_text(RECIPE)
    (work / "packages.list").write_text("# from packages_from\nnetbase\ntzdata  # zoneinfo\n")
    (work / "data.txt").write_text("data\n")
    recipe = work / "options.repro"
    api.lock(recipe, sources=Sources(mirrors={"debian": (SHARED / "archive/debian").as_uri() + "/"}))
    try:
        url = locked_mirror(base / "mirror", [work / "options.repro.lock"], "20260711T101637Z")
    except MirrorUnavailable as exc:
        pytest.skip(f"locales cannot be fetched with apt: {exc}")
    result = api.build(
        recipe, out_dir=base / "out", store_path=base / "store", sources=Sources(mirrors={"debian": url})
    )
    assert result.secrets == ()
    return Path(result.outputs[0].path)


def test_options_golden(options_tree: Path) -> None:
    text = listing(options_tree)
    if os.environ.get("REPROBUILD_REGEN_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_file_step_mode_is_kept(options_tree: Path) -> None:
    """The bug: file { mode = "0755"; } landed as 0644."""
    with tarfile.open(options_tree) as t:
        assert t.getmember("./usr/local/bin/hello").mode == 0o755
