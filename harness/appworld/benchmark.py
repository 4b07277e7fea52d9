"""AppWorld as a `harness.benchmarks.Benchmark`: splits, episodes on a shared server pool, facts.

    bench = AppWorld(servers=2)              # data root from SGCD_APPWORLD_ROOT or the cache
    ids = bench.split_ids("dev")
    ep = bench.episode(ids[0])               # an AppWorldEpisode; the pool starts on first use
    bench.task_facts(ids[0])                 # {"scenario_id": "...", "difficulty": ...}
    bench.close()

`name` is "appworld-fixture" on a data folder built by harness.appworld.fixture, else
"appworld"; a real data folder must hold the four released splits. The harness never imports
the `appworld` package: it reads only the split lists and per-task metadata on disk.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from harness.appworld.install import (
    APPWORLD_VERSION,
    SPLITS,
    AppWorldSetupError,
    check_split_sizes,
    require_data,
    root_dir,
    venv_dir,
)
from harness.appworld.metrics import scenario_id
from harness.appworld.pool import CONTAINMENT, PoolConfig, ServerPool
from harness.benchmarks import Benchmark, EvalProtocol, SummaryMetric, register
from harness.records import Episode


@register
class AppWorld(Benchmark):
    """The AppWorld benchmark over one data root; owns a lazily started `ServerPool`."""

    name = "appworld"  # an instance over the test fixture names itself by its data (appworld-fixture)

    # max_steps caps messages (one agent turn plus its tool result per interaction, so 100
    # messages ≈ 50 interactions); model code errors are normal results, so max_errors counts
    # only malformed calls.
    protocol = EvalProtocol(max_steps=100, max_errors=50, max_tokens=2048, user=False)
    components = ("tests_passed",)
    default_split = "dev"

    def __init__(self, servers: int = 1, root: str | Path | None = None, keep_outputs: bool = False,
                 execution_timeout_s: int = 100, execution_grace_s: float = 30.0,
                 memory_mb: int = 4096, pool: ServerPool | None = None):  # fmt: skip
        """`pool`: run on an existing pool (its root wins) instead of starting one on first use."""
        if pool is not None:
            root = pool.root
        self.root = Path(root or root_dir()).resolve()
        self.data = require_data(self.root)
        problems = check_split_sizes(self.data)
        if problems:
            raise AppWorldSetupError(
                f"AppWorld data in {self.root} is not the released data: " + "; ".join(problems)
            )
        self.name = self.data.benchmark  # type: ignore[misc]
        self.pool_config = (
            pool.cfg
            if pool is not None
            else PoolConfig(
                size=servers,
                root=self.root,
                keep_outputs=keep_outputs,
                execution_timeout_s=execution_timeout_s,
                execution_grace_s=execution_grace_s,
                memory_mb=memory_mb,
            )
        )
        self._pool: ServerPool | None = pool
        self._owns_pool = pool is None
        self._lock = threading.Lock()

    @property
    def max_concurrent(self) -> int:  # type: ignore[override]
        """Episodes that can run at once: one per server of the pool."""
        return self.pool_config.size

    @classmethod
    def summary_metrics(cls, rows: list[dict[str, Any]]) -> list[SummaryMetric]:
        """TGC and SGC per eval seed, mean ± SD over seeds (harness/appworld/metrics.py)."""
        from harness.appworld.metrics import metrics_by_seed

        m = metrics_by_seed(rows)
        return [SummaryMetric("tgc", "TGC", m.tgc_mean, m.tgc_sd), SummaryMetric("sgc", "SGC", m.sgc_mean, m.sgc_sd)]

    @property
    def pool(self) -> ServerPool:
        with self._lock:
            if self._pool is None:
                self._pool = ServerPool(self.pool_config).start()
            return self._pool

    def split_ids(self, split: str) -> list[str]:
        if split not in self.data.splits:
            expected = "" if self.data.fixture else f" (AppWorld's splits: {', '.join(SPLITS)})"
            raise KeyError(f"no split {split!r} in {self.root / 'data' / 'datasets'}{expected}")
        return list(self.data.splits[split])

    def episode(self, task_id: str) -> Episode:
        from harness.appworld.episode import AppWorldEpisode

        return AppWorldEpisode(self.pool, task_id)

    def task_facts(self, task_id: str) -> dict[str, Any]:
        meta = self.root / "data" / "tasks" / task_id / "ground_truth" / "metadata.json"
        difficulty = None
        if meta.is_file():
            difficulty = json.loads(meta.read_text()).get("difficulty")
        return {"scenario_id": scenario_id(task_id), "difficulty": difficulty}

    def manifest(self) -> dict[str, Any]:
        return {
            "appworld_version": APPWORLD_VERSION,
            "data_version": f"appworld {APPWORLD_VERSION}" + (" (test fixture data)" if self.data.fixture else ""),
            "appworld_venv": str(
                venv_dir() if self.pool_config.venv is None else self.pool_config.venv
            ),
            "data_root": str(self.root),
            "fixture": self.data.fixture,
            "split_sizes": {k: len(v) for k, v in self.data.splits.items()},
            "servers": self.pool_config.size,
            "execution_timeout_s": self.pool_config.execution_timeout_s,
            "execution_grace_s": self.pool_config.execution_grace_s,
            "memory_mb": self.pool_config.memory_mb,
            "containment": CONTAINMENT,
        }

    def close(self) -> None:
        """Stop the pool this benchmark started (a pool passed in stays with its owner)."""
        with self._lock:
            if self._pool is not None and self._owns_pool:
                self._pool.close()
                self._pool = None
