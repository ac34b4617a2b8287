"""Issue 22: only authenticated clusters.

A plain ``tcp://`` scheduler off loopback is refused unless the user says
``--insecure-allow-tcp``. The end-to-end test runs in a private network
namespace (``unshare -n``) whose loopback device also carries 198.51.100.7
(TEST-NET-2), with a real ``dask scheduler`` listening there: no real
interface of the machine is ever bound or reached.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reprobuild.cluster_auth import (
    ClusterRefused,
    check_address,
    check_worker_remote,
    is_loopback,
)
from tests.distributed.common import MIRROR, workdir
from tests.distributed.tlscluster import DASK

NETNS = """\
set -u
ip link set lo up
ip addr add 198.51.100.7/32 dev lo
"$DASK" scheduler --host 198.51.100.7 --port 8786 --no-dashboard >scheduler.log 2>&1 &
sched=$!
for i in $(seq 600); do
  (exec 3<>/dev/tcp/198.51.100.7/8786) 2>/dev/null && break
  sleep 0.1
done
build() {
  "$PY" -m reprobuild build --store "$STORE" --mirror "$MIRROR" --executor dask \\
    --scheduler tcp://198.51.100.7:8786 "$@" r.repro
}
build >refused.out 2>refused.err; echo $? >refused.rc
REPROBUILD_CLUSTER_TIMEOUT=3 build --insecure-allow-tcp >allowed.out 2>allowed.err
echo $? >allowed.rc
kill $sched; wait $sched
"""


def _netns_usable() -> str | None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip (util-linux, iproute2) is not installed"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        return f"cannot make a network namespace here: {probe.stderr.decode().strip()}"
    return None


@pytest.mark.skipif(_netns_usable() is not None, reason=str(_netns_usable()))
def test_plain_tcp_off_loopback_is_refused_unless_allowed(tmp_path: Path) -> None:
    work = workdir(tmp_path)
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "PY": sys.executable,
        "DASK": DASK,
        "STORE": str(tmp_path / "store"),
        "MIRROR": MIRROR,
        "PYTHONWARNINGS": "ignore",
    }
    done = subprocess.run(
        ["unshare", "-n", "bash", "-c", NETNS], cwd=work, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    def read(name: str) -> str:
        return (work / name).read_text()

    # refused before any connection, saying why and how to use TLS
    assert read("refused.rc").strip() == "2", read("refused.err")
    err = read("refused.err")
    assert "refusing the unauthenticated scheduler tcp://198.51.100.7:8786" in err
    assert "not a loopback address" in err and "tls://" in err
    assert "--insecure-allow-tcp" in err and "Traceback" not in err
    # allowed: it connects (a warning says so) and, with no worker there, ends in bounded time
    assert read("allowed.rc").strip() == "2", read("allowed.err")
    err = read("allowed.err")
    assert "warning: --insecure-allow-tcp" in err
    assert "has had no worker for 3 s" in err and "Traceback" not in err
    # the scheduler saw one client: the allowed build; the refused one never connected
    assert read("scheduler.log").count("Receive client connection") == 1


@pytest.mark.parametrize(
    "address",
    ["tcp://127.0.0.1:8786", "tcp://localhost:8786", "127.0.0.1:8786", "tcp://[::1]:8786",
     "tls://198.51.100.7:8786", "wss://198.51.100.7:8786", "inproc://10.0.0.1/1/2"],
)  # fmt: skip
def test_loopback_and_encrypted_addresses_are_accepted(address: str) -> None:
    check_address(address)


@pytest.mark.parametrize(
    "address",
    ["tcp://198.51.100.7:8786", "198.51.100.7:8786", "ws://198.51.100.7:8786",
     "tcp://[2001:db8::1]:8786", "tcp://name.invalid:8786", "ucx://198.51.100.7:1"],
)  # fmt: skip
def test_plain_addresses_off_loopback_are_refused(address: str) -> None:
    with pytest.raises(ClusterRefused, match="refusing the unauthenticated scheduler"):
        check_address(address)
    check_address(address, insecure_allow_tcp=True)


def test_an_unknown_protocol_is_refused() -> None:
    with pytest.raises(ClusterRefused, match="unknown protocol 'udp'"):
        check_address("udp://127.0.0.1:1", insecure_allow_tcp=True)


def test_loopback_names() -> None:
    assert is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("198.51.100.7") and not is_loopback("name.invalid")


def test_worker_remote_credentials_travel_only_over_tls() -> None:
    plain = check_address("tcp://127.0.0.1:8786")
    with pytest.raises(ClusterRefused) as caught:
        check_worker_remote("https://alice:TOKEN@git.example/x.git", plain)
    assert "TOKEN" not in caught.value.message and "alice:***@" in caught.value.message
    check_worker_remote("https://git.example/x.git", plain)  # no password: fine
    check_worker_remote("alice@git.example:x.git", plain)  # ssh: keys, not passwords
    check_worker_remote("https://alice:TOKEN@git.example/x.git", check_address("tls://h:1"))
