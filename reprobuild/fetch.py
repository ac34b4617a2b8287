"""Downloads: bounded retries with backoff, resume, and verification before use.

Nothing fetched is trusted until the hash that vouches for it has been
checked: :meth:`Fetcher.download` writes to a temporary file beside the
destination and renames it into place only once size and sha256 match, so a
damaged, truncated or interrupted download never becomes visible.

urllib3 is used for HTTP(S) (connection pooling, redirects, ranges);
``file://`` URLs are read directly.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from reprobuild.errors import FetchError, IntegrityError

CHUNK = 1 << 20
STREAM_CHUNK = 1 << 16  # small, so a broken-off body keeps most of what arrived
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class NotFound(FetchError):
    """The server (or directory) says the file does not exist: retrying won't help."""


@dataclass(frozen=True)
class Fetched:
    """A small file fetched into memory; ``url`` is where it was finally found."""

    url: str
    data: bytes


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.isdigit() else default


@dataclass(frozen=True)
class FetchPolicy:
    """Bounded retries with exponential backoff; ``REPROBUILD_FETCH_RETRIES`` and
    ``REPROBUILD_FETCH_TIMEOUT`` override the defaults for a whole run."""

    retries: int = field(default_factory=lambda: _env_int("REPROBUILD_FETCH_RETRIES", 4))
    backoff: float = 0.5  # seconds, doubled after each try
    max_backoff: float = 8.0
    timeout: float = field(default_factory=lambda: float(_env_int("REPROBUILD_FETCH_TIMEOUT", 30)))
    max_redirects: int = 5


class Fetcher:
    """One HTTP connection pool for a whole run."""

    def __init__(
        self,
        policy: FetchPolicy | None = None,
        *,
        on_bytes: Callable[[int], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.policy = policy or FetchPolicy()
        self.on_bytes = on_bytes
        self.sleep = sleep
        self._pool: object | None = None
        # Hosts that could not be resolved or reached after every retry: later
        # requests to them fail at once (offline, a build ends in seconds, not
        # after the retries of every package).
        self.unreachable: dict[str, str] = {}

    # -- public -------------------------------------------------------------
    def get(self, url: str, *, max_size: int = 1 << 31, deadline: float | None = None) -> Fetched:
        """Fetch a whole (small) file into memory.

        ``deadline`` (a ``time.monotonic()`` value) bounds the whole fetch, retries
        included: a server that trickles a byte now and then cannot keep it going.
        """
        if url.startswith("file://"):
            path = _file_path(url)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                raise NotFound(f"{url}: no such file") from None
            except OSError as exc:
                raise FetchError(f"{url}: {exc.strerror}") from None
            return Fetched(url, data)
        chunks: list[bytes] = []
        final = self._http(url, chunks.append, offset=0, max_size=max_size, deadline=deadline)
        return Fetched(final, b"".join(chunks))

    def download(
        self,
        url: str,
        dest: Path,
        *,
        sha256: str | None = None,
        size: int | None = None,
        max_size: int | None = None,
    ) -> Path:
        """Fetch ``url`` to ``dest``; verified before it appears there.

        ``max_size`` bounds what is read (default: ``size``, else 1 TiB); past
        it the download stops and its partial file is removed.
        """
        limit = max_size or size or (1 << 40)
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        if url.startswith("file://"):
            src = _file_path(url)
            if not src.exists():
                raise NotFound(f"{url}: no such file")
            with src.open("rb") as fin, part.open("wb") as fout:
                while chunk := fin.read(CHUNK):
                    fout.write(chunk)
                    if self.on_bytes:
                        self.on_bytes(len(chunk))
        else:
            offset = part.stat().st_size if part.exists() else 0
            if size is not None and offset > size:
                offset = 0
            mode = "ab" if offset else "wb"
            try:
                with part.open(mode) as fout:
                    self._http(url, fout.write, offset=offset, max_size=limit)
            except IntegrityError:
                part.unlink(missing_ok=True)  # longer than allowed: nothing to resume
                raise
        try:
            verify_file(part, sha256=sha256, size=size, what=url)
        except IntegrityError:
            part.unlink(missing_ok=True)
            raise
        os.replace(part, dest)
        return dest

    # -- HTTP -----------------------------------------------------------------
    def _pool_manager(self) -> object:
        if self._pool is None:
            import urllib3

            self._pool = urllib3.PoolManager(
                num_pools=8,
                maxsize=8,
                retries=False,
                timeout=urllib3.Timeout(connect=self.policy.timeout, read=self.policy.timeout),
                headers={"User-Agent": "reprobuild"},
            )
        return self._pool

    def _http(
        self,
        url: str,
        sink: Callable[[bytes], object],
        *,
        offset: int,
        max_size: int,
        deadline: float | None = None,
    ) -> str:
        """Stream ``url`` into ``sink`` from ``offset``; returns the final URL."""
        import urllib3

        pool = self._pool_manager()
        assert isinstance(pool, urllib3.PoolManager)
        host = urlsplit(url).netloc
        if host in self.unreachable:
            raise FetchError(
                f"{url}: {self.unreachable[host]} (host {host} already failed in this run; "
                "not retried)",
                hint="check the network, or pass --mirror NAME=URL",
            )
        attempt = 0
        unreachable = False
        delay = self.policy.backoff
        received = offset
        current = url
        redirects = 0
        while True:
            attempt += 1
            headers = {"Range": f"bytes={received}-"} if received else {}
            cause: str
            retry_after: float | None = None
            timeout = _until(deadline, url, self.policy.timeout)
            extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
            try:
                resp = pool.request(
                    "GET",
                    current,
                    headers=headers,
                    preload_content=False,
                    redirect=False,
                    **extra,
                )
                streaming = False
                try:
                    if resp.status not in (200, 206):
                        resp.drain_conn()  # small error bodies; keeps the connection usable
                    if resp.status in (301, 302, 303, 307, 308):
                        location = resp.headers.get("Location")
                        if not location:
                            raise FetchError(f"{current}: redirect without a Location")
                        redirects += 1
                        if redirects > self.policy.max_redirects:
                            raise FetchError(f"{url}: too many redirects (last: {current})")
                        current = urljoin(current, location)
                        attempt -= 1
                        continue
                    if resp.status == 404 or resp.status == 410:
                        raise NotFound(f"{current}: HTTP {resp.status} (not found)")
                    if resp.status == 416 and received:
                        # Our partial file is already complete (or stale): start over.
                        received = 0
                        raise _Retry("HTTP 416 for a resumed download")
                    if resp.status in RETRY_STATUS:
                        retry_after = _retry_after(resp.headers.get("Retry-After"))
                        raise _Retry(f"HTTP {resp.status}")
                    if resp.status not in (200, 206):
                        raise FetchError(f"{current}: HTTP {resp.status}")
                    if received and resp.status == 200:
                        # No range support: the caller's sink must restart.
                        raise FetchError(
                            f"{current}: server ignored the range request; "
                            "delete the partial download and retry"
                        )
                    streaming = True
                    # with a deadline, each read returns what has arrived (a trickle
                    # never fills a whole chunk, and the deadline is checked per read)
                    chunks = (
                        resp.stream(STREAM_CHUNK)
                        if deadline is None
                        else iter(functools.partial(resp.read1, STREAM_CHUNK), b"")
                    )
                    for chunk in chunks:
                        received += len(chunk)
                        if received > max_size:
                            raise IntegrityError(
                                f"{current}: longer than the {max_size} bytes expected"
                            )
                        sink(chunk)
                        if deadline is not None:
                            _until(deadline, url, self.policy.timeout)
                        if self.on_bytes:
                            self.on_bytes(len(chunk))
                    streaming = False
                    return current
                finally:
                    if streaming:
                        resp.close()  # broken off mid-body: never reuse this connection
                    resp.release_conn()
            except _Retry as exc:
                cause = str(exc)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                cause = _describe(exc)
                unreachable = isinstance(
                    exc,
                    urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError,
                )
            if attempt > self.policy.retries:
                if unreachable:
                    self.unreachable[urlsplit(current).netloc] = cause
                raise FetchError(
                    f"{current}: {cause} (gave up after {attempt} attempts)",
                    hint="check the mirror URL and the network, or pass --mirror NAME=URL",
                )
            wait = min(retry_after if retry_after is not None else delay, self.policy.max_backoff)
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - time.monotonic()))
            self.sleep(wait)
            delay = min(delay * 2, self.policy.max_backoff)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.clear()  # type: ignore[attr-defined]
            self._pool = None


def _until(deadline: float | None, url: str, timeout: float) -> object | None:
    """The urllib3 timeout for the next request, or FetchError if ``deadline`` passed."""
    if deadline is None:
        return None
    import urllib3

    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchError(
            f"{url}: no complete answer before the deadline",
            hint="the server is too slow or trickles its answer; try again later",
        )
    return urllib3.Timeout(connect=min(timeout, left), read=min(timeout, left), total=left)


class _Retry(Exception):
    """An answer worth asking again."""


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    return text.split(": ", 1)[-1][:200] or type(exc).__name__


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    return None


def _file_path(url: str) -> Path:
    parts = urlsplit(url)
    return Path(unquote(parts.path))


def sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def verify_file(path: Path, *, sha256: str | None, size: int | None, what: str) -> None:
    """Refuse a file whose size or sha256 differs from what vouches for it."""
    actual, n = sha256_file(path)
    if size is not None and n != size:
        raise IntegrityError(
            f"{what}: got {n} bytes, expected {size} (sha256 {actual}, expected {sha256})",
            hint="the download was truncated or the mirror serves a different file",
        )
    if sha256 is not None and actual != sha256:
        raise IntegrityError(
            f"{what}: sha256 {actual} does not match the expected {sha256}",
            hint="the file was tampered with or damaged; it was not used",
        )
