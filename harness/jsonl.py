"""Append-only JSON-lines files (training metrics, the credit cache) read back after a kill.

A process killed mid-write leaves at most one torn line, the last, with no newline. Reading drops
it with a warning naming the file (and, with `repair=True`, rewrites the file without it, so the
next append starts on a fresh line). A bad line anywhere else is damage, not a torn write: a
JsonlError names the file and line.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any


class JsonlError(ValueError):
    """A JSON-lines file with a bad line that is not a torn last line; the message names file:line."""


class TornLineWarning(UserWarning):
    """A torn last line (a kill mid-write) was dropped."""


def read_jsonl(path: Path, repair: bool = False) -> list[dict[str, Any]]:
    """Every record (a JSON object per line) of `path`; [] when it does not exist."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline; else the unterminated last line
    records: list[dict[str, Any]] = []
    kept: list[bytes] = []
    for i, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        rec = _parse(raw)
        if rec is None:
            raise JsonlError(f"{path}:{i} is not a JSON object ({raw[:80]!r}); the file is damaged before "
                             "its last line: fix or remove that line")  # fmt: skip
        records.append(rec)
        kept.append(raw)
    if tail.strip():
        rec = _parse(tail)
        if rec is None:
            warnings.warn(f"{path}: dropped a torn last line (line {len(lines) + 1}, {len(tail)} bytes, "
                          "written when the run was killed)", TornLineWarning, stacklevel=2)  # fmt: skip
        else:
            records.append(rec)
            kept.append(tail)
    if repair and tail:  # the next append must start on a line of its own
        _replace(path, b"".join(line + b"\n" for line in kept))
    return records


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        rec = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return rec if isinstance(rec, dict) else None
