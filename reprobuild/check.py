"""``reprobuild check``: build twice under reprotest's variations and compare.

The first build runs in a control environment, the second with every
requested variation at once. When an output differs, the control build is
repeated (a difference there means the clock or randomness leaks in), then
each variation is tried alone to name the one(s) responsible, and the two
artifacts are diffed. Every build runs in a fresh store, in a subprocess, so
nothing is shared between them but the recipe and its lockfile.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprobuild.errors import ReprobuildError, UsageError

VARIATIONS = (
    "build_path",
    "home",
    "tz",
    "locale",
    "umask",
    "jobs",
    "environment",
    "hostname",
    "dir_order",
    "time",
)
CONTROL = {"TZ": "Etc/GMT+12", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
VARIED = {"TZ": "Etc/GMT-14", "LC_ALL": "et_EE.UTF-8", "LANG": "et_EE.UTF-8"}
TIME_SHIFT = "+398 days"


@dataclass(frozen=True)
class OutputVerdict:
    name: str
    control: str
    varied: str
    causes: tuple[str, ...] = ()
    diff: str = ""

    @property
    def identical(self) -> bool:
        return self.control == self.varied


@dataclass(frozen=True)
class CheckResult:
    recipe: str
    applied: tuple[str, ...]
    unavailable: tuple[tuple[str, str], ...]  # (variation, why)
    outputs: tuple[OutputVerdict, ...] = field(default_factory=tuple)

    @property
    def reproducible(self) -> bool:
        return all(o.identical for o in self.outputs)

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "reproducible": self.reproducible,
            "variations": list(self.applied),
            "unavailable": {v: why for v, why in self.unavailable},
            "outputs": {
                o.name: {
                    "control": o.control,
                    "varied": o.varied,
                    "status": "identical" if o.identical else "differs",
                    "causes": list(o.causes),
                    "diff": o.diff,
                }
                for o in self.outputs
            },
        }


def parse_variations(spec: str) -> tuple[str, ...]:
    if spec == "all":
        return VARIATIONS
    names = tuple(v.strip().replace("-", "_") for v in spec.split(",") if v.strip())
    unknown = [n for n in names if n not in VARIATIONS]
    if unknown:
        raise UsageError(
            f"unknown variation(s): {', '.join(unknown)}",
            hint="choose from " + ", ".join(VARIATIONS) + " (or all)",
        )
    return names


def available(variation: str) -> str | None:
    """Why a variation cannot be applied here (None: it can)."""
    if variation == "hostname" and (os.geteuid() != 0 or not shutil.which("unshare")):
        return "needs root and unshare(1) for a UTS namespace"
    if variation == "time" and not shutil.which("faketime"):
        return "faketime is not installed (Debian package faketime)"
    if variation == "dir_order" and (
        not shutil.which("disorderfs") or not Path("/dev/fuse").exists()
    ):
        return "disorderfs and /dev/fuse are needed (Debian package disorderfs)"
    return None


def check(
    recipe: Path,
    *,
    variations: Sequence[str] = VARIATIONS,
    mirrors: Sequence[str] = (),
    keyrings: Sequence[str] = (),
    allow_expired: bool = False,
    insecure: bool = False,
) -> CheckResult:
    """Lock if needed, then build under control and varied conditions and compare."""
    from reprobuild import api
    from reprobuild.locking import Sources

    api.lock(
        recipe, sources=Sources.from_env(mirrors, keyrings, insecure, allow_expired=allow_expired)
    )
    applied = tuple(v for v in variations if available(v) is None)
    unavailable = tuple((v, why) for v in variations if (why := available(v)) is not None)
    extra = (
        [a for m in mirrors for a in ("--mirror", m)]
        + [a for k in keyrings for a in ("--keyring", k)]
        + (["--allow-expired"] if allow_expired else [])
        + (["--insecure-allow-unsigned"] if insecure else [])
    )
    with tempfile.TemporaryDirectory(prefix="reprobuild-check-") as tmp:
        work = Path(tmp)
        control = _build(recipe, work / "control", (), extra)
        varied = _build(recipe, work / "varied", applied, extra)
        verdicts = []
        suspects: dict[str, tuple[str, ...]] = {}
        differing = [n for n in control if control[n]["sha256"] != varied[n]["sha256"]]
        if differing:
            again = _build(recipe, work / "control-again", (), extra)
            flaky = {n for n in differing if again[n]["sha256"] != control[n]["sha256"]}
            for n in flaky:
                suspects[n] = ("time (differs between identical builds: the clock or randomness)",)
            rest = [n for n in differing if n not in flaky]
            if rest:
                for v in applied:
                    single = _build(recipe, work / f"only-{v}", (v,), extra)
                    for n in rest:
                        if single[n]["sha256"] != control[n]["sha256"]:
                            suspects[n] = (*suspects.get(n, ()), v)
        for name in sorted(control):
            c, d = control[name]["sha256"], varied[name]["sha256"]
            summary = ""
            if c != d:
                summary = _diff(Path(control[name]["path"]), Path(varied[name]["path"]))
            verdicts.append(
                OutputVerdict(
                    name,
                    c,
                    d,
                    suspects.get(name, ("combination of variations",)) if c != d else (),
                    summary,
                )
            )
    return CheckResult(recipe.name.removesuffix(".repro"), applied, unavailable, tuple(verdicts))


def _build(recipe: Path, base: Path, varied: Sequence[str], extra: Sequence[str]) -> dict[str, Any]:
    """One build in a fresh copy of the recipe tree and a fresh store."""
    src_root = recipe.resolve().parent
    deep = "build/under/a/much/longer/path" if "build_path" in varied else "b"
    tree = base / deep / "recipe"
    shutil.copytree(
        src_root,
        tree,
        symlinks=True,
        ignore=shutil.ignore_patterns("out", ".venv", "__pycache__", ".git"),
    )
    home = base / ("home-varied" if "home" in varied else "home")
    home.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REPROBUILD_", "LC_"))}
    env.update(VARIED if ("tz" in varied or "locale" in varied) else CONTROL)
    if "tz" in varied and "locale" not in varied:
        env.update({"LC_ALL": CONTROL["LC_ALL"], "LANG": CONTROL["LANG"]})
    if "locale" in varied and "tz" not in varied:
        env["TZ"] = CONTROL["TZ"]
    env["HOME"] = str(home)
    if "environment" in varied:
        env.update({"REPROTEST_CAPTURE_ENVIRONMENT": "i_capture_the_environment", "CAPTURE": "1"})
    argv = [
        sys.executable,
        "-m",
        "reprobuild",
        "build",
        "--json",
        "-q",
        "--store",
        str(base / "store"),
        "-o",
        str(base / "out"),
        *extra,
        "-j",
        str(max(2, os.cpu_count() or 2)) if "jobs" in varied else "1",
        recipe.name,
    ]
    if "time" in varied:
        argv = ["faketime", TIME_SHIFT, *argv]
    if "hostname" in varied:
        argv = [
            "unshare",
            "--uts",
            "sh",
            "-c",
            'hostname reprobuild-varied-host && exec "$@"',
            "sh",
            *argv,
        ]
    umask = 0o002 if "umask" in varied else 0o022
    with _tmpdir(base, "dir_order" in varied) as tmpdir:
        env["TMPDIR"] = str(tmpdir)
        proc = subprocess.run(
            argv,
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            preexec_fn=lambda: os.umask(umask),
        )
    if proc.returncode != 0:
        raise ReprobuildError(
            f"check: the build with variations {', '.join(varied) or 'none (control)'} failed:\n"
            + proc.stderr.strip()[-2000:]
        )
    outputs: dict[str, Any] = json.loads(proc.stdout)["outputs"]
    for info in outputs.values():
        info["path"] = (
            str(tree / info["path"]) if not Path(info["path"]).is_absolute() else info["path"]
        )
    return outputs


@contextmanager
def _tmpdir(base: Path, shuffle: bool) -> Iterator[Path]:
    """The build's TMPDIR, where step trees are created; under disorderfs the
    order of directory entries is shuffled."""
    plain = base / "tmp"
    plain.mkdir(parents=True, exist_ok=True)
    if not shuffle:
        yield plain
        return
    mounted = base / "tmp-shuffled"
    mounted.mkdir()
    subprocess.run(
        ["disorderfs", "--shuffle-dirents=yes", "--multi-user=yes", str(plain), str(mounted)],
        check=True,
        capture_output=True,
    )
    try:
        yield mounted
    finally:
        subprocess.run(["fusermount", "-u", str(mounted)], capture_output=True)


def _diff(a: Path, b: Path) -> str:
    try:
        from reprobuild.diff import compare, render_text
    except ImportError:  # pragma: no cover - diff ships with reprobuild
        return ""
    try:
        difference = compare(a, b)
    except ReprobuildError as exc:
        return f"could not compare: {exc.message}"
    if difference is None:
        return ""
    return "\n".join(render_text(difference).splitlines()[:30])
