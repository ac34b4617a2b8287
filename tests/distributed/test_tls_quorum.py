"""Issue 22: builds on a mutual-TLS cluster, and ``--quorum N``.

One real cluster for the module: ``dask scheduler --protocol tls`` and two
``dask worker`` processes with certificates made by openssl here, the first
pinned to one CPU with ``taskset``, the second to two. A deterministic recipe
built on it (alone, or with each step on both workers) gives the digests of a
local ``-j1`` build; a step that writes ``nproc`` makes the two workers
disagree, and the build fails naming the path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reprobuild.store import Store
from tests.distributed.common import MIRROR, build_json, digests, workdir
from tests.distributed.tlscluster import TlsCluster, have_tools, tls_cluster
from tests.support.cli import reprobuild

pytestmark = pytest.mark.skipif(have_tools() is not None, reason=str(have_tools()))

NPROC = """\
let
  snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ]; };
  root = rootfs {
    snapshot = snap; variant = "none"; packages = [ "busybox-static" "dash" ]; configure = false;
  };
  cpus = run {
    inherit root;
    script = "/bin/busybox mkdir -p /out; /bin/busybox nproc > /out/cpus";
    outputs = [ "/out" ];
  };
in { t = tarball { root = cpus; }; }
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsCluster]:
    cpus = ["0", "0,1"] if (os.cpu_count() or 1) >= 2 else ["0", "0"]
    with tls_cluster(tmp_path_factory.mktemp("tls"), cpus) as c:
        yield c


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("local")
    return digests(build_json(workdir(tmp, "local"), tmp / "store", "-j1"))


def _build(
    tmp_path: Path, cluster: TlsCluster, *args: str, recipe: str | None = None
) -> dict[str, Any]:
    work = workdir(tmp_path, "dist", **({"recipe": recipe} if recipe else {}))
    return build_json(
        work,
        tmp_path / "store",
        "--executor", "dask", "--scheduler", cluster.address, *args,
        env=cluster.certs.client_env(),
    )  # fmt: skip


def test_a_mutual_tls_build_equals_a_local_build(
    tmp_path: Path, cluster: TlsCluster, local: dict[str, str]
) -> None:
    assert cluster.address.startswith("tls://127.0.0.1:")
    dist = _build(tmp_path, cluster)
    assert digests(dist) == local
    assert dist["steps"]["run"] == 7 and len(dist["ran_on"]) == 7
    assert set(dist["ran_on"].values()) <= set(cluster.workers.values())
    assert all(w.startswith("tls://") for w in dist["ran_on"].values())


def test_quorum_2_on_a_deterministic_recipe_equals_a_local_build(
    tmp_path: Path, cluster: TlsCluster, local: dict[str, str]
) -> None:
    dist = _build(tmp_path, cluster, "--quorum", "2", "--attest")
    assert digests(dist) == local
    both = sorted(cluster.workers.values())
    assert dist["quorum"] == 2
    assert len(dist["agreed"]) == 7 and all(w == both for w in dist["agreed"].values())
    # every step is recorded once, with the agreed bytes
    with Store.open_store(tmp_path / "store", create=False) as store:
        assert all(store.lookup_step(k) is not None for k in dist["agreed"])
    # the provenance names the workers that agreed on each step the output came from
    statement = json.loads((tmp_path / "dist/out/r/t.intoto.json").read_text())
    (quorum,) = statement["predicate"]["runDetails"]["byproducts"]
    assert quorum["annotations"]["required"] == 2
    steps = quorum["annotations"]["steps"]
    assert {s["kind"] for s in steps} == {"snapshot", "fetch", "rootfs", "tarball"}
    assert all(s["workers"] == both for s in steps)


def test_quorum_2_through_a_worker_remote_equals_a_local_build(
    tmp_path: Path, cluster: TlsCluster, local: dict[str, str]
) -> None:
    remote = tmp_path / "exchange.git"
    dist = _build(tmp_path, cluster, "--quorum", "2", "--worker-remote", str(remote))
    assert digests(dist) == local
    assert all(len(w) == 2 for w in dist["agreed"].values()) and len(dist["agreed"]) == 7
    v = reprobuild(tmp_path, "store", "verify", "--store", str(tmp_path / "store"))
    assert v.returncode == 0, v.stdout + v.stderr


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 CPUs for workers that differ")
def test_quorum_2_with_workers_that_disagree_fails_naming_the_path(
    tmp_path: Path, cluster: TlsCluster
) -> None:
    store = tmp_path / "store"
    r = reprobuild(
        workdir(tmp_path, "dist", NPROC),
        "build", "--store", str(store), "--mirror", MIRROR, "--executor", "dask",
        "--scheduler", cluster.address, "--quorum", "2", "r.repro",
        env=cluster.certs.client_env(), timeout=300,
    )  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert "run step 'cpus' is not reproducible" in r.stderr
    for worker in cluster.workers.values():
        assert worker in r.stderr
    assert r.stderr.count("outputs.tar sha256:") == 2
    assert "first difference: outputs.tar: out/cpus" in r.stderr
    # what nproc said on each (the diff runs from whichever worker answered first)
    said = {s for s in map(str.strip, r.stderr.splitlines()) if s in ("-1", "+1", "-2", "+2")}
    assert said in ({"-2", "+1"}, {"-1", "+2"}), r.stderr
    # nothing was recorded for the step the workers disagree on, nor after it
    with Store.open_store(store, create=False) as s:
        kinds = {s.lookup_step(k).kind for k in s.step_keys()}  # type: ignore[union-attr]
    assert "run" not in kinds and "tarball" not in kinds
    assert "rootfs" in kinds


def test_a_quorum_larger_than_the_cluster_is_refused_after_a_bounded_wait(
    tmp_path: Path, cluster: TlsCluster
) -> None:
    r = reprobuild(
        workdir(tmp_path),
        "build", "--store", str(tmp_path / "s"), "--mirror", MIRROR, "--executor", "dask",
        "--scheduler", cluster.address, "--quorum", "3", "r.repro",
        env={**cluster.certs.client_env(), "REPROBUILD_CLUSTER_TIMEOUT": "2"}, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "--quorum 3 needs 3 distinct workers" in r.stderr and "has 2" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("setting", ["missing", "unreadable"])
def test_tls_without_usable_settings_is_a_clear_error(
    tmp_path: Path, cluster: TlsCluster, setting: str
) -> None:
    env = {}
    if setting == "unreadable":
        env = {**cluster.certs.client_env(),
               "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(tmp_path / "nowhere.pem")}  # fmt: skip
    r = reprobuild(
        workdir(tmp_path),
        "build", "--store", str(tmp_path / "s"), "--mirror", MIRROR, "--executor", "dask",
        "--scheduler", cluster.address, "r.repro",
        env=env, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr
    if setting == "missing":
        assert "needs Dask's TLS settings" in r.stderr
        assert "distributed.comm.tls.ca-file" in r.stderr
        assert "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT" in r.stderr
    else:
        assert "cannot be used" in r.stderr
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").glob("refs/steps/*"))
