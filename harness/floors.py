"""Null-agent floors: what an agent that does nothing scores, computed from the benchmark's data.

τ³-airline: a do-nothing trajectory (greeting, the user leaves) scored by the official rules;
23 of 50 tasks pass it. Each benchmark's `task_facts` gives a task's `null_success`; eval writes
it into every result row; `null_floor` (the one floor function) averages it over tasks for the
inspect metric, summary.md and the reports (which read the rows eval wrote).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path


def null_successes(benchmark: str, task_ids: Iterable[str], data_dir: Path | None = None) -> dict[str, bool]:
    """Per task: does the do-nothing agent succeed? Raises KeyError for a benchmark without a floor."""
    if benchmark == "tau3-airline":
        from harness.airline.domain import load_domain
        from harness.airline.evaluator import score
        from harness.airline.trajectories import null_trajectory

        domain = load_domain(data_dir)
        out = {}
        for tid in task_ids:
            task = domain.task(str(tid))
            traj = null_trajectory(task)
            out[str(tid)] = score(domain, task, traj.messages, traj.termination_reason).success
        return out
    raise KeyError(f"no null-agent floor is defined for benchmark {benchmark!r}")


def null_floor(per_task: Mapping[str, bool | None]) -> float | None:
    """Mean null-agent success over tasks (task id -> does the do-nothing agent succeed?);
    None when there is no task or some task has no recorded value."""
    if not per_task or any(v is None for v in per_task.values()):
        return None
    return sum(bool(v) for v in per_task.values()) / len(per_task)
