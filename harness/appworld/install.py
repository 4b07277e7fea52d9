"""Where AppWorld lives (its own venv and data root), how it is set up, and the checks that say so.

AppWorld pins pydantic < 2, so it gets a venv of its own beside the harness's; the harness
never imports it and only runs that venv's interpreter (environment servers, the fixture
builder). Locations:

    venv  $SGCD_APPWORLD_VENV, else $XDG_CACHE_HOME/sgcd-bench/appworld/venv (~/.cache/…)
    root  $SGCD_APPWORLD_ROOT, else $XDG_CACHE_HOME/sgcd-bench/appworld/root; AppWorld's
          APPWORLD_ROOT: it holds data/ (tasks, datasets, base DBs, API docs) and
          experiments/outputs/ (one folder per rollout)

`setup_venv` makes the venv, installs appworld==0.1.3.post1 and runs `appworld install`
(offline: it unpacks code shipped inside the wheel). `download_data` runs `appworld download
data`, which fetches from AppWorld's own host and deletes any existing data/ first, so it
refuses to run over existing data unless forced.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

APPWORLD_VERSION = "0.1.3.post1"
SPLITS = ("train", "dev", "test_normal", "test_challenge")
# Task counts of the released data (0.1.0 bundle); three tasks per scenario.
SPLIT_SIZES = {"train": 90, "dev": 57, "test_normal": 168, "test_challenge": 417}
FIXTURE_MARKER = (
    "sgcd_fixture.json"  # present only in a data folder built by harness.appworld.fixture
)
READY_MARKER = ".sgcd-appworld-ready"
SETUP_HINT = "run `sgcd-bench appworld setup`"
DATA_HINT = "run `sgcd-bench appworld setup` (once) and then `sgcd-bench appworld data`"


class AppWorldSetupError(RuntimeError):
    """The AppWorld venv or data is missing or broken; the message names what and the fix."""


def appworld_home() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "sgcd-bench" / "appworld"


def venv_dir() -> Path:
    env = os.environ.get("SGCD_APPWORLD_VENV")
    return Path(env).expanduser() if env else appworld_home() / "venv"


def root_dir() -> Path:
    env = os.environ.get("SGCD_APPWORLD_ROOT")
    return Path(env).expanduser() if env else appworld_home() / "root"


def cache_dir(venv: Path | None = None) -> Path:
    """AppWorld's APPWORLD_CACHE (where `appworld install` unpacks its package tests)."""
    return (venv or venv_dir()) / "appworld-cache"


def venv_python(venv: Path | None = None) -> Path:
    return (venv or venv_dir()) / "bin" / "python"


def appworld_env(root: Path, venv: Path | None = None) -> dict[str, str]:
    """The environment for a process of the AppWorld venv working on data root `root`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["APPWORLD_ROOT"] = str(Path(root).resolve())
    env["APPWORLD_CACHE"] = str(cache_dir(venv))
    env["PATH"] = f"{(venv or venv_dir()) / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


# What an AppWorld server's environment may hold: nothing of the harness's own (keys, tokens).
SERVER_ENV_KEEP = ("LANG", "LC_ALL", "TZ")


def server_env(root: Path, home: Path, venv: Path | None = None) -> dict[str, str]:
    """The allow-listed environment of the processes that run or score model code: AppWorld's
    two locations, a private HOME, the venv on PATH, locale; nothing else of the harness's."""
    env = {k: os.environ[k] for k in SERVER_ENV_KEEP if k in os.environ}
    env.setdefault("LANG", "C.UTF-8")
    env |= {
        "APPWORLD_ROOT": str(Path(root).resolve()),
        "APPWORLD_CACHE": str(cache_dir(venv)),
        "PATH": f"{(venv or venv_dir()) / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(home),
        "IPYTHONDIR": str(Path(home) / "ipython"),
        "TMPDIR": str(Path(home) / "tmp"),
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }
    return env


def require_venv(venv: Path | None = None) -> Path:
    """The venv's python, or AppWorldSetupError with the command that makes the venv."""
    venv = venv or venv_dir()
    python = venv_python(venv)
    if not python.exists():
        raise AppWorldSetupError(f"no AppWorld venv at {venv} ({python} is missing); {SETUP_HINT}")
    if not (venv / READY_MARKER).is_file():
        raise AppWorldSetupError(
            f"the AppWorld venv at {venv} is incomplete (set-up did not finish); "
            f"{SETUP_HINT} --force"
        )
    return python


@dataclass
class DataInfo:
    """What a data root holds: its splits with task ids, and whether it is a test fixture."""

    root: Path
    fixture: bool
    splits: dict[str, list[str]]

    @property
    def benchmark(self) -> str:
        """Results label: a fixture is never reported as AppWorld."""
        return "appworld-fixture" if self.fixture else "appworld"


def read_split(root: Path, split: str) -> list[str]:
    """Task ids of `split` in data root `root` (tags after ':' dropped, as AppWorld does)."""
    path = Path(root) / "data" / "datasets" / f"{split}.txt"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.txt"))
        raise AppWorldSetupError(
            f"no split {split!r} in {path.parent} (found: {', '.join(known) or 'none'})"
        )
    return [line.split(":")[0].strip() for line in path.read_text().splitlines() if line.strip()]


def require_data(root: Path | None = None) -> DataInfo:
    """The data under `root`, or AppWorldSetupError naming the missing folder and the fix."""
    root = Path(root or root_dir())
    data = root / "data"
    for sub in ("tasks", "datasets", "base_dbs", "api_docs"):
        if not (data / sub).is_dir():
            raise AppWorldSetupError(
                f"AppWorld data is missing: {data / sub} does not exist (data root {root}, set "
                f"SGCD_APPWORLD_ROOT to use another); {DATA_HINT}"
            )
    fixture = (data / FIXTURE_MARKER).is_file()
    splits = {p.stem: read_split(root, p.stem) for p in sorted((data / "datasets").glob("*.txt"))}
    return DataInfo(root=root, fixture=fixture, splits=splits)


def check_split_sizes(info: DataInfo) -> list[str]:
    """Problems with the released split sizes (empty when they match; fixtures are exempt)."""
    if info.fixture:
        return []
    problems = []
    for split, n in SPLIT_SIZES.items():
        got = len(info.splits.get(split, []))
        if got != n:
            problems.append(f"split {split} has {got} tasks, expected {n}")
    return problems


def _run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        raise AppWorldSetupError(
            f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n" + "\n".join(tail)
        )


def setup_venv(
    venv: Path | None = None, force: bool = False, python: str | None = None
) -> dict[str, float]:
    """Make the AppWorld venv (appworld==APPWORLD_VERSION + `appworld install`); idempotent.

    Returns timings in seconds ({} when the venv was already complete and not forced).
    """
    venv = venv or venv_dir()
    if (venv / READY_MARKER).is_file() and not force:
        return {}
    (venv / READY_MARKER).unlink(missing_ok=True)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    if not venv_python(venv).exists() or force:
        _run([python or sys.executable, "-m", "venv", "--clear", str(venv)])
    timings["venv_s"] = time.perf_counter() - t
    t = time.perf_counter()
    _run(
        [str(venv_python(venv)), "-m", "pip", "install", "--quiet", f"appworld=={APPWORLD_VERSION}"]
    )
    timings["pip_s"] = time.perf_counter() - t
    t = time.perf_counter()
    env = appworld_env(root_dir(), venv)
    _run([str(venv / "bin" / "appworld"), "install"], env=env)
    # A full installation has the unpacked app code; check it the way AppWorld's CLI does.
    _run(
        [
            str(venv_python(venv)),
            "-c",
            "import appworld.apps.api_docs.apis, appworld.serve.environment",
        ],
        env=env,
    )
    timings["install_s"] = time.perf_counter() - t
    marker = {
        "appworld": APPWORLD_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **timings,
    }
    (venv / READY_MARKER).write_text(json.dumps(marker, indent=1))
    return timings


def data_present(root: Path | None = None) -> bool:
    return (Path(root or root_dir()) / "data").exists()


def download_data(
    root: Path | None = None, venv: Path | None = None, force: bool = False
) -> DataInfo:
    """Run `appworld download data` for `root`; refuses when root/data exists unless `force`.

    AppWorld's command deletes data/ before downloading; here it runs in a staging root beside
    `root`, and root/data is replaced only once the new data is complete, so a failed
    download never costs the data already there.
    """
    root = Path(root or root_dir()).resolve()
    if data_present(root) and not force:
        raise AppWorldSetupError(
            f"{root / 'data'} already exists and `appworld download data` deletes it before "
            "downloading; pass --force to replace it"
        )
    python = require_venv(venv)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / ".sgcd-download"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    appworld = python.parent / "appworld"
    env = appworld_env(staging, venv) | {"_TYPER_STANDARD_TRACEBACK": "1"}  # plain tracebacks
    try:
        try:
            _run([str(appworld), "download", "data", "--root", str(staging)], env=env, cwd=staging)
        except AppWorldSetupError as e:
            raise AppWorldSetupError(
                f"downloading AppWorld's data from its own host failed; this needs internet "
                f"access to that host. {root / 'data'} is unchanged.\n{e}"
            ) from e
        if not (staging / "data" / "tasks").is_dir():
            raise AppWorldSetupError(
                f"`appworld download data` finished without data/tasks: the download from "
                f"AppWorld's own host failed. {root / 'data'} is unchanged."
            )
        old = root / ".sgcd-data-old"
        shutil.rmtree(old, ignore_errors=True)
        if (root / "data").exists():
            (root / "data").rename(old)
        (staging / "data").rename(root / "data")
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return require_data(root)
