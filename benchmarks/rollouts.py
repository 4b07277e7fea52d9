"""Benchmark: sampling one wave of rollout groups on the CPU, batched against one at a time.

A wave is `--groups` groups of `--siblings` sibling episodes on toy level 0 (temperature 1, the
demo's step caps). "batched" runs them together through the BatchGate (sgcd/rollout.py's
run_groups); "one at a time" runs the same episodes, same seeds, sequentially. Every row has its
own sampling stream, so both produce the same conversations (checked here).
Run: `.venv/bin/python benchmarks/rollouts.py [--model local/PATH]` (default: the embedded SmolLM2).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.benchmarks import get_benchmark  # noqa: E402
from harness.loop import LoopConfig, run_episode  # noqa: E402
from harness.models import resolve_local_path  # noqa: E402
from harness.policy import Policy  # noqa: E402
from sgcd.rollout import PolicyAgent, Sampling, run_groups  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="local/smollm2")
    ap.add_argument("--groups", type=int, default=2)
    ap.add_argument("--siblings", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(2)
    policy = Policy.load(resolve_local_path(args.model.removeprefix("local/")))
    bench = get_benchmark("toy", levels="0")
    tasks = [(t, 1000 + i) for i, t in enumerate(bench.split_ids("train")[: args.groups])]
    sampling, loop = Sampling(temperature=1.0, max_tokens=40), LoopConfig(max_steps=6, max_errors=1)

    policy.clear_cache()
    t0 = time.perf_counter()
    groups = run_groups(bench, tasks, args.siblings, policy, sampling, loop)
    batched = time.perf_counter() - t0
    together = [r for g in groups for r in g.results]

    policy.clear_cache()
    t0 = time.perf_counter()
    alone = []
    for task_id, seed in tasks:
        for i in range(args.siblings):
            agent = PolicyAgent(policy, sampling, seed * 100 + i)
            alone.append(asyncio.run(run_episode(lambda t=task_id: bench.episode(t), agent, None, loop)))
    sequential = time.perf_counter() - t0

    same = sum([m.content for m in a.messages] == [m.content for m in b.messages] for a, b in zip(together, alone, strict=True))
    tokens = sum(r.output_tokens for r in together)
    table = Table(title=f"One wave: {args.groups} groups x {args.siblings} siblings on toy level 0, {args.model}, 2 threads")
    for col in ("mode", "seconds", "episodes / s", "generated tokens / s"):
        table.add_column(col, justify="right")
    for mode, secs in (("one at a time", sequential), ("batched", batched)):
        table.add_row(mode, f"{secs:.1f}", f"{len(together) / secs:.2f}", f"{tokens / secs:.1f}")
    Console().print(table)
    Console().print(f"speed-up {sequential / batched:.2f}x; identical conversations: {same} of {len(together)}; "
                    f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
