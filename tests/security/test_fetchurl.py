"""Row 'fetchurl' of issue 18: the network only, bounded, nothing left, no leaked hash."""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

from tests.support.cli import reprobuild
from tests.support.mirror import serve


def _recipe(work: Path, fetch: str) -> Path:
    work.mkdir(exist_ok=True)
    (work / "r.repro").write_text(f"{{ f = fetchurl {{ {fetch} }}; }}\n")
    return work


def test_a_file_url_is_refused_and_no_hash_of_the_file_is_printed(tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_bytes(secrets.token_bytes(64))
    digest = hashlib.sha256(secret.read_bytes()).hexdigest()
    work = _recipe(tmp_path / "w", f'url = "file://{secret}"; sha256 = "{"0" * 64}";')
    r = reprobuild(work, "build", "--store", str(tmp_path / "store"), "r.repro")
    assert r.returncode == 2, r.stderr
    assert "http or https" in r.stderr and "r.repro:1:" in r.stderr  # at the url, with a caret
    assert digest not in r.stdout + r.stderr
    assert "Traceback" not in r.stderr


def test_a_download_is_bounded_and_leaves_no_partial_file(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    body = secrets.token_bytes(4 << 20)
    (site / "big.bin").write_bytes(body)
    sha = hashlib.sha256(body).hexdigest()
    with serve(site) as srv:
        url = srv.url + "big.bin"
        for n, (fetch, env) in enumerate(
            [
                # the declared size is the bound
                (f'url = "{url}"; sha256 = "{sha}"; size = 1000;', {}),
                # without one, the setting is
                (f'url = "{url}"; sha256 = "{sha}";', {"REPROBUILD_FETCHURL_MAX_SIZE": "100000"}),
            ]
        ):
            work = _recipe(tmp_path / f"w{n}", fetch)
            store = tmp_path / f"store{n}"
            r = reprobuild(work, "build", "--store", str(store), "r.repro", env=env)
            assert r.returncode == 2, (n, r.stderr)
            assert "longer than" in r.stderr and "Traceback" not in r.stderr
            assert not [p for p in tmp_path.rglob("*.part")], "a partial download was left"
            assert not any(p.name == sha for p in store.rglob("*"))
