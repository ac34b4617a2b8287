"""A real mutual-TLS Dask cluster for the tests: certificates made with openssl,
``dask scheduler --protocol tls`` and ``dask worker`` processes on loopback,
each worker optionally pinned to CPUs with ``taskset`` (as the README shows)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DASK = str(Path(sys.executable).with_name("dask"))


@dataclass(frozen=True)
class Certificates:
    ca: Path
    scheduler: tuple[Path, Path]
    worker: tuple[Path, Path]
    client: tuple[Path, Path]

    def client_env(self) -> dict[str, str]:
        """Dask's TLS settings for a client, as environment variables."""
        return {
            "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(self.ca),
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(self.client[0]),
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(self.client[1]),
            "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
        }


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(where: Path) -> Certificates:
    """A CA and one certificate per role, for 127.0.0.1 (as in the README)."""
    where.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=reprobuild test CA", cwd=where)  # fmt: skip
    (where / "leaf.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
    )
    pairs = {}
    for role in ("scheduler", "worker", "client"):
        _openssl("req", *ec, "-keyout", f"{role}.key", "-out", f"{role}.csr",
                 "-subj", f"/CN={role}", cwd=where)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{role}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{role}.pem", "-days", "2",
                 "-extfile", "leaf.ext", cwd=where)  # fmt: skip
        pairs[role] = (where / f"{role}.pem", where / f"{role}.key")
    return Certificates(where / "ca.pem", pairs["scheduler"], pairs["worker"], pairs["client"])


@dataclass
class TlsCluster:
    address: str
    certs: Certificates
    workers: dict[str, str] = field(default_factory=dict)  # worker name -> address
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REPROBUILD_", "DASK_"))}
    env["PYTHONWARNINGS"] = "ignore"
    return env


@contextlib.contextmanager
def tls_cluster(where: Path, cpus: Sequence[str]) -> Iterator[TlsCluster]:
    """A scheduler and one worker per entry of ``cpus`` (a taskset CPU list, or "")."""
    certs = make_certificates(where / "certs")
    info = where / "scheduler.json"
    tls = ["--tls-ca-file", str(certs.ca)]
    logs = where / "logs"
    logs.mkdir()
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, argv: list[str]) -> None:
        with open(logs / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                argv, stdout=log, stderr=log, env=_env(), cwd=where, start_new_session=True
            )
            procs.append(proc)

    try:
        start("scheduler", [DASK, "scheduler", "--protocol", "tls", "--host", "127.0.0.1",
                            "--port", "0", "--no-dashboard", "--scheduler-file", str(info), *tls,
                            "--tls-cert", str(certs.scheduler[0]),
                            "--tls-key", str(certs.scheduler[1])])  # fmt: skip
        deadline = time.monotonic() + 120
        while not info.exists() or not info.read_text().strip():
            _check_alive(procs, logs, deadline)
            time.sleep(0.2)
        address = json.loads(info.read_text())["address"]
        for i, cpu in enumerate(cpus):
            pin = ["taskset", "-c", cpu] if cpu else []
            start(f"worker{i}", [*pin, DASK, "worker", address, "--name", f"w{i}",
                                 "--nthreads", "1", "--no-dashboard", "--no-nanny",
                                 "--local-directory", str(where / f"w{i}"), *tls,
                                 "--tls-cert", str(certs.worker[0]),
                                 "--tls-key", str(certs.worker[1])])  # fmt: skip
        cluster = TlsCluster(address, certs, procs=procs)
        cluster.workers = _wait_for_workers(cluster, len(cpus), procs, logs, deadline)
        yield cluster
    finally:
        # SIGKILL: a worker told to stop gracefully waits for a scheduler also stopping
        # (20 s of teardown); nothing of these throwaway processes needs to be kept
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
        for p in procs:
            p.wait()


def _check_alive(procs: list[subprocess.Popen[bytes]], logs: Path, deadline: float) -> None:
    for p in procs:
        if p.poll() is not None or time.monotonic() > deadline:
            text = "\n".join(f.read_text(errors="replace")[-2000:] for f in logs.iterdir())
            raise RuntimeError(f"the TLS cluster did not start:\n{text}")


def _wait_for_workers(
    cluster: TlsCluster, n: int, procs: list[subprocess.Popen[bytes]], logs: Path, deadline: float
) -> dict[str, str]:
    """Connect as a TLS client (the test's own certificate) until ``n`` workers joined."""
    from distributed import Client
    from distributed.security import Security

    security = Security(  # type: ignore[no-untyped-call]
        tls_ca_file=str(cluster.certs.ca),
        tls_client_cert=str(cluster.certs.client[0]),
        tls_client_key=str(cluster.certs.client[1]),
        require_encryption=True,
    )
    with Client(cluster.address, security=security, timeout=60) as client:
        while True:
            workers = client.scheduler_info()["workers"]
            if len(workers) >= n:
                return {w["name"]: addr for addr, w in workers.items()}
            _check_alive(procs, logs, deadline)
            time.sleep(0.3)


def have_tools() -> str | None:
    """Why the TLS cluster tests cannot run here, or None."""
    for tool in ("openssl", "taskset"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not Path(DASK).exists():
        return "the dask command is not installed beside this Python"
    return None
