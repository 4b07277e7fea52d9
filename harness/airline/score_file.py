"""`sgcd-bench score tau3-airline`: score a JSONL file of trajectories, line by line.

A malformed line (bad JSON, missing fields, unknown task id) yields an output line with an
"error" field; every other line is still scored. Output is written as it goes, so an
interrupted run keeps what it scored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from harness.airline.domain import AirlineDomain, load_domain
from harness.airline.evaluator import score
from harness.airline.trajectories import TrajectoryError, parse_record


class SameFileError(ValueError):
    """--output names the input file."""


def score_line(domain: AirlineDomain, line: str | bytes) -> dict[str, Any]:
    """One output record for one input line; a malformed line gets an "error" field. Never raises
    on bad input: whatever a line holds, the rest of the file is still scored."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as e:
            return {"id": None, "task_id": None, "error": f"not UTF-8 text: {e}"}
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as e:
        return {"id": None, "task_id": None, "error": f"not valid JSON: {e}"}
    except RecursionError:
        return {"id": None, "task_id": None, "error": "JSON nested too deeply to read"}
    head = raw if isinstance(raw, dict) else {}
    ids = {"id": _plain(head.get("id")), "task_id": _plain(head.get("task_id"))}
    try:
        traj = parse_record(raw)
        task = domain.task(traj.task_id)
    except TrajectoryError as e:
        return {**ids, "error": str(e)}
    except KeyError as e:
        return {**ids, "error": str(e.args[0])}
    except (TypeError, ValueError, AttributeError, RecursionError) as e:  # a shape parse_record does not expect
        return {**ids, "error": f"malformed trajectory: {type(e).__name__}: {e}"}
    try:
        outcome = score(domain, task, traj.messages, traj.termination_reason)
    except RecursionError:
        return {**ids, "error": "a tool call's arguments are nested too deeply to score"}
    except (TypeError, ValueError, AttributeError, KeyError) as e:
        return {**ids, "error": f"could not score: {type(e).__name__}: {e}"}
    return {
        "id": traj.id,
        "task_id": traj.task_id,
        "reward": outcome.reward,
        "success": outcome.success,
        "db_match": bool(outcome.components["db_match"]),
        "communicate_ok": bool(outcome.components["communicate_ok"]),
    }


def _plain(value: Any) -> Any:
    """An id as given when it is a plain JSON scalar, else its repr (an output line never nests)."""
    return value if value is None or isinstance(value, str | int | float | bool) else repr(value)[:200]


def score_file(input_path: Path, output_path: Path, data_dir: Path | None = None) -> dict[str, int]:
    if output_path.exists() and os.path.samefile(input_path, output_path):
        raise SameFileError(f"--output {output_path} is the input file: scoring would overwrite it; "
                         "write the scores to another file")  # fmt: skip
    domain = load_domain(data_dir)
    counts = {"scored": 0, "success": 0, "errors": 0}
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with open(input_path, "rb") as fin, open(output_path, "w", encoding="utf-8") as fout:
        for line in fin:
            if not line.strip():
                continue
            result = score_line(domain, line)
            if "error" in result:
                counts["errors"] += 1
            else:
                counts["scored"] += 1
                counts["success"] += bool(result["success"])
            fout.write(json.dumps(result) + "\n")
            fout.flush()
    return counts
