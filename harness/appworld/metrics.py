"""AppWorld's metrics, as pure functions: TGC, SGC and their spread over eval seeds.

    TGC (task goal completion)     = 100 × mean success over tasks
    SGC (scenario goal completion) = 100 × share of scenarios whose tasks all succeed

success = every test of the task passes. A scenario is the task id without its final
`_<number>` ("50e1ac9_1" -> "50e1ac9"; AppWorld ids are 7 hex digits, `_`, the task's number
within its scenario, optionally followed by `:tag`). AppWorld itself rounds to one decimal; these
functions do not round.

Infrastructure errors (success None, or rows flagged infra) are left out and counted: the task
leaves TGC, and its whole scenario leaves SGC (whether it would have succeeded is unknown, and
judging the scenario on its other tasks alone would inflate SGC).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.metrics import group_success, sd_over_seeds


def scenario_id(task_id: str) -> str:
    """The scenario of an AppWorld task id: "50e1ac9_1" -> "50e1ac9" (":tag" dropped first)."""
    base = str(task_id).split(":")[0].strip()
    head, sep, number = base.rpartition("_")
    if not sep or not head or not number.isdigit():
        raise ValueError(f"not an AppWorld task id (scenario_<number>): {task_id!r}")
    return head


def task_goal_completion(successes: Iterable[bool]) -> float:
    """100 × mean success. Raises ValueError on no tasks."""
    flags = [bool(s) for s in successes]
    if not flags:
        raise ValueError("TGC of no tasks")
    return 100.0 * sum(flags) / len(flags)


def scenario_goal_completion(per_task: Mapping[str, bool]) -> float:
    """100 × share of scenarios whose tasks all succeed; `per_task` maps task id -> success."""
    if not per_task:
        raise ValueError("SGC of no scenarios")
    return 100.0 * group_success({0: dict(per_task)}, {t: scenario_id(t) for t in per_task}).per_seed[0]


@dataclass
class SeedMetrics:
    """TGC and SGC of one eval seed, with what was counted and what was left out."""

    tgc: float
    sgc: float
    n_tasks: int  # scored tasks (infra errors excluded)
    n_scenarios: int  # scenarios in SGC
    infra_errors: int
    scenarios_dropped: int  # scenarios left out of SGC because a task had an infra error


def seed_metrics(results: Mapping[str, bool | None]) -> SeedMetrics:
    """Metrics of one seed; `results` maps task id -> success, None for an infrastructure error."""
    scored = {t: bool(s) for t, s in results.items() if s is not None}
    infra = [t for t, s in results.items() if s is None]
    if not scored:
        raise ValueError(f"no scored tasks ({len(infra)} infra errors)")
    sgc = group_success({0: dict(results)}, {t: scenario_id(t) for t in results})  # the one SGC (harness.metrics)
    return SeedMetrics(
        tgc=task_goal_completion(scored.values()),
        sgc=100.0 * sgc.per_seed[0],
        n_tasks=len(scored),
        n_scenarios=sgc.complete[0],
        infra_errors=len(infra),
        scenarios_dropped=sgc.n_incomplete,
    )


@dataclass
class SeedSummary:
    """TGC/SGC per seed and their mean and sample standard deviation over seeds."""

    per_seed: dict[int, SeedMetrics] = field(default_factory=dict)

    @property
    def tgc_mean(self) -> float:
        return statistics.fmean(m.tgc for m in self.per_seed.values())

    @property
    def sgc_mean(self) -> float:
        return statistics.fmean(m.sgc for m in self.per_seed.values())

    @property
    def tgc_sd(self) -> float:  # NaN with one seed, as in the reports
        return sd_over_seeds(m.tgc for m in self.per_seed.values())

    @property
    def sgc_sd(self) -> float:
        return sd_over_seeds(m.sgc for m in self.per_seed.values())

    @property
    def infra_errors(self) -> int:
        return sum(m.infra_errors for m in self.per_seed.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "tgc": self.tgc_mean,
            "tgc_sd": self.tgc_sd,
            "sgc": self.sgc_mean,
            "sgc_sd": self.sgc_sd,
            "seeds": len(self.per_seed),
            "infra_errors": self.infra_errors,
            "per_seed": {s: vars(m) for s, m in sorted(self.per_seed.items())},
        }


def _is_infra(row: Mapping[str, Any]) -> bool:
    if str(row.get("end_reason", "")) == "infra_error":
        return True
    flag = row.get("infra_error", row.get("infra", False))
    return str(flag).strip().lower() in ("true", "1", "1.0")


def metrics_by_seed(rows: Iterable[Mapping[str, Any]]) -> SeedSummary:
    """TGC/SGC per seed from tidy results rows (task_id, seed, success, and infra_error or
    end_reason); one row per task × seed."""
    per_seed: dict[int, dict[str, bool | None]] = defaultdict(dict)
    for row in rows:
        seed, task_id = int(row["seed"]), str(row["task_id"])
        if task_id in per_seed[seed]:
            raise ValueError(f"task {task_id} appears twice in seed {seed}")
        per_seed[seed][task_id] = None if _is_infra(row) else bool(row["success"])
    if not per_seed:
        raise ValueError("no results rows")
    return SeedSummary({seed: seed_metrics(results) for seed, results in per_seed.items()})
