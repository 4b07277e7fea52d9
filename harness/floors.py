"""Null-agent floors: what an agent that does nothing scores, computed from the benchmark's data.

τ³-airline: a do-nothing trajectory (greeting, the user leaves) scored by the official rules;
23 of 50 tasks pass it. Reports print the floor beside every score.
"""

from __future__ import annotations

from collections.abc import Iterable
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


def null_floor(benchmark: str, task_ids: Iterable[str], data_dir: Path | None = None) -> float:
    """Mean null-agent success over the given tasks."""
    flags = null_successes(benchmark, task_ids, data_dir)
    if not flags:
        raise ValueError("null floor of no tasks")
    return sum(flags.values()) / len(flags)
