"""A git remote as reprobuild reaches it: which transport, and the limits it runs under.

A remote is another party's machine: it may be slow, silent, or hostile. So

* every network operation has a connect and a read timeout: ``git://`` sockets
  and HTTP(S) requests time out after ``REPROBUILD_REMOTE_TIMEOUT`` seconds of
  silence (default 30), and an ``ssh`` transport gets ``ConnectTimeout`` plus a
  watchdog that ends the ssh process after as long without a byte;
* what a remote may make this machine store is bounded: one content object at
  most ``REPROBUILD_REMOTE_MAX_OBJECT`` bytes (default 64G), one transfer at
  most ``REPROBUILD_REMOTE_MAX_TOTAL`` (default 256G, also the cap on the bytes
  of git packs received), and never more than the store's file system has free;
* ``user@host:path`` is an ssh remote, as git reads it (a ``:`` before any
  ``/``), never a local directory;
* a password in a remote's URL is never printed (see redact.py).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlparse

from dulwich import client as dc
from dulwich import protocol as dp

from reprobuild.errors import StoreError
from reprobuild.redact import redact
from reprobuild.sandbox_limits import _parse as _parse_setting

SETTINGS: Final = {
    "timeout": ("REPROBUILD_REMOTE_TIMEOUT", "30"),
    "max_object": ("REPROBUILD_REMOTE_MAX_OBJECT", "64G"),
    "max_total": ("REPROBUILD_REMOTE_MAX_TOTAL", "256G"),
}
MAX_GIT_OBJECT: Final = 64 << 20  # chunks, 8 MiB pieces, records: all smaller
DISK_RESERVE: Final = 64 << 20  # left free on the store's file system by any transfer


@dataclass(frozen=True)
class RemoteLimits:
    """How long a remote may stay silent and how much it may make us store."""

    timeout: float = 30.0
    max_object: int = 64 << 30
    max_total: int = 256 << 30

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RemoteLimits:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field_name, (name, default) in SETTINGS.items():
            values[field_name] = _parse_setting(
                name, env.get(name) or default, size=field_name != "timeout"
            )
        values["timeout"] = float(values["timeout"])
        return cls(**values)


def git_object_cap(limits: RemoteLimits) -> int:
    """The largest git object a remote may send: a carrier's tree and manifest grow
    with its content (about 110 bytes per 64 KiB chunk), everything else is small."""
    return max(MAX_GIT_OBJECT, limits.max_object // 256)


class RemoteTimeout(StoreError):
    """A remote said nothing for longer than the timeout allows."""


def is_scp_like(location: str) -> bool:
    """git's rule (transport.c, url_is_local_not_ssh): a ``:`` before any ``/`` is ssh."""
    if "://" in location:
        return False
    colon = location.find(":")
    if colon <= 0:
        return False
    slash = location.find("/")
    return slash == -1 or colon < slash


def local_path(url: str) -> Path | None:
    """The directory a path or ``file://`` remote names; None for a network remote."""
    if "://" not in url:
        return None if is_scp_like(url) else Path(url).expanduser().absolute()
    parsed = urlparse(url)
    return Path(parsed.path) if parsed.scheme == "file" else None


def network_client(url: str, limits: RemoteLimits) -> tuple[Any, str]:
    """A dulwich client for a network remote, with timeouts on every operation."""
    try:
        if is_scp_like(url):
            user, host, path = dc.parse_rsync_url(url)
            ssh = dc.SSHGitClient(
                host,
                username=user,
                vendor=_WatchedSSHVendor(limits.timeout),
                ssh_command=_ssh_command(limits),
            )
            return ssh, path
        parsed = urlparse(url)
        if parsed.scheme == "git":
            tcp: Any = _TimedTCPGitClient.from_parsedurl(parsed)
            tcp._timeout = limits.timeout
            return tcp, parsed.path
        if parsed.scheme in ("ssh", "git+ssh"):
            ssh = dc.SSHGitClient.from_parsedurl(
                parsed, vendor=_WatchedSSHVendor(limits.timeout), ssh_command=_ssh_command(limits)
            )
            return ssh, parsed.path
        if parsed.scheme in ("http", "https"):
            import urllib3

            manager = dc.default_urllib3_manager(None, timeout=limits.timeout)
            # urllib3 retries a read that timed out 3 times by default: 4 silences of
            # the timeout each. A silent server is not asked again.
            manager.connection_pool_kw["retries"] = urllib3.Retry(
                total=3, connect=2, read=0, status=0, redirect=5, raise_on_redirect=False
            )
            return dc.get_transport_and_path(url, pool_manager=manager)  # type: ignore[arg-type]
        raise ValueError(f"unknown scheme {parsed.scheme!r}")
    except Exception as exc:
        raise StoreError(
            f"cannot use remote {redact(url)}: {redact(str(exc))}",
            hint="a remote is a path, file://, git://, ssh://, user@host:path or http(s)://",
        ) from None


def _ssh_command(limits: RemoteLimits) -> str:
    """The user's ssh command (GIT_SSH_COMMAND, GIT_SSH, as git reads them), with
    OpenSSH's connect timeout and keep-alives when it is OpenSSH's ``ssh``."""
    command = os.environ.get("GIT_SSH_COMMAND") or (
        shlex.quote(os.environ["GIT_SSH"]) if os.environ.get("GIT_SSH") else "ssh"
    )
    words = shlex.split(command)
    if words and os.path.basename(words[0]) == "ssh":
        seconds = max(1, int(limits.timeout))
        command += (
            f" -o ConnectTimeout={seconds} -o ServerAliveInterval={max(1, seconds // 3)}"
            " -o ServerAliveCountMax=3"
        )
    return command


class _TimedTCPGitClient(dc.TCPGitClient):
    """dulwich's git:// client with a connect and a read timeout on its socket
    (dulwich's own makes the socket with none). The rest is dulwich's ``_connect``."""

    _timeout: float = 30.0

    def _connect(self, cmd: bytes, path: str | bytes, protocol_version: int | None = None) -> Any:
        if self._proxy_command is not None:
            raise StoreError("git:// through core.gitProxy is not supported")
        if not isinstance(path, bytes):
            path = path.encode(self._remote_path_encoding)
        s = socket.create_connection((self._host, self._port), timeout=self._timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rfile = s.makefile("rb", -1)
        wfile = s.makefile("wb", 0)

        def close() -> None:
            rfile.close()
            wfile.close()
            s.close()

        def shutdown_write() -> None:
            wfile.flush()
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_WR)

        proto = dp.Protocol(
            rfile.read,
            wfile.write,
            close,
            report_activity=self._report_activity,
            shutdown_write=shutdown_write,
        )
        if path.startswith(b"/~"):
            path = path[1:]
        if cmd == b"upload-pack":
            self.protocol_version = protocol_version or dp.DEFAULT_GIT_PROTOCOL_VERSION_FETCH
        else:
            self.protocol_version = dp.DEFAULT_GIT_PROTOCOL_VERSION_SEND
        version = b""
        if cmd == b"upload-pack" and self.protocol_version == 2:
            version = b"\0\0version=%d\0" % self.protocol_version
        proto.send_cmd(b"git-" + cmd, path, b"host=" + self._host.encode("ascii") + version)
        return proto, lambda: dc._fileno_can_read(s.fileno()), None


class _WatchedSSHVendor(dc.SubprocessSSHVendor):
    """OpenSSH through a pipe, as dulwich runs it; the ssh process is ended (and the
    transfer fails as timed out) after ``timeout`` seconds without a byte."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def run_command(self, *args: Any, **kwargs: Any) -> Any:
        con = super().run_command(*args, **kwargs)
        watch = SilenceWatch(self.timeout, con.proc.kill)
        con.read = watch.wrap(con.read)
        con.write = watch.wrap(con.write)
        inner_close = con.close

        def close(*a: Any, **kw: Any) -> None:
            watch.stop()
            inner_close(*a, **kw)

        con.close = close  # type: ignore[method-assign]
        return con


class SilenceWatch:
    """Calls ``expire`` when a wrapped read or write has waited ``timeout`` seconds.

    One thread per connection, checking once a second, so a transfer that
    keeps moving is never interrupted however long it takes.
    """

    def __init__(self, timeout: float, expire: Callable[[], None]) -> None:
        self.timeout = timeout
        self.expired = False
        self._expire = expire
        self._since: float | None = None
        self._stop = threading.Event()
        threading.Thread(target=self._run, name="remote-watch", daemon=True).start()

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def watched(*args: Any) -> Any:
            self._since = time.monotonic()
            try:
                return fn(*args)
            finally:
                self._since = None
                if self.expired:  # the wrappers name the remote (remote_error)
                    raise TimeoutError(f"no answer for {self.timeout:g} s")

        return watched

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(min(1.0, self.timeout / 4)):
            since = self._since
            if since is not None and time.monotonic() - since > self.timeout:
                self.expired = True
                self._expire()
                return


def is_timeout(exc: BaseException) -> bool:
    """True if ``exc`` (or what caused it) is a remote staying silent too long."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, RemoteTimeout | TimeoutError | socket.timeout):
            return True
        name = type(current).__name__
        if name in ("ReadTimeoutError", "ConnectTimeoutError", "TimeoutError"):
            return True
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException) and id(reason) not in seen:
            current = reason
            continue
        current = current.__cause__ or current.__context__
    return False


def remote_error(what: str, url: str, exc: BaseException, limits: RemoteLimits) -> StoreError:
    """A failed network operation as a project error naming the remote (redacted)."""
    if is_timeout(exc):
        return RemoteTimeout(
            f"{what} {redact(url)}: the remote did not answer for {limits.timeout:g} s",
            hint="check the remote's address and that it is up; "
            f"{SETTINGS['timeout'][0]} sets how long to wait",
        )
    text = redact(str(exc)) or type(exc).__name__
    return StoreError(f"{what} {redact(url)} failed: {text}")


def check_room(store_dir: Path, need: int, url: str, limits: RemoteLimits) -> None:
    """Refuse a transfer that would write more than allowed, or than the disk holds."""
    if need > limits.max_total:
        raise StoreError(
            f"refusing what {redact(url)} offers: {need} bytes of content, more than "
            f"{SETTINGS['max_total'][0]} ({limits.max_total}) allows",
            hint=f"raise {SETTINGS['max_total'][0]} if this remote is trusted to send that much",
        )
    try:
        st = os.statvfs(store_dir)
    except OSError:
        return
    free = st.f_bavail * st.f_frsize
    if need + DISK_RESERVE > free:
        raise StoreError(
            f"refusing what {redact(url)} offers: {need} bytes of content, but the store's "
            f"file system has {free} bytes free",
            hint="free some space (reprobuild store gc) or pull fewer records",
        )


def check_object_size(size: int, sha256: str, url: str, limits: RemoteLimits) -> None:
    if size > limits.max_object:
        raise StoreError(
            f"refusing content sha256:{sha256} from {redact(url)}: it claims {size} bytes, more "
            f"than {SETTINGS['max_object'][0]} ({limits.max_object}) allows",
            hint=f"raise {SETTINGS['max_object'][0]} if objects that large are expected",
        )


__all__ = [
    "MAX_GIT_OBJECT",
    "RemoteLimits",
    "RemoteTimeout",
    "SilenceWatch",
    "check_object_size",
    "check_room",
    "git_object_cap",
    "is_scp_like",
    "is_timeout",
    "local_path",
    "network_client",
    "remote_error",
]
