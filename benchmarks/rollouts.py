"""Benchmark: the same wave of rollouts on both sampler backends (vLLM and transformers), side by side.

Workloads, each run on `hf` then `vllm` with the same seeds:
- toy: one wave of `--groups` groups x `--siblings` sibling episodes on toy level 0 at T = 1
  (the demo's caps), batched through the BatchGate as training samples them;
- tau3: the first agent turn of two τ³-airline test tasks (a ~5k-token prompt each), 4 seeds
  each, `--tau3-tokens` new tokens;
- decode: `--batch` rows of one short chat prompt, 128 new tokens each (pure decoding).
Reported: wall time, generated tokens/s, the vLLM engine's start-up separately, the ratio.
Run: `.venv/bin/python benchmarks/rollouts.py [--model local/PATH] [--dtype float32]`.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.benchmarks import get_benchmark  # noqa: E402
from harness.loop import LoopConfig  # noqa: E402
from harness.models import resolve_local_path  # noqa: E402
from harness.policy import Policy  # noqa: E402
from harness.records import Message  # noqa: E402
from sgcd.rollout import Sampling, run_groups  # noqa: E402


def toy_wave(policy: Policy, groups: int, siblings: int) -> int:
    bench = get_benchmark("toy", levels="0")
    tasks = [(t, 1000 + i) for i, t in enumerate(bench.split_ids("train")[:groups])]
    sampling, loop = Sampling(temperature=1.0, max_tokens=40), LoopConfig(max_steps=6, max_errors=1)
    done = run_groups(bench, tasks, siblings, policy, sampling, loop)
    return sum(r.output_tokens for g in done for r in g.results)


def tau3_first_turns(policy: Policy, new_tokens: int) -> int:
    bench = get_benchmark("tau3-airline")
    prompts = []
    for tid in bench.split_ids("test")[:2]:
        start = bench.episode(tid).reset()
        msgs = [*start.messages, Message(role="user", content="Hi, I need to change my reservation.")]
        prompts += [policy.render(start.system_prompt, start.tools, msgs)] * 4
    outs = policy.generate_batch(prompts, temperature=1.0, seeds=list(range(len(prompts))), max_new_tokens=new_tokens)
    return sum(len(o.completion_ids) for o in outs)


def decode(policy: Policy, batch: int) -> int:
    prompt = policy.render("You are a helpful assistant.", [], [Message(role="user", content="Write a long poem about the sea.")])
    outs = policy.generate_batch([prompt] * batch, temperature=1.0, seeds=list(range(batch)), max_new_tokens=128)
    return sum(len(o.completion_ids) for o in outs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="local/smollm2")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--groups", type=int, default=2)
    ap.add_argument("--siblings", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tau3-tokens", type=int, default=32)
    ap.add_argument("--skip", default="", help="comma-separated workloads to leave out (toy, tau3, decode)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    path = resolve_local_path(args.model.removeprefix("local/"))
    workloads = {"toy": lambda p: toy_wave(p, args.groups, args.siblings), "tau3": lambda p: tau3_first_turns(p, args.tau3_tokens),
                 "decode": lambda p: decode(p, args.batch)}  # fmt: skip
    workloads = {k: v for k, v in workloads.items() if k not in args.skip.split(",")}
    results: dict[tuple[str, str], tuple[float, int]] = {}
    starts = {}
    for backend in ("hf", "vllm"):
        t0 = time.perf_counter()
        policy = Policy.load(path, backend=backend, dtype=args.dtype)
        starts[backend] = time.perf_counter() - t0
        assert policy.backend == backend, policy.sampler.fallback
        for name, run in workloads.items():
            policy.clear_cache()
            t0 = time.perf_counter()
            tokens = run(policy)
            results[(backend, name)] = (time.perf_counter() - t0, tokens)
    table = Table(title=f"Sampler backends on {args.model} ({args.dtype}, 2 threads)")
    for col in ("workload", "hf s", "hf tok/s", "vllm s", "vllm tok/s", "speed-up (tok/s)"):
        table.add_column(col, justify="right")
    for name in workloads:
        (hs, ht), (vs, vt) = results[("hf", name)], results[("vllm", name)]
        table.add_row(name, f"{hs:.1f}", f"{ht / hs:.1f}", f"{vs:.1f}", f"{vt / vs:.1f}", f"{(vt / vs) / (ht / hs):.2f}x")
    Console().print(table)
    Console().print(f"load: hf {starts['hf']:.1f} s; vllm {starts['vllm']:.1f} s (engine start, not in the rows above); "
                    f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
