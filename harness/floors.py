"""Null-agent floors: what an agent that does nothing scores, computed from the benchmark's data.

A benchmark that declares a floor (`has_floor`) says per task whether the do-nothing agent
passes it (`null_success`; τ³-airline: 23 of 50 tasks). Its `task_facts` carry it; eval writes
it into every result row; `null_floor` (the one floor function) averages it over tasks for the
inspect metric, summary.md and the reports (which read the rows eval wrote).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path


def null_successes(benchmark: str, task_ids: Iterable[str], data_dir: Path | None = None) -> dict[str, bool]:
    """Per task: does the do-nothing agent succeed (the benchmark's `null_success`)? KeyError for
    a benchmark that declares no floor. `data_dir`: the benchmark's data, for one that takes it."""
    from harness.benchmarks import benchmark_class, benchmark_params

    try:
        has_floor = benchmark_class(benchmark).has_floor
    except KeyError:  # a results table of a benchmark this installation does not have
        has_floor = False
    if not has_floor:
        raise KeyError(f"no null-agent floor is defined for benchmark {benchmark!r}")
    args = {"data_dir": str(data_dir)} if data_dir is not None and "data_dir" in benchmark_params(benchmark) else {}
    bench = benchmark_class(benchmark)(**args)  # built now: the data where it is now, not a cached instance's
    return {str(t): bool(bench.null_success(str(t))) for t in task_ids}


def null_floor(per_task: Mapping[str, bool | None]) -> float | None:
    """Mean null-agent success over tasks (task id -> does the do-nothing agent succeed?);
    None when there is no task or some task has no recorded value."""
    if not per_task or any(v is None for v in per_task.values()):
        return None
    return sum(bool(v) for v in per_task.values()) / len(per_task)
