"""Issue 9: steps on a Dask distributed cluster give the bytes of a local build.

A real ``LocalCluster`` (worker processes on loopback) runs the steps of a
``reprobuild build --executor dask`` started as a separate process; the
workers share the store by its path. Digests are compared with a local
``-j1`` build into another store, and the scheduler's own list of workers
proves where the steps ran.
"""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import LocalCluster
from dulwich.repo import Repo

from reprobuild.store import Store
from tests.distributed.common import MIRROR, build_json, digests, workdir
from tests.support.cli import reprobuild
from tests.support.mirror import serve
from tests.support.recipes import LIGHT_DEMO


def _local_cluster(workers: int) -> LocalCluster:
    """Worker processes on loopback, one thread each, no dashboards."""
    return LocalCluster(
        n_workers=workers,
        processes=True,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=None,
        worker_dashboard_address=None,
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with _local_cluster(2) as c:
        yield c


# The inputs and the first rootfs of RECIPE (the same step keys).
INPUTS_ONLY = """\
let
  snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ]; };
in { root = rootfs { snapshot = snap; variant = "none"; packages = [ "netbase" ]; }; }
"""


def _workers(cluster: LocalCluster) -> set[str]:
    return set(cluster.scheduler_info["workers"])


def test_a_dask_build_has_the_digests_of_a_local_j1_build(
    tmp_path: Path, cluster: LocalCluster
) -> None:
    local = build_json(workdir(tmp_path, "local"), tmp_path / "local-store", "-j1")
    work = workdir(tmp_path, "dist")
    shared = tmp_path / "shared-store"
    dist = build_json(work, shared, "--executor", "dask", "--scheduler", cluster.scheduler_address)
    assert digests(dist) == digests(local)
    assert dist["steps"] == {"total": 7, "cached": 0, "run": 7}
    # Every step ran on a worker of the cluster, none in the coordinator.
    assert len(dist["ran_on"]) == 7
    assert set(dist["ran_on"].values()) <= _workers(cluster)
    # ... and the workers recorded them in the shared store, with their content.
    with Store.open_store(shared, create=False) as store:
        for key in dist["ran_on"]:
            record = store.lookup_step(key)
            assert record is not None and all(store.has(o.sha256) for o in record.outputs)
    assert (work / "out/r/t.tar").is_file()
    # A second distributed build finds everything recorded: nothing is sent.
    again = build_json(work, shared, "--executor", "dask", "--scheduler", cluster.scheduler_address)
    assert again["steps"] == {"total": 7, "cached": 7, "run": 0}
    assert again["ran_on"] == {} and digests(again) == digests(local)


def test_workers_without_the_store_exchange_through_a_git_remote(
    tmp_path: Path, cluster: LocalCluster
) -> None:
    local = build_json(workdir(tmp_path, "local"), tmp_path / "local-store", "-j1")
    remote = tmp_path / "exchange.git"
    coordinator = tmp_path / "coordinator-store"
    # The coordinator already has some steps (the inputs and one rootfs): it must
    # push them to the remote for the workers that build on them.
    build_json(workdir(tmp_path, "inputs", INPUTS_ONLY), coordinator)
    dist = build_json(
        workdir(tmp_path, "dist"),
        coordinator,
        "--executor",
        "dask",
        "--scheduler",
        cluster.scheduler_address,
        "--worker-remote",
        str(remote),
    )
    assert digests(dist) == digests(local)
    assert dist["steps"] == {"total": 7, "cached": 3, "run": 4}
    assert set(dist["ran_on"].values()) <= _workers(cluster) and len(dist["ran_on"]) == 4
    # Content went through the remote (a plain bare git repository): the inputs'
    # for the workers, the workers' outputs for the coordinator; records did not
    # (the coordinator records what it checked) ...
    with Store.open_store(coordinator, create=False) as store:
        outputs = {o.sha256 for k in dist["ran_on"] for o in store.lookup_step(k).outputs}
    refs = set(Repo(str(remote)).get_refs())
    assert {f"refs/content/sha256/{sha}".encode() for sha in outputs} <= refs
    assert not any(r.startswith(b"refs/steps/") for r in refs)
    # ... and the coordinator's store is complete.
    v = reprobuild(tmp_path, "store", "verify", "--store", str(coordinator))
    assert v.returncode == 0, v.stdout + v.stderr
    with Store.open_store(coordinator, create=False) as store:
        assert all(store.lookup_step(k) is not None for k in dist["ran_on"])


def test_a_step_that_fails_on_a_worker_is_named_with_its_reason(
    tmp_path: Path, cluster: LocalCluster
) -> None:
    (tmp_path / "served").mkdir()
    payload = tmp_path / "served" / "payload"
    payload.write_bytes(b"not what the recipe promised\n")
    wrong = "0" * 64
    with serve(tmp_path / "served") as server:
        recipe = f'{{ f = fetchurl {{ url = "{server.url}payload"; sha256 = "{wrong}"; }}; }}\n'
        r = reprobuild(
            workdir(tmp_path, recipe=recipe),
            "build",
            "--store",
            str(tmp_path / "s"),
            "--executor",
            "dask",
            "--scheduler",
            cluster.scheduler_address,
            "r.repro",
            env={"REPROBUILD_FETCH_RETRIES": "0"},  # the policy travels to the worker
        )
    assert r.returncode == 2
    assert "fetchurl step 'f' failed" in r.stderr
    assert wrong in r.stderr and hashlib.sha256(payload.read_bytes()).hexdigest() in r.stderr
    assert "Traceback" not in r.stderr


def test_dask_is_not_imported_unless_asked_for(tmp_path: Path) -> None:
    r = reprobuild(tmp_path, "build", "--help", prefix=(), env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert r.returncode == 0 and "--executor [local|dask]" in r.stdout
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if "|" in line}
    assert "json" in imported or "click" in imported  # the import log is there
    assert not {m for m in imported if m.split(".")[0] in ("dask", "distributed")}


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = reprobuild(
        workdir(tmp_path),
        "build",
        "--store",
        str(tmp_path / "s"),
        "--mirror",
        MIRROR,
        "--executor",
        "dask",
        "--scheduler",
        f"tcp://127.0.0.1:{port}",
        "r.repro",
        env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"},
        timeout=120,
    )
    assert r.returncode == 2
    assert f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "w" / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--executor", "dask"), "--executor dask needs --scheduler"),
        (("--scheduler", "tcp://127.0.0.1:8786"), "--scheduler is only used with --executor dask"),
        (("--executor", "ray"), "Invalid value for '--executor'"),
    ],
)
def test_inconsistent_executor_options_are_refused(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    r = reprobuild(workdir(tmp_path), "build", "--store", str(tmp_path / "s"), *args, "r.repro")
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_the_light_demo_on_three_workers_equals_a_local_j1_build(tmp_path: Path) -> None:
    local = build_json(workdir(tmp_path, "local", LIGHT_DEMO), tmp_path / "local-store", "-j1")
    with _local_cluster(3) as c:
        dist = build_json(
            workdir(tmp_path, "dist", LIGHT_DEMO),
            tmp_path / "shared",
            "--executor",
            "dask",
            "--scheduler",
            c.scheduler_address,
        )
        workers = set(c.scheduler_info["workers"])
    assert digests(dist) == digests(local)
    assert dist["steps"]["run"] == dist["steps"]["total"] == len(dist["ran_on"])
    assert set(dist["ran_on"].values()) <= workers


SLEEPER = """\
let
  snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ]; };
  root = rootfs { snapshot = snap; variant = "none"; packages = [ "busybox-static" "dash" ]; configure = false; };
  slow = run {
    inherit root;
    script = "/bin/busybox sleep 4.25; /bin/busybox mkdir -p /out; echo done > /out/x";
    outputs = [ "/out" ];
  };
in { t = tarball { root = slow; }; }
"""


def _sleeping_step_running() -> bool:
    for proc in Path("/proc").iterdir():
        try:
            if b"sleep\x004.25" in (proc / "cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


# A nanny restarting a killed worker asks for the default dashboard port again.
@pytest.mark.filterwarnings("ignore:Port 8787 is already in use")
def test_a_worker_killed_in_the_middle_of_a_step_is_survived(tmp_path: Path) -> None:
    """kill -9 of every worker process while a step runs on one: the nannies
    start new workers, Dask runs the step again, and the build ends with the
    bytes of a local build (a half-run step leaves nothing the store keeps)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from distributed import Client

    local = build_json(workdir(tmp_path, "local", SLEEPER), tmp_path / "local-store", "-j1")
    work = workdir(tmp_path, "dist", SLEEPER)
    store = tmp_path / "shared-store"
    with (
        _local_cluster(2) as cluster,
        Client(cluster) as client,
    ):
        pids = list(client.run(os.getpid).values())
        env = {k: v for k, v in os.environ.items() if not k.startswith("REPROBUILD_")}
        build = subprocess.Popen(
            [sys.executable, "-m", "reprobuild", "build", "--json", "--store", str(store),
             "--mirror", MIRROR, "--executor", "dask", "--scheduler", cluster.scheduler_address,
             "r.repro"],
            cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while not _sleeping_step_running():
            assert build.poll() is None, build.communicate()
            assert time.monotonic() < deadline, "the run step never started"
            time.sleep(0.05)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        out, err = build.communicate(timeout=300)
        # The nannies started new workers; the step ran again on one of them.
        assert not set(client.run(os.getpid).values()) & set(pids)
    assert build.returncode == 0, err
    assert "Traceback" not in err
    dist = json.loads(out)
    assert digests(dist) == digests(local)
    assert reprobuild(work, "store", "verify", "--store", str(store)).returncode == 0
