"""Where benchmark data lives, how it is pulled, and how every file is checked by sha256.

The project ships no benchmark data: `sgcd-bench data pull NAME [--from DIR]` copies
(or downloads, at the pinned upstream commit) the files into the data directory, verifying
each file's sha256. Loading code calls `require_dataset`, which fails with the file name and
the command that fixes it. A benchmark declares the Dataset it needs (`Benchmark.data`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path


class DataError(RuntimeError):
    """A missing or corrupt data file; the message names the file and the fix."""


@dataclass(frozen=True)
class DataFile:
    name: str
    sha256: str | None  # None: copied when present, recorded, not verified (licence notice)
    upstream_path: str | None  # path in the upstream repository; None: not a file upstream
    optional: bool = False


@dataclass(frozen=True)
class Dataset:
    name: str
    upstream_repo: str
    upstream_commit: str
    files: tuple[DataFile, ...]

    def urls(self) -> dict[str, str]:
        """The download URL of every file that exists upstream, at the pinned commit."""
        return {
            f.name: f"https://raw.githubusercontent.com/{self.upstream_repo}/{self.upstream_commit}/{f.upstream_path}"
            for f in self.files
            if f.upstream_path is not None
        }


def datasets() -> dict[str, Dataset]:
    """Every dataset a registered benchmark declares it needs (its `data`), by name."""
    from harness.benchmarks import discover

    return {cls.data.name: cls.data for cls in discover().values() if cls.data is not None}


def data_root() -> Path:
    """`$SGCD_DATA_DIR`, else `$XDG_CACHE_HOME/sgcd-bench/data`, else `~/.cache/sgcd-bench/data`."""
    env = os.environ.get("SGCD_DATA_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "sgcd-bench" / "data"


def dataset_dir(name: str) -> Path:
    return data_root() / name


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _get_dataset(name: str) -> Dataset:
    known = datasets()
    if name not in known:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(sorted(known))}")
    return known[name]


def _fix_hint(name: str) -> str:
    return f"run `sgcd-bench data pull {name}` (or `sgcd-bench data pull {name} --from DIR` with a local copy)"


def verify(name: str, directory: Path | None = None) -> dict[str, str]:
    """Check every required file (and every optional one present); return {file: sha256}."""
    ds = _get_dataset(name)
    directory = directory or dataset_dir(name)
    found: dict[str, str] = {}
    for f in ds.files:
        path = directory / f.name
        if not path.is_file():
            if f.optional:
                continue
            raise DataError(f"{name}: missing {path}; {_fix_hint(name)}")
        digest = sha256_file(path)
        if f.sha256 is not None and digest != f.sha256:
            raise DataError(
                f"{name}: {path} is corrupt (sha256 {digest[:12]}…, expected {f.sha256[:12]}…); {_fix_hint(name)}"
            )
        found[f.name] = digest
    return found


def require_dataset(name: str, directory: Path | None = None) -> Path:
    """The verified directory of a dataset (default: the pulled copy; an explicit `--data-dir`
    is checked file by file the same way), or a DataError saying how to get it."""
    directory = Path(directory) if directory is not None else dataset_dir(name)
    verify(name, directory)
    return directory


def _place(src: Path, dest: Path) -> None:
    """Write atomically: a crash never leaves a half-written file under the final name."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _download(url: str, dest: Path, timeout: float = 60.0) -> None:
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir) / dest.name
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
            shutil.copyfileobj(resp, out)
        _place(tmp, dest)


def pull(name: str, source: Path | None = None, dest_dir: Path | None = None) -> dict[str, str]:
    """Copy (from `source`) or download (upstream, pinned commit) a dataset, checking hashes.

    Each file is checked before it is placed, so a corrupt source never replaces a good file.
    Returns {file: sha256} of what is in place afterwards.
    """
    ds = _get_dataset(name)
    dest_dir = dest_dir or dataset_dir(name)
    dest_dir.mkdir(parents=True, exist_ok=True)
    urls = ds.urls()
    with tempfile.TemporaryDirectory() as staging:
        for f in ds.files:
            staged = Path(staging) / f.name
            if source is not None:
                src = Path(source) / f.name
                if not src.is_file():
                    if f.optional:
                        continue
                    raise DataError(f"{name}: {src} not found in --from directory {source}")
                shutil.copyfile(src, staged)
            else:
                if f.name not in urls:
                    continue  # tools.json is not a file upstream
                try:
                    _download(urls[f.name], staged)
                except OSError as e:
                    if f.optional:
                        continue
                    raise DataError(f"{name}: could not download {f.name} from {urls[f.name]}: {e}") from e
            if f.sha256 is not None:
                digest = sha256_file(staged)
                if digest != f.sha256:
                    raise DataError(
                        f"{name}: {f.name} from {source or urls[f.name]} has sha256 {digest}, expected {f.sha256}"
                    )
        for f in ds.files:
            staged = Path(staging) / f.name
            if staged.exists():
                _place(staged, dest_dir / f.name)
    return verify(name, dest_dir)
