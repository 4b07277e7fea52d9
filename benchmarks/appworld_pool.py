"""Benchmark: AppWorld server pool on the fixture: episodes per minute with 1 and 2 servers,
server start and world-initialisation times, memory per server.

Builds the synthetic fixture (harness.appworld.fixture; needs `sgcd-bench appworld setup`) in
a temporary folder unless --root names one, then for each pool size runs scripted gold
episodes through the real agent loop, one thread per server.
Run: `.venv/bin/python benchmarks/appworld_pool.py [--episodes 36] [--root DIR]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.appworld.benchmark import AppWorld  # noqa: E402
from harness.appworld.fixture import FIXTURE_TASKS, build_fixture  # noqa: E402
from harness.appworld.install import require_data  # noqa: E402
from harness.appworld.pool import PoolConfig, ServerPool  # noqa: E402
from harness.loop import LoopConfig, Reply, run_episode  # noqa: E402
from harness.records import Message, ToolCall  # noqa: E402


def gold_agent(code: str):
    async def agent(system_prompt, tools, messages):
        if not any(m.role == "assistant" for m in messages):
            call = ToolCall("c0", "execute_code", {"code": code})
            return Reply(Message(role="assistant", content=None, tool_calls=[call]))
        return Reply(Message(role="assistant", content="Done."))

    return agent


def run_pool(root: Path, size: int, episodes: int) -> dict:
    t0 = time.perf_counter()
    pool = ServerPool(PoolConfig(size=size, root=root)).start()
    pool_up = time.perf_counter() - t0
    bench = AppWorld(pool=pool)
    jobs = [FIXTURE_TASKS[i % len(FIXTURE_TASKS)] for i in range(episodes)]
    lock = threading.Lock()
    successes: list[bool] = []
    inits: list[float] = []

    def worker() -> None:
        while True:
            with lock:
                if not jobs:
                    return
                task = jobs.pop()

            def make(task_id=task.task_id):
                ep = bench.episode(task_id)
                reset = ep.reset

                def timed_reset():
                    t = time.perf_counter()
                    start = reset()
                    inits.append(time.perf_counter() - t)
                    return start

                ep.reset = timed_reset
                return ep

            res = asyncio.run(
                run_episode(make, gold_agent(task.solution), None, LoopConfig(max_steps=10))
            )
            successes.append(res.outcome.success)

    try:
        t = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(size)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t
        memory = pool.memory_bytes()
        return {
            "size": size,
            "pool_up_s": pool_up,
            "start_s": [s.times.start_s for s in pool.servers],
            "first_init_s": [s.times.warm_init_s for s in pool.servers],
            "init_s": statistics.median(inits),
            "episodes": len(successes),
            "success": sum(successes),
            "per_min": 60 * len(successes) / wall,
            "episode_s": wall * size / len(successes),
            "rss_mib": [m / 2**20 for m in memory],
            "restarts": pool.restarts,
        }
    finally:
        pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=36)
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="an existing fixture root (else built in a temp dir)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sgcd-appworld-bench-") as tmp:
        if args.root is None:
            info, build_s = build_fixture(Path(tmp))
            root = Path(tmp)
        else:
            info, build_s, root = require_data(args.root), float("nan"), args.root
        if not info.fixture:
            raise SystemExit(
                f"{root} is not a fixture root; this benchmark runs on the fixture only"
            )
        rows = [run_pool(root, size, args.episodes) for size in (1, 2)]

    table = Table(
        title=f"AppWorld server pool on the fixture ({os.cpu_count()} cores, scripted gold agent)"
    )
    table.add_column("measure")
    for r in rows:
        table.add_column(f"{r['size']} server(s)", justify="right")

    def add(name: str, fmt) -> None:
        table.add_row(name, *[fmt(r) for r in rows])

    def spread(values: list[float], unit: str = "s", digits: int = 2) -> str:
        return " / ".join(f"{v:.{digits}f}" for v in values) + f" {unit}"

    add("episodes per minute", lambda r: f"{r['per_min']:.1f}")
    add("episodes run (successes)", lambda r: f"{r['episodes']} ({r['success']})")
    add("wall time per episode per server", lambda r: f"{r['episode_s']:.2f} s")
    add("server start: spawn to HTTP ready (each)", lambda r: spread(r["start_s"]))
    add("first world init, prewarm (each)", lambda r: spread(r["first_init_s"]))
    add("later world init (median over episodes)", lambda r: f"{r['init_s']:.3f} s")
    add("pool start incl. prewarm", lambda r: f"{r['pool_up_s']:.1f} s")
    add("server RSS after the run (each)", lambda r: spread(r["rss_mib"], "MiB", 0))
    add("server restarts", lambda r: str(r["restarts"]))
    table.add_row("fixture build", f"{build_s:.1f} s", "")
    Console().print(table)


if __name__ == "__main__":
    main()
