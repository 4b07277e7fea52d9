"""Benchmark: does oracle credit spread SGCD's token weights, and does it change what is learned?

The demo's finding to test: with SmolLM2's own guided credit, SGCD's weights stay within about
1 ± 0.04 and its learning curves equal GRPO's per seed. Here, from one warm start (the demo's:
SmolLM2-135M, 4 SFT updates on toy level 0), SGCD is trained with each credit provider on the
same budget and seed: `zero` (the GRPO-equivalent control), `guided/smollm2` (the demo's) and
`oracle` (right by construction, from the scripted solution). The first update of every
provider sees the identical rollout batch (same weights, same seeds), so its weight figures
compare credit alone. Printed per provider: token-weight SD (mean over updates, and the first
update's), min / max, share clipped, mean |d| (teacher − student log-prob), guided-vs-oracle
rank agreement (the audit's, oracle as audit provider), training success per update, and greedy
success on held-out level-0 tasks.

Run: `.venv/bin/python benchmarks/oracle_credit.py [--updates 4] [--seeds 0] [--eval-tasks 24]`
(about 5 min per provider and seed on 2 CPU cores; results also go to OUT/oracle_credit.json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.loop import LoopConfig  # noqa: E402
from sgcd.audit import summarize_audit  # noqa: E402
from sgcd.rollout import evaluate_policy  # noqa: E402
from sgcd.trainer import TrainConfig, Trainer  # noqa: E402

BENCH = dict(benchmark="toy", benchmark_args={"levels": "0"})
TRAIN = dict(groups_per_update=2, group_size=4, max_groups_sampled=4, dynamic_sampling=True, temperature=1.0,
             max_new_tokens=40, max_steps=6, max_errors=1, lr=1e-5, micro_batch_rows=4, threads=2)  # fmt: skip
PROVIDERS = {"zero": {"provider": "zero", "audit_provider": "oracle"},
             "guided/smollm2": {"provider": "guided/smollm2", "provider_max_tokens": 12, "audit_provider": "oracle"},
             "oracle": {"provider": "oracle"}}  # fmt: skip


def warm_start(root: Path) -> Path:
    cfg = TrainConfig(algo="sft", model="local/smollm2", updates=4, sft_examples_per_update=4, lr=5e-5,
                      micro_batch_rows=2, checkpoint_every=4, threads=2, **BENCH)  # fmt: skip
    tr = Trainer(cfg, root / "warm")
    if tr.start_step < cfg.updates:
        tr.run(progress=False)
    return root / "warm" / "train" / "checkpoints" / f"step-{cfg.updates}"


def held_out(policy, n: int) -> float:
    from harness.benchmarks import get_benchmark

    bench = get_benchmark("toy", levels="0")
    return evaluate_policy(bench, bench.split_ids("test")[:n], policy, LoopConfig(max_steps=6, max_errors=1),
                           max_new_tokens=40, temperature=0.0)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--updates", type=int, default=4)
    ap.add_argument("--seeds", type=str, default="0")
    ap.add_argument("--eval-tasks", type=int, default=24)
    ap.add_argument("--out", type=Path, default=Path("runs/bench-oracle-credit"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    console = Console()
    base = warm_start(args.out)
    from harness.policy import Policy

    results = {"base_held_out": held_out(Policy.load(base, threads=2), args.eval_tasks), "runs": []}
    console.print(f"warm start: {base}; greedy held-out success {results['base_held_out']:.3f} on {args.eval_tasks} tasks")
    for seed in [int(s) for s in args.seeds.split(",")]:
        for name, algo_cfg in PROVIDERS.items():
            t0 = time.perf_counter()
            cfg = TrainConfig(algo="sgcd", model=f"local/{base}", seed=seed, updates=args.updates,
                              checkpoint_every=args.updates, algo_config=algo_cfg, **BENCH, **TRAIN)  # fmt: skip
            tr = Trainer(cfg, args.out / f"sgcd-{name.replace('/', '-')}-s{seed}")
            rows = tr.run(progress=False)
            audit = summarize_audit(tr.dir) or {}
            first = next((r for r in rows if r.get("weight_std") is not None), {})
            res = {"provider": name, "seed": seed, "updates": len(rows),
                   "updates_with_groups": sum(1 for r in rows if not r.get("skipped")),
                   "weight_sd_first": first.get("weight_std"), "weight_sd_mean": audit.get("weight_sd_mean"),
                   "weight_min": audit.get("weight_min"), "weight_max": audit.get("weight_max"),
                   "clipped_first": first.get("weight_clipped_frac"), "d_abs_first": first.get("teacher_d_abs_mean"),
                   "agreement_with_oracle": audit.get("provider_rank_agreement"),
                   "agreement_steps": audit.get("agreement_steps"),
                   "train_success": [r.get("success_rate") for r in rows],
                   "held_out": held_out(tr.policy, args.eval_tasks), "seconds": time.perf_counter() - t0}  # fmt: skip
            results["runs"].append(res)
            console.print(json.dumps(res))
            (args.out / "oracle_credit.json").write_text(json.dumps(results, indent=2))

    def f(v, d=3):
        return "n/a" if v is None else f"{v:.{d}f}"

    table = Table(title=f"SGCD credit providers on toy level 0, SmolLM2 warm start, {args.updates} updates "
                        f"(base held-out {results['base_held_out']:.3f})")  # fmt: skip
    for col in ("provider", "seed", "weight SD (1st update / mean)", "weight range", "clipped (1st)", "|d| (1st)",
                "agreement with oracle (steps)", "train success per update", "held-out success"):  # fmt: skip
        table.add_column(col)
    for r in results["runs"]:
        table.add_row(r["provider"], str(r["seed"]), f"{f(r['weight_sd_first'])} / {f(r['weight_sd_mean'])}",
                      f"{f(r['weight_min'])} to {f(r['weight_max'])}", f(r["clipped_first"], 2), f(r["d_abs_first"]),
                      f"{f(r['agreement_with_oracle'])} ({r['agreement_steps'] or 0})" if r["provider"] != "oracle" else "—",
                      " ".join(f(x, 2) for x in r["train_success"]), f(r["held_out"]))  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    main()
