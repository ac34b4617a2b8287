"""Issue 22: a lost scheduler or worker fails the build within a bounded time.

A real ``dask scheduler`` and ``dask worker`` (no nanny: a killed worker stays
gone) on loopback; the one step is a fetchurl from a server that accepts and
never answers, so it is certainly running on the worker when the scheduler
(or the worker) is killed with SIGKILL. The build must end in exit 2 within
``REPROBUILD_CLUSTER_TIMEOUT`` plus a little, not wait for the step.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client

from tests.distributed.common import workdir
from tests.distributed.tlscluster import DASK, have_tools


@contextlib.contextmanager
def _silent_server() -> Iterator[tuple[int, threading.Event]]:
    """A loopback server that accepts and never answers; the event: someone connected."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    called, stop = threading.Event(), threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])
                called.set()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], called
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def _start(argv: list[str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REPROBUILD_", "DASK_"))}
    env["PYTHONWARNINGS"] = "ignore"
    with open(log, "wb") as out:
        return subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=out, stderr=out, start_new_session=True
        )


@pytest.mark.skipif(have_tools() is not None, reason=str(have_tools()))
@pytest.mark.parametrize("lost", ["scheduler", "worker"])
def test_a_lost_scheduler_or_worker_fails_the_build_in_bounded_time(
    tmp_path: Path, lost: str
) -> None:
    info = tmp_path / "scheduler.json"
    scheduler = [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                 "--scheduler-file", str(info)]  # fmt: skip
    procs = {"scheduler": _start(scheduler, tmp_path, tmp_path / "scheduler.log")}
    try:
        deadline = time.monotonic() + 120
        while not info.exists() or not info.read_text().strip():
            assert procs["scheduler"].poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        address = json.loads(info.read_text())["address"]
        procs["worker"] = _start([DASK, "worker", address, "--nthreads", "1", "--no-nanny",
                                  "--no-dashboard", "--local-directory", str(tmp_path / "dask-worker")],
                                 tmp_path, tmp_path / "worker.log")  # fmt: skip
        with Client(address, timeout=60) as client:  # the worker joined before the build
            client.wait_for_workers(1, timeout=120)
        with _silent_server() as (port, called):
            recipe = (
                f'{{ f = fetchurl {{ url = "http://127.0.0.1:{port}/x"; '
                f'sha256 = "{"0" * 64}"; }}; }}\n'
            )
            env = {k: v for k, v in os.environ.items() if not k.startswith("REPROBUILD_")}
            env.update(REPROBUILD_CLUSTER_TIMEOUT="3", REPROBUILD_FETCH_TIMEOUT="300",
                       REPROBUILD_FETCH_RETRIES="0")  # fmt: skip
            build = subprocess.Popen(
                [sys.executable, "-m", "reprobuild", "build", "--store", str(tmp_path / "s"),
                 "--executor", "dask", "--scheduler", address, "r.repro"],
                cwd=workdir(tmp_path, recipe=recipe), env=env, text=True,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            while not called.wait(0.2):  # the step is running on the worker
                assert build.poll() is None, build.communicate()
                assert time.monotonic() < deadline, "the step never started"
            os.killpg(procs[lost].pid, signal.SIGKILL)
            procs[lost].wait()
            killed = time.monotonic()
            # bounded: the step alone would wait 300 s for the silent server
            _, err = build.communicate(timeout=120)
            waited = time.monotonic() - killed
    finally:
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert build.returncode == 2, err
    assert "Traceback" not in err, err
    if lost == "scheduler":  # Dask's client noticed first, or reprobuild's watchdog did
        assert (
            f"the Dask cluster at {address} lost fetchurl step 'f'" in err
            or f"lost the Dask scheduler at {address}: no answer for 3 s" in err
        ), err
    else:
        assert "left the cluster while running it" in err or "has had no worker" in err, err
    assert waited < 100, waited  # not the fetch timeout: the cluster timeout ended it
