"""Benchmark metrics shared by the harness and the reports: pass^k, pass@1, its clustered SE, flip rates.

Group success (AppWorld's SGC): per eval seed, the share of groups (scenarios) whose tasks all
succeed; a group with a task that has no scored result in that seed (an infra error, a missing
row) is left out of that seed. One function for AppWorld's metrics and the reports.

pass@1's standard error is one function (clustered_se) for the inspect task's metric, the eval
summary and the reports: clustered by scenario where the benchmark has scenarios, else by task.

pass^k (τ-bench): for a task with n trials and c successes, the chance that k trials drawn
without replacement all succeed, C(c, k) / C(n, k); averaged over tasks. pass@1 = mean reward.

Flip rate (a run with >= 2 eval seeds): the share of tasks whose success differs between seeds
(some seed passes, another fails). Verdict flips (two runs, paired): per task, the share of its
eval seeds on which the two runs' success differs, averaged over tasks (with one seed: the share
of tasks whose verdict differs). Both with a percentile bootstrap CI over tasks.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from math import comb
from typing import Any


def pass_hat_k(successes: int, trials: int, k: int) -> float:
    """C(successes, k) / C(trials, k) for one task. Requires 1 <= k <= trials."""
    if not 1 <= k <= trials:
        raise ValueError(f"pass^k needs 1 <= k <= trials (k={k}, trials={trials})")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must lie in [0, trials] (successes={successes}, trials={trials})")
    return comb(successes, k) / comb(trials, k)


def check_pass_k(pass_k: Iterable[int], trials: int) -> None:
    """Every k of pass^k must lie in 1..trials (the eval seeds); a ValueError names the others."""
    bad = [k for k in pass_k if not 1 <= k <= trials]
    if bad:
        raise ValueError(f"pass^k needs 1 <= k <= seeds; got k={bad} with {trials} seed(s)")


def cluster_sums(values: Sequence[float] | Any, clusters: Sequence[Any] | Any | None = None) -> tuple[Any, Any]:
    """values (n,), clusters (n,) labels or None -> (S (G,), m (G,)): per-cluster sums and sizes
    (numpy arrays). Without clusters every value is its own cluster."""
    import numpy as np

    x = np.asarray(values, dtype=float)
    if clusters is None:
        return x, np.ones_like(x)
    _, inverse = np.unique(np.asarray(clusters, dtype=str), return_inverse=True)
    return np.bincount(inverse, weights=x), np.bincount(inverse).astype(float)


def clustered_se(values: Sequence[float] | Any, clusters: Sequence[Any] | Any | None = None) -> float:
    """Cluster-robust standard error of the mean of `values` (n,), in clusters (n,) labels.

        SE² = G/(G-1) · Σ_g (S_g - m_g·mean)² / n²

    (CR1, as statsmodels' OLS on a constant with cov_type="cluster"). One value per cluster gives
    SE² = Σ (x_i - mean)² / ((n-1)·n) = sd²/n. Fewer than two clusters: NaN.
    """
    import numpy as np

    s, m = cluster_sums(values, clusters)
    g, n = len(s), m.sum()
    if g < 2:
        return float("nan")
    mean = s.sum() / n
    return float(np.sqrt(g / (g - 1) * np.sum((s - m * mean) ** 2)) / n)


def sd_over_seeds(values: Iterable[float]) -> float:
    """Sample SD (ddof=1) of per-seed values; NaN with fewer than two seeds (no spread to show)."""
    vals = list(values)
    return statistics.stdev(vals) if len(vals) > 1 else float("nan")


@dataclass
class GroupSuccess:
    """Share of groups whose tasks all succeed, per eval seed (NaN: no complete group there)."""

    per_seed: dict[Any, float] = field(default_factory=dict)
    complete: dict[Any, int] = field(default_factory=dict)  # groups counted in each seed
    n_groups: int = 0
    n_incomplete: int = 0  # group × seed cells left out (a task there had no scored result)

    @property
    def mean(self) -> float:
        vals = [v for v in self.per_seed.values() if not math.isnan(v)]
        return statistics.fmean(vals) if vals else float("nan")

    @property
    def sd(self) -> float:
        return sd_over_seeds(v for v in self.per_seed.values() if not math.isnan(v))


def group_success(per_seed: Mapping[Any, Mapping[str, bool | None]], group_of: Mapping[str, str]) -> GroupSuccess:
    """per_seed: seed -> (task id -> success, None for an infra error); group_of: task id -> its
    group, for every task of the run. A group counts in a seed only when each of its tasks has a
    scored result there."""
    members: dict[str, list[str]] = defaultdict(list)
    for task_id, group in group_of.items():
        members[group].append(task_id)
    out = GroupSuccess(n_groups=len(members))
    for seed, results in per_seed.items():
        full = [g for g, tasks in members.items() if all(results.get(t) is not None for t in tasks)]
        out.n_incomplete += len(members) - len(full)
        out.complete[seed] = len(full)
        out.per_seed[seed] = sum(all(results[t] for t in members[g]) for g in full) / len(full) if full else float("nan")
    return out


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


@dataclass(frozen=True)
class Rate:
    """A share over tasks with its 95% percentile bootstrap CI (resampling tasks)."""

    value: float
    low: float
    high: float
    n_tasks: int
    n_flipped: float  # tasks that flipped (a sum of per-task shares for verdict flips)


def _bootstrap_rate(per_task: list[float], seed: int, n_resamples: int) -> Rate:
    """The mean of per_task (n_tasks,) with scipy's percentile bootstrap over tasks; every share
    equal (one task included) is a point interval."""
    import numpy as np
    from scipy import stats

    n = len(per_task)
    value = sum(per_task) / n
    if len(set(per_task)) == 1:
        return Rate(value, value, value, n, sum(per_task))
    res = stats.bootstrap((np.asarray(per_task, dtype=float),), np.mean, n_resamples=n_resamples,
                          method="percentile", vectorized=True, rng=np.random.default_rng(seed))  # fmt: skip
    low, high = res.confidence_interval
    return Rate(value, float(low), float(high), n, sum(per_task))


def flip_rate(per_task: Mapping[str, Iterable[bool]], seed: int = 0, n_resamples: int = 2000) -> Rate | None:
    """Share of tasks whose success differs between eval seeds; tasks with < 2 trials are left
    out; None when no task has 2 trials."""
    flips = [float(len(set(f)) > 1) for f in (list(map(bool, v)) for v in per_task.values()) if len(f) >= 2]
    return _bootstrap_rate(flips, seed, n_resamples) if flips else None


def verdict_flip_rate(pairs: Mapping[str, Iterable[tuple[bool, bool]]], seed: int = 0,
                      n_resamples: int = 2000) -> Rate | None:  # fmt: skip
    """pairs: task id -> (success of run a, success of run b) per shared eval seed. Per task the
    share of its seeds with differing verdicts, averaged over tasks; None without pairs."""
    shares = []
    for ps in pairs.values():
        ps = [(bool(a), bool(b)) for a, b in ps]
        if ps:
            shares.append(sum(a != b for a, b in ps) / len(ps))
    return _bootstrap_rate(shares, seed, n_resamples) if shares else None
