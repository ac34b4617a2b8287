"""The bwrap sandbox, for real: a busybox root from a genuine Debian package."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from reprobuild.sandbox import Bind, SandboxError, SandboxSpec, SandboxUnavailable, bwrap_argv, run

ROOT = Path(__file__).resolve().parents[2]
BUSYBOX_DEB = next((ROOT / "snapshots" / "demo").rglob("busybox-static_*.deb"))
EPOCH = 1783765000

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="bwrap is not installed (Debian package bubblewrap)"
)


@pytest.fixture
def busybox_root(tmp_path: Path) -> Path:
    """A root with /bin/busybox and its applets; dpkg-deb is the reference unpacker."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(BUSYBOX_DEB), str(root)], check=True)
    (root / "usr" / "bin").mkdir(parents=True, exist_ok=True)
    (root / "bin").mkdir(exist_ok=True)
    for applet in ("sh", "cat", "echo", "hostname", "env", "ls", "nc", "wget", "id", "touch"):
        (root / "bin" / applet).symlink_to("busybox")
    return root


def sh(root: Path, script: str, **kw: object) -> str:
    spec = SandboxSpec(root=root, command=("/bin/sh", "-c", script), epoch=EPOCH, **kw)  # type: ignore[arg-type]
    return run(spec).stdout.decode()


def test_environment_is_exactly_the_declared_one(
    busybox_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_HOST_VARIABLE", "leak")
    out = sh(busybox_root, "env | sort")
    env = dict(line.split("=", 1) for line in out.splitlines())
    assert "SECRET_HOST_VARIABLE" not in env
    assert env["SOURCE_DATE_EPOCH"] == str(EPOCH)
    assert env["TZ"] == "UTC" and env["LC_ALL"] == "C.UTF-8" and env["HOME"] == "/root"
    assert sh(busybox_root, "hostname").strip() == "reprobuild"
    assert sh(busybox_root, "id -u").strip() == "0"


def test_no_network_even_to_loopback_of_the_host(busybox_root: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    server.settimeout(0.1)
    accepted: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        # Polls, so that closing the socket at the end never leaves a thread
        # blocked in accept() (which pytest reports under the next test).
        while not stop.is_set():
            try:
                accepted.append(server.accept())
            except TimeoutError:
                continue
            except OSError:
                return

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    spec = SandboxSpec(
        root=busybox_root,
        command=("/bin/sh", "-c", f"echo hi | nc -w 2 127.0.0.1 {port}"),
        epoch=EPOCH,
    )
    result = run(spec, check=False)
    assert result.returncode != 0
    stop.set()
    t.join(1)
    server.close()
    assert accepted == []


def test_host_files_are_invisible_but_inputs_are_bound(busybox_root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text("top secret")
    assert (
        "No such file"
        in run(
            SandboxSpec(root=busybox_root, command=("/bin/cat", str(secret)), epoch=EPOCH),
            check=False,
        ).stderr.decode()
    )
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "a.txt").write_text("declared")
    out = sh(busybox_root, "cat /inputs/a.txt", binds=(Bind(inputs, "/inputs"),))
    assert out == "declared"
    # Read-only inputs stay read-only.
    res = run(
        SandboxSpec(
            root=busybox_root,
            command=("/bin/touch", "/inputs/new"),
            epoch=EPOCH,
            binds=(Bind(inputs, "/inputs"),),
        ),
        check=False,
    )
    assert res.returncode != 0 and not (inputs / "new").exists()


def test_writes_land_in_the_tree_identically(busybox_root: Path) -> None:
    (busybox_root / "root").mkdir()
    sh(busybox_root, "echo built > /root/out.txt")
    assert (busybox_root / "root" / "out.txt").read_text() == "built\n"
    first = sh(busybox_root, "ls -la /bin | wc -l; env | sort; hostname")
    second = sh(busybox_root, "ls -la /bin | wc -l; env | sort; hostname")
    assert first == second


def test_failure_is_an_error_with_the_output(busybox_root: Path) -> None:
    with pytest.raises(SandboxError) as info:
        sh(busybox_root, "echo something broke >&2; exit 3")
    assert "exit code 3" in info.value.message and "something broke" in info.value.message


def test_missing_bwrap_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SandboxUnavailable) as info:
        bwrap_argv(SandboxSpec(root=tmp_path, command=("/bin/true",), epoch=0))
    assert "bubblewrap" in (info.value.hint or "")


def test_a_root_without_the_program_names_it(tmp_path: Path) -> None:
    """bwrap made the sandbox but the root has no /bin/sh: say so, not 'user
    namespaces may be disabled'."""
    (tmp_path / "root").mkdir()
    spec = SandboxSpec(root=tmp_path / "root", command=("/bin/sh", "-c", "true"), epoch=EPOCH)
    with pytest.raises(SandboxError) as info:
        run(spec)
    assert "the root has no /bin/sh" in info.value.message
    assert info.value.hint is not None and "dash" in info.value.hint
