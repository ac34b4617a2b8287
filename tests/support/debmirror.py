"""A temporary, signed Debian mirror for tests that need packages the shared mirror lacks.

The shared mirror (``../shared/mirrors/debian``) holds Debian's genuine
signed index but only 101 ``.deb`` files. :func:`build_mirror` makes a new
mirror laid out like the snapshot archive::

    DEST/archive/debian/TIMESTAMP/dists/SUITE/InRelease
    DEST/archive/debian/TIMESTAMP/dists/SUITE/Release
    DEST/archive/debian/TIMESTAMP/dists/SUITE/main/binary-ARCH/Packages{,.xz}
    DEST/archive/debian/TIMESTAMP/pool/main/...

holding every ``.deb`` of the shared mirror (hard links where possible) plus
the packages fetched with ``apt-get download`` from this machine's apt
sources, with their dependency closure. The index is generated from the
control files of exactly the ``.deb`` files present (one version of each
name: the newest), so it is self-consistent even when the host's archive has
moved past the snapshot. ``Release`` lists the indexes by SHA256 and is
clearsigned into ``InRelease`` with a fixed test ed25519 key
(``tests/data/test-mirror-key.asc``) at the Release's date, so the same
packages always give the same ``InRelease``; the public key is exported as a binary keyring for
``reprobuild lock --keyring debian=KEYRING``. Nothing is checked with
``--insecure-allow-unsigned``.

Anything that makes the mirror impossible here (no apt-get, no network, no
gpg) raises :class:`MirrorUnavailable` with a reason for ``pytest.skip``.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

from reprobuild.archives.debian.index import BinaryPackage, parse_packages, parse_relations
from reprobuild.archives.debian.unpack import read_deb
from reprobuild.archives.debian.versions import compare_debian_versions

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "mirrors" / "debian"
SHARED_TIMESTAMP = "20260711T101637Z"
SHARED_SNAPSHOT = SHARED / "archive" / "debian" / SHARED_TIMESTAMP

# apt-cache depends: follow only what an install without recommends needs.
_DEPENDS_FLAGS = (
    "--recurse",
    "--no-recommends",
    "--no-suggests",
    "--no-conflicts",
    "--no-breaks",
    "--no-replaces",
    "--no-enhances",
)
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9+.\-]*$")
# The fields of a Packages stanza that dpkg-scanpackages puts after the control fields.
_INDEX_FIELDS = ("filename", "size", "md5sum", "sha1", "sha256")


class MirrorUnavailable(Exception):
    """The mirror cannot be made on this machine (the reason is the message)."""


@dataclass
class Deb:
    """One ``.deb`` of the mirror with the stanza that the index lists for it."""

    path: Path
    name: str
    version: str
    architecture: str
    source: str
    fields: tuple[tuple[str, str], ...]  # the control file's
    origin: str  # "shared" or "fetched"
    stanza: str = ""  # set by write_index


@dataclass
class DebMirror:
    root: Path  # the directory holding archive/
    timestamp: str
    suite: str
    keyring: Path  # binary OpenPGP keyring with the test key's public key
    fingerprint: str
    debs: dict[str, Deb] = field(default_factory=dict)  # by package name

    @property
    def archive_dir(self) -> Path:
        return self.root / "archive" / "debian"

    @property
    def snapshot_dir(self) -> Path:
        return self.archive_dir / self.timestamp

    @property
    def url(self) -> str:
        """The value for ``--mirror debian=URL``."""
        return self.archive_dir.as_uri() + "/"

    @property
    def fetched(self) -> list[str]:
        return sorted(d.name for d in self.debs.values() if d.origin == "fetched")

    def packages(self) -> tuple[BinaryPackage, ...]:
        """The generated index, parsed by reprobuild."""
        index = self.snapshot_dir / "dists" / self.suite / "main" / "binary-amd64" / "Packages"
        return parse_packages(index.read_bytes(), what=str(index))


# --------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------


def _run(argv: Sequence[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload, no-any-return]


def apt_closure(packages: Iterable[str]) -> list[str]:
    """The names apt would install for ``packages`` (without recommends), per apt-cache."""
    if shutil.which("apt-cache") is None:
        raise MirrorUnavailable("apt-cache is not installed (not a Debian system?)")
    r = _run(["apt-cache", "depends", *_DEPENDS_FLAGS, *packages])
    if r.returncode != 0:
        raise MirrorUnavailable(
            f"apt-cache depends {' '.join(packages)} failed (run apt-get update?): "
            f"{r.stderr.strip()}"
        )
    # Real packages are unindented lines; virtual ones print as <name>.
    return sorted({ln.strip() for ln in r.stdout.splitlines() if _NAME_RE.match(ln)})


def apt_download(names: Sequence[str], dest: Path) -> list[Path]:
    """``apt-get download NAMES`` into ``dest``; the candidate version of each."""
    if not names:
        return []
    if shutil.which("apt-get") is None:
        raise MirrorUnavailable("apt-get is not installed (not a Debian system?)")
    dest.mkdir(parents=True, exist_ok=True)
    before = set(dest.iterdir())
    r = _run(
        ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", *names],
        cwd=dest,
        timeout=1800,
    )
    if r.returncode != 0:
        raise MirrorUnavailable(
            f"apt-get download {' '.join(names)} failed (no network or no apt lists?): "
            f"{(r.stderr or r.stdout).strip()[-800:]}"
        )
    return sorted(p for p in dest.iterdir() if p not in before and p.suffix == ".deb")


# --------------------------------------------------------------------------
# The index
# --------------------------------------------------------------------------


def _digests(path: Path) -> dict[str, str]:
    md5, sha1, sha256 = hashlib.md5(), hashlib.sha1(), hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            md5.update(chunk)
            sha1.update(chunk)
            sha256.update(chunk)
    return {"md5sum": md5.hexdigest(), "sha1": sha1.hexdigest(), "sha256": sha256.hexdigest()}


def pool_path(name: str, version: str, architecture: str, source: str) -> str:
    """Debian's pool location: ``pool/main/g/golang-defaults/golang-go_1.19~1_amd64.deb``."""
    prefix = source[:4] if source.startswith("lib") else source[:1]
    bare = version.split(":", 1)[1] if ":" in version else version
    return f"pool/main/{prefix}/{source}/{name}_{bare}_{architecture}.deb"


def _read(path: Path, origin: str) -> Deb:
    deb = read_deb(path)
    source = (deb.get("Source") or deb.name).split(" ", 1)[0]
    return Deb(path, deb.name, deb.version, deb.architecture, source, deb.fields, origin)


def _newest(debs: Iterable[Deb]) -> dict[str, Deb]:
    out: dict[str, Deb] = {}
    for d in debs:
        old = out.get(d.name)
        if old is None or compare_debian_versions(d.version, old.version) > 0:
            out[d.name] = d
    return out


def unsatisfied(debs: dict[str, Deb]) -> list[str]:
    """Names that a Depends/Pre-Depends group of some package needs but no member satisfies.

    For each unsatisfied group the first alternative is named (what apt would try).
    """
    provided: dict[str, list[str | None]] = {}
    for d in debs.values():
        provided.setdefault(d.name, []).append(d.version)
    fields: dict[str, dict[str, str]] = {}
    for d in debs.values():
        f = dict(d.fields)
        fields[d.name] = f
        for group in parse_relations(f.get("Provides", "")):
            for rel in group:
                provided.setdefault(rel.name, []).append(rel.version)
    missing: set[str] = set()
    for f in fields.values():
        for key in ("Pre-Depends", "Depends"):
            for group in parse_relations(f.get(key, "")):
                ok = any(
                    (v is None and rel.op is None) or (v is not None and rel.satisfied_by(v))
                    for rel in group
                    for v in provided.get(rel.name, [])
                )
                if not ok:
                    missing.add(group[0].name)
    return sorted(missing)


def write_index(
    snapshot_dir: Path,
    suite: str,
    debs: dict[str, Deb],
    arch: str = "amd64",
    *,
    archive_layout: bool = False,
) -> Path:
    """Place the debs in the pool and write ``Packages`` and ``Packages.xz``; returns Packages."""
    stanzas = []
    for name in sorted(debs):
        d = debs[name]
        rel = pool_path(d.name, d.version, d.architecture, d.source)
        target = snapshot_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            try:
                os.link(d.path, target)
            except OSError:
                shutil.copyfile(d.path, target)
        d.path = target
        fields = [(k, v) for k, v in d.fields if k.lower() not in _INDEX_FIELDS]
        sums = _digests(target)
        fields += [
            ("Filename", rel),
            ("Size", str(target.stat().st_size)),
            ("MD5sum", sums["md5sum"]),
            ("SHA256", sums["sha256"]),
        ]
        d.stanza = "".join(f"{k}: {v}\n" for k, v in fields)
        stanzas.append(d.stanza)
    index_dir = snapshot_dir / "dists" / suite / "main" / f"binary-{arch}"
    index_dir.mkdir(parents=True, exist_ok=True)
    # The archive ends every stanza with a blank line, and debootstrap's index
    # reader drops a last stanza without one (archive_layout); the default
    # keeps the bytes the committed go-hello lockfile pins.
    text = ("".join(s + "\n" for s in stanzas) if archive_layout else "\n".join(stanzas)).encode()
    (index_dir / "Packages").write_bytes(text)
    (index_dir / "Packages.xz").write_bytes(lzma.compress(text, preset=6))
    return index_dir / "Packages"


def write_release(snapshot_dir: Path, suite: str, date: str, arch: str = "amd64") -> Path:
    """``dists/SUITE/Release`` listing every index file below it by SHA256."""
    dist = snapshot_dir / "dists" / suite
    files = sorted(p for p in dist.rglob("*") if p.is_file() and p.parent != dist)
    lines = [
        "Origin: reprobuild-test",
        "Label: reprobuild test mirror",
        f"Suite: {suite}",
        f"Codename: {suite}",
        f"Date: {date}",
        f"Architectures: {arch}",
        "Components: main",
        "Description: a test fixture: the shared mirror's packages plus apt-get downloads",
        "SHA256:",
    ]
    for p in files:
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        lines.append(f" {digest} {p.stat().st_size:>16} {p.relative_to(dist).as_posix()}")
    release = dist / "Release"
    release.write_text("\n".join(lines) + "\n")
    return release


# --------------------------------------------------------------------------
# Signing
# --------------------------------------------------------------------------


def _gpg(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GNUPGHOME": str(home), "LC_ALL": "C"}
    r = subprocess.run(
        ["gpg", "--batch", "--no-tty", "--quiet", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    if r.returncode != 0:
        raise MirrorUnavailable(f"gpg {' '.join(args[:2])} failed: {r.stderr.strip()[-800:]}")
    return r


# A fixed test key (committed: it guards nothing) and the Release's own date as
# the signature time make the same packages give the same InRelease bytes on
# every run, so a lockfile made against one test mirror names the InRelease
# that a mirror rebuilt later serves (build --locked checks it by sha256).
TEST_KEY = ROOT / "tests" / "data" / "test-mirror-key.asc"
TEST_KEY_FINGERPRINT = "E1C3842273D8E653EB527285F0463ED3593B1D59"


def _signature_time(release: Path) -> str:
    """gpg's ``--faked-system-time`` for the Release's ``Date`` (fixed, not the clock)."""
    m = re.search(r"^Date: (.+)$", release.read_text(), re.M)
    if not m:
        raise MirrorUnavailable(f"{release} has no Date field")
    when = parsedate_to_datetime(m.group(1).strip())
    return when.strftime("%Y%m%dT%H%M%S") + "!"


def sign_release(release: Path, keyring: Path) -> str:
    """Clearsign ``release`` as ``InRelease`` beside it with the fixed test key.

    Writes the public key to ``keyring`` (binary, as ``gpg --export`` gives)
    and returns the key's fingerprint. ed25519 signatures are deterministic
    and the signature time is the Release's date, so the bytes are too. The
    key is imported into a temporary GNUPGHOME, removed (with its agent)
    before returning.
    """
    if shutil.which("gpg") is None:
        raise MirrorUnavailable("gpg is not installed (Debian package gnupg)")
    # A short path: the agent's socket must fit in sockaddr_un.
    home = Path(tempfile.mkdtemp(prefix="rb-gpg-"))
    os.chmod(home, 0o700)
    try:
        fpr = TEST_KEY_FINGERPRINT
        _gpg(home, "--pinentry-mode", "loopback", "--passphrase", "", "--import", str(TEST_KEY))
        _gpg(
            home,
            "--faked-system-time",
            _signature_time(release),
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--local-user",
            fpr,
            "--digest-algo",
            "SHA256",
            "--clearsign",
            "--output",
            str(release.with_name("InRelease")),
            str(release),
        )
        keyring.write_bytes(b"")
        _gpg(home, "--output", str(keyring), "--yes", "--export", fpr)
        return fpr
    finally:
        subprocess.run(
            ["gpgconf", "--kill", "all"],
            env={**os.environ, "GNUPGHOME": str(home)},
            capture_output=True,
            check=False,
        )
        shutil.rmtree(home, ignore_errors=True)


# --------------------------------------------------------------------------
# The whole mirror
# --------------------------------------------------------------------------


def shared_release_date(snapshot: Path = SHARED_SNAPSHOT, suite: str = "bookworm") -> str:
    text = (snapshot / "dists" / suite / "InRelease").read_text(errors="replace")
    m = re.search(r"^Date: (.+)$", text, re.M)
    if m:
        return m.group(1).strip()
    import datetime as dt

    return format_datetime(dt.datetime.now(dt.UTC), usegmt=True)


def build_mirror(
    dest: Path,
    extra: Sequence[str],
    *,
    shared: Path = SHARED_SNAPSHOT,
    timestamp: str = SHARED_TIMESTAMP,
    suite: str = "bookworm",
    max_rounds: int = 5,
    archive_layout: bool = False,
) -> DebMirror:
    """A signed mirror with the shared mirror's debs plus ``extra`` and their closure.

    Packages whose name the shared mirror already has are not fetched unless
    a fetched package needs a version the shared one does not satisfy; the
    index then keeps only the newest file of each name.
    """
    if not shared.is_dir():
        raise MirrorUnavailable(f"the shared Debian mirror is missing ({shared})")
    pool: list[Deb] = [_read(p, "shared") for p in sorted(shared.joinpath("pool").rglob("*.deb"))]
    have = {d.name for d in pool}
    download = dest / "downloads"
    wanted = [n for n in apt_closure(extra) if n not in have]
    fetched_names: set[str] = set()
    for _ in range(max_rounds):
        todo = [n for n in wanted if n not in fetched_names]
        if not todo:
            break
        fetched_names.update(todo)
        pool += [_read(p, "fetched") for p in apt_download(todo, download)]
        debs = _newest(pool)
        # A fetched package may need something newer than the shared mirror has.
        wanted = [n for n in unsatisfied(debs) if n not in fetched_names]
    debs = _newest(pool)
    still = unsatisfied(debs)
    if still:
        raise MirrorUnavailable(f"the mirror's packages need what apt cannot fetch: {still}")
    missing = sorted(set(extra) - set(debs))
    if missing:
        raise MirrorUnavailable(f"apt-get download did not provide {missing}")
    snapshot_dir = dest / "archive" / "debian" / timestamp
    write_index(snapshot_dir, suite, debs, archive_layout=archive_layout)
    release = write_release(snapshot_dir, suite, shared_release_date(shared, suite))
    keyring = dest / "test-mirror-keyring.gpg"
    fpr = sign_release(release, keyring)
    shutil.rmtree(download, ignore_errors=True)
    return DebMirror(dest, timestamp, suite, keyring, fpr, debs)


__all__ = [
    "SHARED_SNAPSHOT",
    "DebMirror",
    "MirrorUnavailable",
    "apt_closure",
    "apt_download",
    "build_mirror",
    "sign_release",
    "unsatisfied",
    "write_index",
    "write_release",
]
