"""Which Dask clusters a build may join: only authenticated ones.

Whoever can talk to a Dask scheduler runs code on its workers, and the
coordinator unpickles what workers send back, so whoever can join a cluster
as a worker runs code on the machine that runs ``reprobuild build``. A plain
``tcp://`` cluster authenticates nobody. So:

* ``tcp://`` (and ``ws://``, and a bare ``HOST:PORT``, which Dask reads as
  tcp) is accepted only on a loopback address, where only this machine's
  users can reach it, unless the user says ``--insecure-allow-tcp``;
* ``tls://`` (and ``wss://``) needs Dask's own TLS settings for the client:
  ``distributed.comm.tls.ca-file``, ``distributed.comm.tls.client.cert`` (and
  ``.key`` unless the certificate file holds it), from Dask's configuration
  files or the ``DASK_DISTRIBUTED__COMM__TLS__*`` variables; they are checked
  (files readable, a usable SSL context) before any connection is tried;
* a ``--worker-remote`` URL carrying a password travels to the workers only
  over TLS.

SECURITY.md says who must be trusted.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from reprobuild.errors import UsageError
from reprobuild.redact import has_password, redact

PLAIN = frozenset({"tcp", "ws", "ucx"})
ENCRYPTED = frozenset({"tls", "wss"})
TLS_VARIABLES = (
    "DASK_DISTRIBUTED__COMM__TLS__CA_FILE",
    "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT",
    "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY",
)


class ClusterRefused(UsageError):
    """The scheduler address or the TLS settings do not give an authenticated cluster."""


@dataclass(frozen=True)
class ClusterAddress:
    """A checked scheduler address: its scheme, host, and whether TLS protects it."""

    address: str
    scheme: str
    host: str

    @property
    def encrypted(self) -> bool:
        return self.scheme in ENCRYPTED


def check_address(address: str, *, insecure_allow_tcp: bool = False) -> ClusterAddress:
    """Refuse a scheduler that nobody authenticates, unless on loopback or allowed."""
    scheme, _, rest = address.rpartition("://")
    scheme = (scheme or "tcp").lower()
    try:
        host = urlsplit(f"x://{rest}").hostname or ""
    except ValueError:
        host = ""
    if scheme == "inproc":
        return ClusterAddress(address, scheme, host)
    if scheme not in PLAIN | ENCRYPTED:
        raise ClusterRefused(
            f"--scheduler {address}: unknown protocol {scheme!r}",
            hint="use tls://HOST:PORT (or tcp://127.0.0.1:PORT for a cluster on this machine)",
        )
    if not host:
        raise ClusterRefused(f"--scheduler {address}: no host in the address")
    if scheme in PLAIN and not insecure_allow_tcp and not is_loopback(host):
        raise ClusterRefused(
            f"refusing the unauthenticated scheduler {address}: {scheme}:// is plain, "
            f"unauthenticated TCP, and {host} is not a loopback address; anyone who can "
            "reach it (or join it as a worker) can run code on the workers and on this "
            "machine",
            hint="use a mutual-TLS cluster: 'dask scheduler --protocol tls' with certificates "
            "(see the README's 'Build farms' section) and --scheduler tls://HOST:PORT; "
            "--insecure-allow-tcp connects anyway",
        )
    return ClusterAddress(address, scheme, host)


def is_loopback(host: str) -> bool:
    """True if every address ``host`` names is a loopback address."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(
        ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addresses
    )


def client_security(cluster: ClusterAddress) -> Any:
    """Dask's ``Security`` for the client, from Dask's settings; checked for TLS.

    For a plain address, None (Dask's defaults). For TLS, a missing setting or
    an unusable file is a ClusterRefused naming the setting, raised before
    any connection (a failed connection leaves Dask's client half-made).
    """
    if not cluster.encrypted:
        return None
    from distributed import security as dask_security

    try:
        security: Any = dask_security.Security()  # type: ignore[no-untyped-call]
    except Exception as exc:  # a malformed setting (e.g. a TLS version Dask refuses)
        raise ClusterRefused(f"Dask's TLS settings are not usable: {exc}") from None
    missing = [
        name
        for name, value in (
            ("distributed.comm.tls.ca-file", security.tls_ca_file),
            ("distributed.comm.tls.client.cert", security.tls_client_cert),
        )
        if not value
    ]
    if missing:
        raise ClusterRefused(
            f"--scheduler {cluster.address} needs Dask's TLS settings for the client, "
            f"and {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set",
            hint="set them in Dask's configuration or export "
            + ", ".join(TLS_VARIABLES)
            + " (the CA that signed the scheduler's and workers' certificates, this "
            "client's certificate and key); see the README's 'Build farms' section",
        )
    try:
        security.get_connection_args("client")
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise ClusterRefused(
            f"Dask's TLS settings for the client cannot be used: {exc}",
            hint="check that " + ", ".join(TLS_VARIABLES) + " name readable PEM files "
            "(a certificate and its key) and the CA file",
        ) from None
    return security


def check_worker_remote(remote: str | None, cluster: ClusterAddress) -> None:
    """A remote's password is sent to every worker: only over an encrypted cluster."""
    if remote is not None and has_password(remote) and not cluster.encrypted:
        raise ClusterRefused(
            f"--worker-remote {redact(remote)} carries a password, which every worker "
            f"receives; the scheduler {cluster.address} is not encrypted",
            hint="use a tls:// scheduler, or a remote whose credentials the workers "
            "already have (an ssh key, a git credential helper)",
        )


__all__ = [
    "ClusterAddress",
    "ClusterRefused",
    "check_address",
    "check_worker_remote",
    "client_security",
    "is_loopback",
]
