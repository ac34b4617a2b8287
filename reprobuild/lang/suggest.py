"""Did-you-mean hints for undefined variables and missing attributes."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# Nix 2.8's builtins (``builtins.attrNames builtins``) that reprobuild leaves
# out on purpose: they read the machine, the network or the Nix store, or
# exist for derivations and string contexts, which recipes do not have.
NIX_IMPURE = frozenset(
    {
        "appendContext", "currentSystem", "currentTime", "derivation", "derivationStrict",
        "fetchGit", "fetchMercurial", "fetchTarball", "fetchTree", "fetchurl",
        "filterSource", "findFile", "getContext", "getEnv", "hasContext", "hashFile",
        "nixPath", "path", "placeholder", "readDir", "scopedImport", "storeDir",
        "storePath", "toFile", "toPath", "unsafeDiscardOutputDependency",
        "unsafeDiscardStringContext",
    }
)  # fmt: skip
# The rest of Nix 2.8's builtins that reprobuild does not have (yet).
NIX_MISSING = frozenset(
    {"addErrorContext", "fromTOML", "langVersion", "nixVersion", "toXML", "unsafeGetAttrPos"}
)


def _nix_only(name: str) -> str | None:
    if name in NIX_IMPURE:
        return f"Nix's builtins.{name} is not available in recipes (it is not reproducible)"
    if name in NIX_MISSING:
        return f"reprobuild does not implement Nix's builtins.{name}"
    return None


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like ``name``, if one is close enough to be a typo."""
    found = difflib.get_close_matches(name, sorted(set(candidates)), n=1)
    return found[0] if found else None


def variable_hint(name: str, in_scope: Iterable[str], builtin_names: Iterable[str]) -> str | None:
    """The hint for ``undefined variable 'name'``."""
    builtins = set(builtin_names)
    if name in builtins:
        return f"'{name}' is a builtin: write builtins.{name}"
    if _nix_only(name) is not None:
        return _nix_only(name)
    close = closest(name, in_scope)
    if close is not None:
        return f"did you mean '{close}'?"
    close = closest(name, builtins)
    if close is not None:
        return f"did you mean 'builtins.{close}'?"
    return None


def attribute_hint(name: str, attrs: Iterable[str], *, of_builtins: bool = False) -> str | None:
    """The hint for ``attribute 'name' missing``."""
    if of_builtins and _nix_only(name) is not None:
        return _nix_only(name)
    close = closest(name, attrs)
    return f"did you mean '{close}'?" if close is not None else None
