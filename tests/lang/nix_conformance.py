#!/usr/bin/env python3
"""Run Nix's own language tests against reprobuild's evaluator.

The cases are the ``eval-okay-*`` and ``eval-fail-*`` files of Nix's
``tests/functional/lang/`` (vendored in ``tests/lang/nix/``, see its README).
The expectations come from real Nix 2.8 (Debian's ``nix-bin``), recorded in
``tests/lang/nix/manifest.json`` with ``--refresh``:

- ``eval-okay-NAME``: ``nix-instantiate --eval --strict --json`` printed this
  JSON value; reprobuild must evaluate the file (strictly) to the same value;
- ``eval-fail-NAME``: Nix 2.8 failed with this error; reprobuild must fail
  with a recipe error (located, not a crash) of the same kind (``ERROR_KINDS``:
  a type error on the same type, the same undefined variable, ...; the
  wording may differ).

A case is skipped, with its reason, when it uses a builtin reprobuild does not
have, needs ``nix-instantiate`` flags, when Nix 2.8 itself does not behave as
the (newer) test expects, when its result cannot be JSON, or where reprobuild
differs from Nix by design (``DEVIATIONS`` below). Usage::

    python3 tests/lang/nix_conformance.py            # run; exit 1 on an unexpected result
    python3 tests/lang/nix_conformance.py -v         # also list the skipped cases
    python3 tests/lang/nix_conformance.py --refresh PATH/TO/nix/tests/functional/lang

The last line of a run is ``N of M Nix lang tests pass, K skipped (reasons)``.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NIX_DIR = HERE / "nix"
CASES = NIX_DIR / "cases"
MANIFEST = NIX_DIR / "manifest.json"

# Where reprobuild differs from Nix on purpose: the case is skipped with this reason.
PATHS = "path semantics: absolute and <search> paths are refused, paths are not copied to a store"
OLD_SYNTAX = "deprecated syntax"
DEVIATIONS: dict[str, str] = {
    "eval-fail-pathExists-1": f"{PATHS}: pathExists takes a path value only",
    "eval-fail-pathExists-2": f"{PATHS}: pathExists takes a path value only",
    "eval-okay-attrs5": f"{OLD_SYNTAX}: 'or' as a variable name",
    "eval-okay-deprecate-cursed-or": f"{OLD_SYNTAX}: 'or' as a variable name",
    "eval-okay-url-literal-default": f"{OLD_SYNTAX}: unquoted URL literals",
    "eval-okay-string": f"{PATHS}: /a/b",
    "eval-okay-types": f"{PATHS}: /nix/store",
    "eval-okay-redefine-builtin": f"{PATHS}: <foobaz>",
    "eval-fail-bad-string-interpolation-2": f"{PATHS}: interpolating a missing path is no error",
    "eval-fail-nonexist-path": f"{PATHS}: interpolating a missing path is no error",
    "eval-okay-symlink-resolution": (
        f"{PATHS}: a file imported through a symbolic link is where the link leads, and "
        "a directory imports its default.repro"
    ),
    "eval-okay-merge-dynamic-attrs": (
        "Nix 2.8 bug: merging `x = { a = 1; }; x = { ${...} = 2; }` drops the dynamic "
        "attribute (later Nix keeps it, as reprobuild does)"
    ),
    "eval-okay-equal-function-attrset-identical": (
        "function identity: Nix compares functions in lists and sets by the address of "
        "the element's value, which reprobuild does not model"
    ),
    "eval-okay-equal-function-list-identical": (
        "function identity: Nix compares functions in lists and sets by the address of "
        "the element's value, which reprobuild does not model"
    ),
}

# Cases run but known to fail, with why (the test checks this list is exact).
KNOWN_FAILURES: dict[str, str] = {}

# Nix 2.8's global names (primops registered without "__"), and every builtin.
def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


NIX_GLOBALS = _words(
    "abort baseNameOf builtins derivation derivationStrict dirOf false fetchGit "
    "fetchMercurial fetchTarball fetchTree fromTOML import isNull map null placeholder "
    "removeAttrs scopedImport throw toString true"
)
NIX_BUILTINS = _words(
    "abort add addErrorContext all any appendContext attrNames attrValues baseNameOf bitAnd "
    "bitOr bitXor builtins catAttrs ceil compareVersions concatLists concatMap "
    "concatStringsSep currentSystem currentTime deepSeq derivation derivationStrict dirOf "
    "div elem elemAt false fetchGit fetchMercurial fetchTarball fetchTree fetchurl filter "
    "filterSource findFile floor foldl' fromJSON fromTOML functionArgs genList "
    "genericClosure getAttr getContext getEnv groupBy hasAttr hasContext hashFile "
    "hashString head import intersectAttrs isAttrs isBool isFloat isFunction isInt isList "
    "isNull isPath isString langVersion length lessThan listToAttrs map mapAttrs match mul "
    "nixPath nixVersion null parseDrvName partition path pathExists placeholder readDir "
    "readFile removeAttrs replaceStrings scopedImport seq sort split splitVersion storeDir "
    "storePath stringLength sub substring tail throw toFile toJSON toPath toString toXML "
    "trace true tryEval typeOf unsafeDiscardOutputDependency unsafeDiscardStringContext "
    "unsafeGetAttrPos zipAttrsWith"
)
# Names with two leading underscores that are language features, not builtins.
NOT_BUILTINS = frozenset({"__toString", "__functor"})
TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_'-]*")
# Path literals such as ./a, ../b/c and d/e (a conservative superset).
PATH_LITERAL = re.compile(r"(?<![\w./])[A-Za-z0-9_.+-]*/[A-Za-z0-9_.+/-]*")


# -- which builtins a case uses -------------------------------------------------


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"(?m)(^|\s)#[^\n]*", " ", text)


def names_used(path: Path, seen: set[Path] | None = None) -> set[str]:
    """Builtins a file (and the files it names with ``./``) may use: a conservative
    textual scan, so a case is skipped rather than run with a missing builtin."""
    seen = set() if seen is None else seen
    if path in seen or not path.is_file():
        return set()
    seen.add(path)
    text = _strip_comments(path.read_text(encoding="utf-8", errors="replace"))
    used = set(re.findall(r"builtins\.([A-Za-z_][A-Za-z0-9_'-]*)", text))
    used |= {m for m in re.findall(r"\b(__[A-Za-z][A-Za-z0-9_'-]*)", text)}
    used -= NOT_BUILTINS
    with_builtins = "with builtins" in text
    for tok in TOKEN.findall(text):
        if tok in NIX_GLOBALS or (with_builtins and tok in NIX_BUILTINS):
            used.add(tok)
    for ref in PATH_LITERAL.findall(text):
        target = Path(os.path.normpath(path.parent / ref))
        if target.is_relative_to(path.parent.parent) and len(ref) < 200:
            used |= names_used(target, seen)
    return used


def supported_names() -> frozenset[str]:
    """Every name reprobuild has in ``builtins`` plus its bare globals."""
    from reprobuild.lang.evaluate import Evaluator
    from reprobuild.stepspec import STEP_KINDS

    ev = Evaluator(Path(tempfile.gettempdir()))
    # The step constructors are reprobuild's own (Nix's fetchurl is another thing).
    return frozenset((ev.builtin_names | set(ev.base_env.vars)) - set(STEP_KINDS))


# -- the run ------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    name: str
    passed: bool
    detail: str


def _same(a: Any, b: Any) -> bool:
    """JSON equality; floats as Nix 2.8 prints them (about 6 significant digits)."""
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, bool) or isinstance(b, bool):
            return False
        if isinstance(a, int | float) and isinstance(b, int | float):
            return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)
        return False
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


# What kind of error a message is, so that a failing case passes only when
# reprobuild fails for the reason Nix does (the wording may differ).
ERROR_KINDS: tuple[tuple[str, str], ...] = (
    (r"stack overflow|levels deep", "too deep"),
    (r"value is (an? \w+|null) while", "type"),
    (r"cannot coerce (an? \w+|null)", "coerce"),
    (r"undefined variable '([^']+)'", "undefined variable"),
    (r"attribute '([^']+)' missing", "missing attribute"),
    (r"assertion", "assertion"),
    (r"syntax error|unexpected character|unexpected end of", "syntax"),
    (r"not a function but (an? \w+)", "call"),
    (r"(?:without required|with unexpected) argument '([^']+)'", "arguments"),
    (r"cannot compare", "compare"),
    (r"invalid regular expression", "regex"),
    (r"overflow", "overflow"),
    (r"out of bounds|called on an empty list", "bounds"),
    (r"dynamic attributes", "dynamic attribute"),
    (r"division by zero", "division by zero"),
    (r"trailing slash", "trailing slash"),
    (r"infinite recursion", "infinite recursion"),
)


def error_kind(message: str) -> str:
    for pattern, kind in ERROR_KINDS:
        m = re.search(pattern, message)
        if m:
            return kind + (f" {m.group(1)}" if m.groups() else "")
    return "message " + message.strip()[:60]


def run_case(name: str, entry: dict[str, Any]) -> Outcome:
    """Evaluate one vendored case with reprobuild and compare with Nix 2.8."""
    from reprobuild.errors import RecipeError
    from reprobuild.lang.builtins import to_json
    from reprobuild.lang.evaluate import Evaluator

    path = CASES / f"{name}.nix"
    ev = Evaluator(CASES, trace=lambda _msg: None)
    try:
        value = ev.eval_file(path, path.name)
        data = to_json(ev, ev.force_deep(value), None)
    except RecipeError as exc:
        first = exc.render().splitlines()[0]
        if entry["kind"] == "okay":
            return Outcome(name, False, f"failed: {first}")
        ours, theirs = error_kind(exc.message), error_kind(entry["nix_error"])
        if exc.span is None:
            return Outcome(name, False, f"error without a location: {first}")
        if ours != theirs:
            return Outcome(name, False, f"{first} ({ours}), Nix 2.8: {entry['nix_error']}")
        return Outcome(name, True, first)
    except Exception as exc:  # a crash is a failure of the case, not of the run
        return Outcome(name, False, f"crashed: {type(exc).__name__}: {exc}")
    if entry["kind"] == "fail":
        return Outcome(name, False, f"succeeded with {json.dumps(data)[:200]}")
    if _same(data, entry["expected"]):
        return Outcome(name, True, "")
    return Outcome(
        name,
        False,
        f"got {json.dumps(data)[:200]}, Nix 2.8 gave {json.dumps(entry['expected'])[:200]}",
    )


def category(reason: str) -> str:
    return reason.split(":", 1)[0]


def summary(outcomes: Iterable[Outcome], skipped: dict[str, str]) -> str:
    results = list(outcomes)
    passed = sum(o.passed for o in results)
    counts = collections.Counter(category(r) for r in skipped.values())
    reasons = ", ".join(f"{n} {c}" for c, n in sorted(counts.items(), key=lambda x: (-x[1], x[0])))
    return (
        f"{passed} of {len(results)} Nix lang tests pass, {len(skipped)} skipped ({reasons})"
    )


def load_manifest() -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = json.loads(MANIFEST.read_text(encoding="utf-8"))
    return data["cases"]


def run(verbose: bool = False) -> tuple[list[Outcome], dict[str, str]]:
    cases = load_manifest()
    skipped = {n: e["skip"] for n, e in cases.items() if e.get("skip")}
    outcomes = [run_case(n, e) for n, e in sorted(cases.items()) if not e.get("skip")]
    if verbose:
        for n, reason in sorted(skipped.items()):
            print(f"skip  {n}: {reason}")
    for o in outcomes:
        if not o.passed:
            known = KNOWN_FAILURES.get(o.name)
            print(f"FAIL  {o.name}: {o.detail}" + (f" (known: {known})" if known else ""))
        elif verbose:
            print(f"pass  {o.name}")
    return outcomes, skipped


# -- refreshing the vendored cases and Nix 2.8's answers ----------------------------


def _nix(nix: str, path: Path, state: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NIX_REMOTE="")
    for var, sub in (("NIX_STATE_DIR", "state"), ("NIX_STORE_DIR", "store"),
                     ("NIX_LOG_DIR", "log")):  # fmt: skip
        (state / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(state / sub)
    return subprocess.run(
        [nix, "--eval", "--strict", "--json", path.name],
        cwd=path.parent,
        env=env,
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=120,
        check=False,
    )


def _nix_error(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if "error:" in ln]
    return lines[0].split("error:", 1)[1].strip() if lines else stderr.strip()[:200]


def refresh(upstream: Path) -> int:
    """Re-select the cases from a Nix checkout and record Nix 2.8's answers."""
    nix = shutil.which("nix-instantiate")
    if nix is None:
        print("nix-instantiate not found: apt-get install -y nix-bin", file=sys.stderr)
        return 2
    supported = supported_names()
    cases: dict[str, dict[str, Any]] = {}
    keep: set[Path] = set()
    with tempfile.TemporaryDirectory(prefix="nix-conf-") as tmp:
        for src in sorted(upstream.glob("eval-*.nix")):
            name = src.name[: -len(".nix")]
            kind = "okay" if name.startswith("eval-okay-") else "fail"
            entry: dict[str, Any] = {"kind": kind}
            cases[name] = entry
            flags = src.with_suffix(".flags")
            missing = sorted(names_used(src.resolve()) - supported)
            if flags.exists():
                entry["skip"] = f"needs nix-instantiate flags: {flags.read_text().strip()}"
                continue
            if name in DEVIATIONS:
                entry["skip"] = DEVIATIONS[name]
                continue
            if missing:
                entry["skip"] = "unsupported builtin: " + " ".join(missing)
                continue
            if re.search(r"\blet\s*\{", _strip_comments(src.read_text(errors="replace"))):
                entry["skip"] = f"{OLD_SYNTAX}: let {{ ... body = ...; }}"
                continue
            proc = _nix(nix, src, Path(tmp))
            if kind == "okay" and proc.returncode != 0:
                err = _nix_error(proc.stderr)
                why = "result is not JSON" if "to JSON" in err else "Nix 2.8 fails on it"
                entry["skip"] = f"{why}: {err[:160]}"
                continue
            if kind == "fail" and proc.returncode == 0:
                entry["skip"] = "Nix 2.8 evaluates it (a newer Nix rejects it)"
                continue
            if kind == "okay":
                out = proc.stdout
                if str(upstream) in out or tmp in out or "/nix/store" in out:
                    entry["skip"] = "result holds a path (Nix prints it as an absolute path)"
                    continue
                entry["expected"] = json.loads(out)
            else:
                entry["nix_error"] = _nix_error(proc.stderr)[:300]
            keep.add(src)
            keep |= _referenced(src, upstream)
    if CASES.exists():
        shutil.rmtree(CASES)
    for f in sorted(keep):
        dest = CASES / f.relative_to(upstream)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if f.is_dir():
            shutil.copytree(f, dest, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(f, dest, follow_symlinks=False)
    MANIFEST.write_text(
        json.dumps({"nix": "2.8.0", "cases": cases}, indent=1, sort_keys=True) + "\n",
        encoding="utf-8",
    )
    print(f"recorded {len(cases)} cases, vendored {len(keep)} files into {CASES}")
    return 0


def _referenced(src: Path, upstream: Path, seen: set[Path] | None = None) -> set[Path]:
    """Files and directories under ``upstream`` a case names with ``./``."""
    seen = set() if seen is None else seen
    out: set[Path] = set()
    text = _strip_comments(src.read_text(encoding="utf-8", errors="replace"))
    for ref in PATH_LITERAL.findall(text):
        target = Path(os.path.normpath(src.parent / ref))
        if len(ref) > 200 or target in seen or not target.is_relative_to(upstream):
            continue
        if target == upstream:
            continue
        seen.add(target)
        if target.exists() or target.is_symlink():
            # The whole top-level entry: symbolic links inside it stay as they are.
            out.add(upstream / target.relative_to(upstream).parts[0])
            if target.is_file():
                out |= _referenced(target, upstream, seen)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="list every case")
    parser.add_argument("--refresh", type=Path, metavar="NIX_LANG_TESTS_DIR")
    args = parser.parse_args(argv)
    if args.refresh is not None:
        return refresh(args.refresh.resolve())
    sys.path.insert(0, str(HERE.parent.parent))
    outcomes, skipped = run(args.verbose)
    unexpected = [o for o in outcomes if o.passed == (o.name in KNOWN_FAILURES)]
    print(summary(outcomes, skipped))
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
