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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprobuild.errors import ReprobuildError, UsageError
from reprobuild.settings import FetchSettings

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
    # per-machine secrets a build left in a tree (identical or not, a failure)
    secrets: tuple[str, ...] = ()

    @property
    def reproducible(self) -> bool:
        return all(o.identical for o in self.outputs)

    @property
    def passed(self) -> bool:
        return self.reproducible and not self.secrets

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "reproducible": self.reproducible,
            "secrets": list(self.secrets),
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
    settings: FetchSettings | None = None,
    say: Callable[[str], None] | None = None,
    concurrent: bool | None = None,
) -> CheckResult:
    """Lock if needed, then build under control and varied conditions and compare.

    Each build has a fresh store; packages the user's store (``store_path``,
    or the default one) already holds are copied from it by sha256 instead of
    fetched again (``REPROBUILD_INPUT_STORE``): inputs only, never outputs.
    ``say`` receives progress lines (phases, and each inner build's steps);
    ``concurrent`` runs the control and the varied build at once (default:
    when the machine has at least 2 CPUs and the time variation applies, so
    that a leaking clock still differs between the two). The scratch tree is removed on
    every exit, a signal included (see :func:`_scratch`).
    """
    from reprobuild import api

    settings = settings or FetchSettings()
    say = say or (lambda line: None)
    locked = api.lock(recipe, sources=settings.sources())
    for line in locked.announcement():
        say(line)
    pr = api.planned(recipe)
    files = inputs_read(pr)
    applied = tuple(v for v in variations if available(v) is None)
    unavailable = tuple((v, why) for v in variations if (why := available(v)) is not None)
    extra = settings.argv()  # the same sources and policy for both builds (their stores: own)
    cpus = os.cpu_count() or 1
    # Built at the same moment, a clock read by a step (seconds) would agree in both
    # builds: concurrency only when the varied build's clock is shifted (time).
    together = (cpus >= 2 and "time" in applied) if concurrent is None else concurrent
    jobs = max(1, cpus // 2) if together else cpus
    with _scratch() as (work, children):
        root = pr.evaluation.evaluator.root_dir
        inputs = _input_store(settings.store_path)
        runner = _Runner(root, recipe, files, extra, children, say, jobs, inputs)
        say(
            f"check: {len(files)} file(s) copied per build; control and varied builds "
            + ("at once" if together else "one after the other")
        )
        if together:
            control, varied = runner.pair(work, applied)
        else:
            control = runner.build(work / "control", (), "control")
            varied = runner.build(work / "varied", applied, "varied")
        verdicts = []
        suspects: dict[str, tuple[str, ...]] = {}
        differing = [n for n in control if control[n]["sha256"] != varied[n]["sha256"]]
        if differing:
            say(f"check: {', '.join(differing)} differ; building the control again")
            again = runner.build(work / "control-again", (), "control again")
            flaky = {n for n in differing if again[n]["sha256"] != control[n]["sha256"]}
            for n in flaky:
                suspects[n] = ("time (differs between identical builds: the clock or randomness)",)
            rest = [n for n in differing if n not in flaky]
            if rest:
                for v in applied:
                    single = runner.build(work / f"only-{v}", (v,), f"only {v}")
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
    return CheckResult(
        recipe.name.removesuffix(".repro"),
        applied,
        unavailable,
        tuple(verdicts),
        tuple(dict.fromkeys(runner.secrets)),
    )


def inputs_read(pr: Any) -> tuple[str, ...]:
    """What a build of the recipe reads from its directory, relative to it: the
    recipe and its imports, file inputs (files and directories), the lockfile,
    and paths ``pathExists`` probed. Nothing else is copied (a 2 GB file or an
    unpacked root with device nodes beside the recipe is never read)."""
    from reprobuild import lockfile as lf

    root = pr.evaluation.evaluator.root_dir
    found: set[str] = set()
    for path in pr.evaluation.evaluator.files_read.values():
        found.add(os.path.relpath(path, root))
    found.add(os.path.relpath(lf.lock_path(pr.path).resolve(), root))

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            if isinstance(x.get("path"), str) and ("sha256" in x or "tree-sha256" in x):
                found.add(os.path.normpath(x["path"]))
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    for step in pr.plan.steps.values():
        walk(step.param_data())
    for probed in pr.evaluation.evaluator.paths_probed:
        if os.path.lexists(os.path.join(root, probed)):
            found.add(os.path.normpath(probed))
    return tuple(sorted(found))


def _copy_inputs(root: Path, files: Sequence[str], tree: Path) -> None:
    """Copy exactly ``files`` (relative to ``root``) into ``tree``."""
    from reprobuild.oserrors import outside_world
    from reprobuild.safecopy import copy_file, copy_tree

    tree.mkdir(parents=True)
    with outside_world(tree, what="copying the recipe's inputs for check"):
        for rel in files:
            src, dest = root / rel, tree / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if src.is_symlink():
                os.symlink(os.readlink(src), dest)
            elif src.is_dir():
                copy_tree(src, dest, "check")
            elif src.exists():
                copy_file(src, dest, "check")


class _Runner:
    """Runs the inner builds: each in a fresh copy of the inputs and a fresh store."""

    def __init__(
        self,
        root: Path,
        recipe: Path,
        files: Sequence[str],
        extra: Sequence[str],
        children: list[subprocess.Popen[bytes]],
        say: Callable[[str], None],
        jobs: int,
        input_store: Path | None = None,
    ) -> None:
        self.root, self.recipe, self.files, self.extra = root, recipe, files, extra
        self.children, self.say, self.jobs = children, say, jobs
        self.input_store = input_store
        self.secrets: list[str] = []  # per-machine secrets the builds reported

    def pair(self, work: Path, applied: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The control and the varied build at once; the first failure stops both."""
        from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

        with ThreadPoolExecutor(2) as pool:
            futs = [
                pool.submit(self.build, work / "control", (), "control"),
                pool.submit(self.build, work / "varied", applied, "varied"),
            ]
            done, _ = wait(futs, return_when=FIRST_EXCEPTION)
            if any(f.exception() is not None for f in done):
                _kill(self.children)
            return futs[0].result(), futs[1].result()

    def build(self, base: Path, varied: Sequence[str], label: str) -> dict[str, Any]:
        return _build(self, base, varied, label)


def _input_store(store_path: Path | None) -> Path | None:
    """The user's store, if there is one, for the builds' packages."""
    from reprobuild.store.core import default_store_path

    path = (store_path or default_store_path()).expanduser().absolute()
    return path if path.is_dir() else None


def _child_env() -> dict[str, str]:
    """The caller's environment for an inner build: its mirror, keyring, archive and
    fetch settings kept (REPROBUILD_*), its store and locale not (each build has a
    fresh store; the locale is a variation)."""
    from reprobuild.archives import search_dirs, user_dir
    from reprobuild.locking import cache_dir

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LC_") and k not in ("REPROBUILD_STORE", "REPROBUILD_ARCHIVES")
    }
    # --archives and REPROBUILD_ARCHIVES, and the user's own: HOME is a variation.
    dirs = [str(d.resolve()) for d in search_dirs()[:-1] if d.is_dir()]
    if dirs:
        env["REPROBUILD_ARCHIVES"] = os.pathsep.join(dirs)
    env["XDG_CONFIG_HOME"] = str(user_dir().parent.parent)
    # The parsed-index cache is keyed by sha256 and checked: shared, it saves a parse.
    env["XDG_CACHE_HOME"] = str(cache_dir().parent.parent)
    return env


def _build(run: _Runner, base: Path, varied: Sequence[str], label: str) -> dict[str, Any]:
    """One build in a fresh copy of the recipe's inputs and a fresh store."""
    deep = "build/under/a/much/longer/path" if "build_path" in varied else "b"
    rel_recipe = os.path.relpath(run.recipe.resolve(), run.root)
    tree = base / deep / "recipe"
    _copy_inputs(run.root, run.files, tree)
    home = base / ("home-varied" if "home" in varied else "home")
    home.mkdir(parents=True)
    env = _child_env()
    if run.input_store is not None:
        env["REPROBUILD_INPUT_STORE"] = str(run.input_store)
    env.update(VARIED if ("tz" in varied or "locale" in varied) else CONTROL)
    if "tz" in varied and "locale" not in varied:
        env.update({"LC_ALL": CONTROL["LC_ALL"], "LANG": CONTROL["LANG"]})
    if "locale" in varied and "tz" not in varied:
        env["TZ"] = CONTROL["TZ"]
    env["HOME"] = str(home)
    if "environment" in varied:
        env.update({"REPROTEST_CAPTURE_ENVIRONMENT": "i_capture_the_environment", "CAPTURE": "1"})
    jobs = max(2, run.jobs) if "jobs" in varied else 1
    argv = [
        sys.executable,
        "-m",
        "reprobuild",
        "build",
        "--json",
        "--progress",
        "--record",  # the copy's lockfile: check compares the two builds itself
        "--store",
        str(base / "store"),
        "-o",
        str(base / "out"),
        *run.extra,
        "-j",
        str(jobs),
        rel_recipe,
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
    run.say(f"[{label}] started" + (f" ({', '.join(varied)})" if varied else ""))
    with _tmpdir(base, "dir_order" in varied) as tmpdir:
        env["TMPDIR"] = str(tmpdir)
        returncode, stdout, stderr = _run_child(argv, tree, env, umask, run, label)
    if returncode != 0:
        from reprobuild.oserrors import mentions_no_space

        tail = stderr.strip()[-2000:]
        what = f"the build with variations {', '.join(varied) or 'none (control)'}"
        if mentions_no_space(tail):
            from reprobuild.errors import DiskFull

            raise DiskFull(
                f"check: {what} ran out of space under {base.parent}:\n{tail}",
                hint="check builds twice in TMPDIR: free space there or point TMPDIR at a "
                "larger file system; nothing was kept",
            )
        raise ReprobuildError(f"check: {what} failed:\n{tail}")
    result = json.loads(stdout)
    outputs: dict[str, Any] = result["outputs"]
    for info in outputs.values():
        info["path"] = (
            str(tree / info["path"]) if not Path(info["path"]).is_absolute() else info["path"]
        )
    run.say(f"[{label}] done")
    run.secrets.extend(result.get("secrets") or [])
    return outputs


def _run_child(
    argv: Sequence[str], cwd: Path, env: dict[str, str], umask: int, run: _Runner, label: str
) -> tuple[int, str, str]:
    """Run an inner build in its own process group (killed with the check), passing
    its step lines on as progress; returns (exit status, stdout, stderr)."""
    import threading

    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.umask(umask),
        start_new_session=True,
    )
    run.children.append(proc)
    err: list[str] = []

    def pump() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            err.append(line)
            if line.startswith(("run ", "cached ", "       ")):  # steps and phases
                run.say(f"[{label}] {line}")

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    assert proc.stdout is not None
    out = proc.stdout.read().decode("utf-8", "replace")
    code = proc.wait()
    reader.join()
    return code, out, "\n".join(err)


def _kill(children: Sequence[subprocess.Popen[bytes]]) -> None:
    import signal

    for proc in children:
        if proc.poll() is None:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
    for proc in children:
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)


@contextmanager
def _scratch() -> Iterator[tuple[Path, list[subprocess.Popen[bytes]]]]:
    """The check's scratch tree and the inner builds it started. On any exit,
    SIGTERM, SIGHUP and SIGINT included, the builds are killed (whole process
    groups), FUSE mounts undone and the tree removed."""
    import signal
    import threading

    children: list[subprocess.Popen[bytes]] = []
    previous: dict[int, Any] = {}

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, stop)
    tmp = tempfile.mkdtemp(prefix="reprobuild-check-")
    try:
        yield Path(tmp), children
    finally:
        _kill(children)
        _unmount_below(Path(tmp))
        shutil.rmtree(tmp, ignore_errors=True)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _unmount_below(root: Path) -> None:
    """A killed check may leave its disorderfs mount behind: undo it before removal."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return
    for line in mounts:
        parts = line.split()
        if len(parts) > 1 and parts[1].startswith(str(root) + "/"):
            subprocess.run(["fusermount", "-u", "-z", parts[1]], capture_output=True)


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
