"""`sgcd-bench score tau3-airline`: score a JSONL file of trajectories, line by line.

A malformed line (bad JSON, missing fields, unknown task id) yields an output line with an
"error" field; every other line is still scored. Output is written as it goes, so an
interrupted run keeps what it scored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.airline.domain import AirlineDomain, load_domain
from harness.airline.evaluator import score
from harness.airline.trajectories import TrajectoryError, parse_record


def score_line(domain: AirlineDomain, line: str) -> dict[str, Any]:
    """One output record for one input line; a malformed line gets an "error" field."""
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as e:
        return {"id": None, "task_id": None, "error": f"not valid JSON: {e}"}
    head = raw if isinstance(raw, dict) else {}
    try:
        traj = parse_record(raw)
        task = domain.task(traj.task_id)
    except TrajectoryError as e:
        return {"id": head.get("id"), "task_id": head.get("task_id"), "error": str(e)}
    except KeyError as e:
        return {"id": head.get("id"), "task_id": head.get("task_id"), "error": str(e.args[0])}
    outcome = score(domain, task, traj.messages, traj.termination_reason)
    return {
        "id": traj.id,
        "task_id": traj.task_id,
        "reward": outcome.reward,
        "success": outcome.success,
        "db_match": bool(outcome.components["db_match"]),
        "communicate_ok": bool(outcome.components["communicate_ok"]),
    }


def score_file(input_path: Path, output_path: Path, data_dir: Path | None = None) -> dict[str, int]:
    domain = load_domain(data_dir)
    counts = {"scored": 0, "success": 0, "errors": 0}
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with open(input_path, encoding="utf-8") as fin, open(output_path, "w", encoding="utf-8") as fout:
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
