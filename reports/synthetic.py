"""Synthetic tidy results (clearly labelled as such) for tests, benchmarks and trying the reports.

Task difficulty is fixed by `task_seed`, so two tables made with the same task_seed describe the
same tasks; `effect` shifts every task's success logit, so it is a known true difference.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from harness.records import is_success


def tidy_table(
    model: str,
    *,
    rng: np.random.Generator | int,
    n_tasks: int = 40,
    seeds: Sequence[int] = (0, 1, 2),
    effect: float = 0.0,
    task_seed: int = 0,
    benchmark: str = "synthetic",
    split: str = "test",
    scenario_size: int | None = None,
    infra_rate: float = 0.0,
    binary: bool = True,
    temperature: float = 0.0,
) -> pd.DataFrame:
    """A tidy table of n_tasks × len(seeds) rows; success ~ Bernoulli(sigmoid(difficulty + effect)).

    `binary=False` makes reward a partial score in [0, 1]. success is the harness's one rule
    (harness.records.is_success: reward 1 up to 1e-6), as eval writes it.
    `scenario_size` groups consecutive tasks into scenarios (scenario_id empty otherwise).
    """
    rng = np.random.default_rng(rng)
    logits = np.random.default_rng(task_seed).normal(0.0, 1.5, n_tasks) + effect
    p = np.repeat(1.0 / (1.0 + np.exp(-logits)), len(seeds))  # (n_tasks · n_seeds,), task-major
    n = len(p)
    task = np.repeat(np.arange(n_tasks), len(seeds))
    if binary:
        reward = (rng.random(n) < p).astype(float)
    else:
        reward = np.clip(p + rng.normal(0.0, 0.15, n), 0.0, 1.0)
    success = np.array([is_success(r) for r in reward], dtype=bool)
    infra = rng.random(n) < infra_rate
    reward[infra], success[infra] = 0.0, False
    return pd.DataFrame(
        {
            "model": model,
            "benchmark": benchmark,
            "split": split,
            "task_id": [f"t{t:04d}" for t in task],
            "scenario_id": [f"s{t // scenario_size:03d}" for t in task] if scenario_size else "",
            "epoch": 1,
            "seed": np.tile(np.asarray(seeds, dtype=int), n_tasks),
            "temperature": temperature,
            "reward": reward,
            "success": success,
            "end_reason": np.where(infra, "infra_error", "user_stop"),
            "infra_error": infra,
            "turns": rng.integers(2, 30, n),
            "tool_calls": rng.integers(0, 20, n),
        }
    )
