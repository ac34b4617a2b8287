"""The click form of :mod:`reprobuild.settings`: one decorator per group of settings.

``@fetch_options()`` gives a command every row of the settings table (and the
store, unless ``store=False``) and hands it one ``settings: FetchSettings``
instead of a parameter per flag, so no command can forget or misspell one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from reprobuild.settings import FETCH_OPTIONS, STORE_OPTION, FetchSettings, Option

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["fetch_options", "store_option"]


def _click_option(option: Option) -> Callable[[F], F]:
    name = option.flag.removeprefix("--").replace("-", "_")
    decls = [option.flag, option.field] if name != option.field else [option.flag]
    kw: dict[str, Any] = {"help": option.help, "metavar": option.metavar}
    if option.envvar:
        kw["envvar"] = option.envvar
    if option.kind == "flag":
        kw["is_flag"] = True
    elif option.kind == "repeated":
        kw["multiple"] = True
    elif option.kind == "directories":
        kw["multiple"] = True
        kw["type"] = click.Path(path_type=Path, file_okay=False, exists=True)
    else:
        kw["type"] = click.Path(path_type=Path, file_okay=False)
    decorator: Callable[[F], F] = click.option(*decls, **kw)
    return decorator


def store_option(f: F) -> F:
    """``--store DIR`` (also ``REPROBUILD_STORE``), passed on as ``store_path``."""
    return _click_option(STORE_OPTION)(f)


def fetch_options(*, store: bool = True) -> Callable[[F], F]:
    """Every fetch setting (and ``--store`` unless ``store=False``), given to the
    command as one ``settings`` argument."""
    rows = (*FETCH_OPTIONS, *((STORE_OPTION,) if store else ()))

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def command(*args: Any, **kwargs: Any) -> Any:
            given = {o.field: kwargs.pop(o.field) for o in rows}
            for o in rows:
                if o.kind in ("repeated", "directories"):
                    given[o.field] = tuple(given[o.field])
            return f(*args, settings=FetchSettings(**given), **kwargs)

        wrapped: Any = command
        for option in reversed(rows):
            wrapped = _click_option(option)(wrapped)
        return wrapped  # type: ignore[no-any-return]

    return decorate
