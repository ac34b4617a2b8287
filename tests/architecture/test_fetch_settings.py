"""One table of fetch settings: every command that fetches takes every one of them,
and `check` hands its builds the same settings it was given."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from reprobuild.cli import cli
from reprobuild.cli_options import fetch_options
from reprobuild.settings import FETCH_OPTIONS, STORE_OPTION, FetchSettings

FETCHING = {"lock": False, "build": True, "replay": True, "check": True, "verify-attestation": True}


@pytest.mark.parametrize("name", sorted(FETCHING))
def test_every_fetching_command_takes_every_setting(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    flags = {opt for p in command.params for opt in p.opts}
    wanted = {o.flag for o in FETCH_OPTIONS} | ({STORE_OPTION.flag} if FETCHING[name] else set())
    assert wanted <= flags


def test_argv_parses_back_to_the_same_settings(tmp_path: Path) -> None:
    seen: list[FetchSettings] = []

    @click.command()
    @fetch_options()
    def probe(settings: FetchSettings) -> None:
        seen.append(settings)

    given = FetchSettings(
        mirrors=("debian=file:///m/", "archlinux=http://127.0.0.1:1/"),
        keyrings=("debian=/k.gpg",),
        archives=(tmp_path,),
        insecure_allow_unsigned=True,
        allow_expired=True,
        store_path=tmp_path / "store",
    )
    probe.main(given.argv(store=True), standalone_mode=False)
    assert seen == [given]
    assert "--store" not in given.argv()
    assert FetchSettings().argv(store=True) == []
