"""Benchmark metrics shared by the harness and the reports: pass^k and pass@1.

pass^k (τ-bench): for a task with n trials and c successes, the chance that k trials drawn
without replacement all succeed, C(c, k) / C(n, k); averaged over tasks. pass@1 = mean reward.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from math import comb


def pass_hat_k(successes: int, trials: int, k: int) -> float:
    """C(successes, k) / C(trials, k) for one task. Requires 1 <= k <= trials."""
    if not 1 <= k <= trials:
        raise ValueError(f"pass^k needs 1 <= k <= trials (k={k}, trials={trials})")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must lie in [0, trials] (successes={successes}, trials={trials})")
    return comb(successes, k) / comb(trials, k)


def pass_hat_k_mean(per_task: Mapping[str, Iterable[bool]], k: int) -> float:
    """pass^k averaged over tasks; `per_task` maps task id -> its trials' success flags."""
    values = []
    for task_id, flags in per_task.items():
        flags = list(flags)
        if len(flags) < k:
            raise ValueError(f"task {task_id} has {len(flags)} trial(s), fewer than k={k}")
        values.append(pass_hat_k(sum(bool(f) for f in flags), len(flags), k))
    if not values:
        raise ValueError("pass^k of no tasks")
    return sum(values) / len(values)
