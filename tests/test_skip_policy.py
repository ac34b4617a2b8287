"""No silent skips: under CI=true a skip fails unless tests/skip-allowlist.txt allows it.

The hooks are the real ones of tests/conftest.py, run in a separate pytest
process; the last test runs real tests of this suite from a copy of the
repository that has no ``../shared`` beside it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import skips

ROOT = Path(__file__).resolve().parent.parent

SAMPLE = """
import pytest

def test_shared():
    pytest.skip("the shared Debian mirror is not beside the repository")

def test_root_only():
    pytest.skip("needs root")

@pytest.mark.skipif(True, reason="gpgv is not installed")
def test_marker():
    pass

def test_runs():
    pass
"""


def _pytest(where: Path, *args: str, ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", *args],
        cwd=where, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import pytest_make_collect_report, pytest_runtest_makereport\n"
    )
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    tmp_path.chmod(0o755)
    return tmp_path


def test_outside_ci_a_skip_is_a_skip(sample: Path) -> None:
    r = _pytest(sample, ci=None)
    assert r.returncode == 0, r.stdout
    assert "1 passed, 3 skipped" in r.stdout


def test_in_ci_a_skip_not_on_the_allowlist_fails(sample: Path) -> None:
    r = _pytest(sample, ci="true")
    assert r.returncode == 1, r.stdout
    # "needs root" is allowed only in an unprivileged run (the allowlist's nonroot entry)
    refused = ("test_shared", "test_marker") + (("test_root_only",) if os.geteuid() == 0 else ())
    for name in refused:
        line = next(
            ln
            for ln in r.stdout.splitlines()
            if f"::{name}" in ln and ln.startswith(("FAILED", "ERROR"))
        )
        assert "skip-allowlist.txt" in line, line
    assert "the shared Debian mirror is not beside the repository" in r.stdout
    assert "PASSED test_sample.py::test_runs" in r.stdout


def test_a_root_only_skip_is_allowed_only_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    for reason in (
        "needs root",
        "needs bwrap and root (maintainer scripts chown files)",
        "umoci unpack keeps owners and device nodes only as root",
    ):
        monkeypatch.setattr(os, "geteuid", lambda: 1000)
        assert skips.allowed(reason), reason
        monkeypatch.setattr(os, "geteuid", lambda: 0)
        assert not skips.allowed(reason), reason


def test_the_allowlist_is_short_and_every_entry_says_why() -> None:
    lines = skips.ALLOWLIST.read_text().splitlines()
    entries = skips.allowlist()
    assert 1 <= len(entries) <= 10
    for i, line in enumerate(lines):
        if line.strip() and not line.startswith("#"):
            assert lines[i - 1].startswith("# "), f"entry {line!r} has no comment saying why"
    assert skips.parse("nonroot: needs root")[0].condition == "nonroot"
    with pytest.raises(ValueError, match="bad regular expression"):
        skips.parse("(unclosed")


@pytest.mark.parametrize(
    "reason",
    [
        "the shared Debian mirror is not beside the repository",
        "gpgv is not installed",
        "apt's bookworm has moved past the snapshot for ['golang-go']",
        "cannot make a Debian mirror with golang-go: no network",
        "cannot mount a tmpfs here (mount: permission denied)",
    ],
)
def test_what_ci_must_never_accept(reason: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for euid in (0, 1000):
        monkeypatch.setattr(os, "geteuid", lambda euid=euid: euid)
        assert not skips.allowed(reason), reason


def test_ci_fails_when_the_shared_fixtures_are_missing(tmp_path: Path) -> None:
    """Real tests of this suite, run from a copy of the repository without ../shared."""
    repo = tmp_path / "alone" / "repo"
    repo.mkdir(parents=True)
    for name in ("reprobuild", "snapshots", "recipes"):
        (repo / name).symlink_to(ROOT / name)
    shutil.copy(ROOT / "pyproject.toml", repo)
    shutil.copytree(ROOT / "tests", repo / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    assert not (repo.parent / "shared").exists()
    targets = ("tests/archives/test_debian_release.py", "tests/resolve/test_apt_sets.py")
    args = ("-m", "not slow", "-k", "shipped_keyring_is_the_mirror_keyring or variants_nest")
    plain = _pytest(repo, *args, *targets, ci=None)
    assert plain.returncode == 0, plain.stdout[-3000:]
    assert "skipped" in plain.stdout and "failed" not in plain.stdout
    ci = _pytest(repo, *args, *targets, ci="true")
    assert ci.returncode == 1, ci.stdout[-3000:]
    assert "not on tests/skip-allowlist.txt" in ci.stdout
