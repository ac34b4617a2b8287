"""Issue 22: a worker's result is a claim until the coordinator has checked it.

A real LocalCluster whose worker runs a plugin that lies (tests/distributed/
evil.py): one replaces every result with a string, one changes the digests
a result claims, to content nobody has or to content the store has. Each
build fails cleanly (exit 2, no traceback, no hang) with a message naming
the step and the worker's address, and the store keeps only honest records.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest
from distributed import Client, LocalCluster

from reprobuild.store import Store
from tests.distributed import evil
from tests.distributed.common import MIRROR, workdir
from tests.support.cli import reprobuild

cloudpickle.register_pickle_by_value(evil)  # the workers need not import the tests


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(
        n_workers=1,
        processes=True,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=None,
        worker_dashboard_address=None,
    ) as c:
        yield c


@pytest.mark.parametrize(
    ("plugin", "why"),
    [
        (evil.Garbage(), "it is a str, not a step result"),
        (evil.Forger("absent"), "names content sha256:" + "0" * 64),
        (evil.Forger("present"), "the store's record of the step is not the one it claims"),
    ],
    ids=["garbage", "forged-absent", "forged-present"],
)
def test_a_lying_worker_fails_the_build_naming_itself(
    tmp_path: Path, cluster: LocalCluster, plugin: object, why: str
) -> None:
    (worker,) = cluster.scheduler_info["workers"]
    with Client(cluster) as client:
        client.register_plugin(plugin)
        store = tmp_path / "store"
        r = reprobuild(
            workdir(tmp_path),
            "build", "--store", str(store), "--mirror", MIRROR, "--executor", "dask",
            "--scheduler", cluster.scheduler_address, "r.repro",
            timeout=120,  # a result the coordinator cannot use must not hang the build
        )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "AttributeError" not in r.stderr
    assert f"the result from worker {worker} is refused: " in r.stderr and why in r.stderr
    assert "step '" in r.stderr.split("refused")[0]  # the step is named
    # whatever is recorded is what the steps really made
    with Store.open_store(store, create=False) as s:
        for key in s.step_keys():
            record = s.lookup_step(key)
            assert record is not None and all(s.intact(o.sha256) for o in record.outputs)
            assert "0" * 64 not in {o.sha256 for o in record.outputs}
