"""Benchmark: does oracle credit spread SGCD's token weights, and does it change what is learned?

The demo's finding to test: with SmolLM2's own guided credit, SGCD's token weights stay within
about 1 ± 0.04 and its learning curves equal GRPO's per seed. From one warm start (the demo's:
SmolLM2-135M, 4 SFT updates on toy level 0), one batch of rollouts with mixed sibling groups is
sampled (the demo's sampling settings), and one SGCD update is made on that same batch with each
credit provider, each from the same weights: `zero` (the GRPO-equivalent control),
`guided/smollm2` (the demo's provider) and `oracle` (right by construction, from the scripted
solution). Same batch, same weights: the figures differ by credit alone. Printed per provider:
token-weight SD, min / max and share clipped, mean |d| (teacher − student log-prob on the
student's tokens), the guided provider's rank agreement with the oracle on the same steps (the
credit audit's, oracle as audit provider), and greedy success on held-out level-0 tasks after the
update (the base's beside it). One update is a small step: read held-out changes against the
base and each other, not as a learning curve.

Run: `.venv/bin/python benchmarks/oracle_credit.py [--eval-tasks 12] [--out runs/bench-oracle-credit]`
(the warm start is reused when OUT already holds it; results also go to OUT/oracle_credit.json).

Measured on a shared 2-core CPU (one batch: 2 mixed groups, 8 trajectories, 2 successes, 413
policy tokens; base held-out 0.667 on 12 tasks):
    provider         weight SD  min / max     clipped  mean |d|  agreement w/ oracle  held-out after
    zero             0.000      1.00 / 1.00   0.00     0.000     —                    0.583
    guided/smollm2   0.048      0.50 / 1.32   0.00     0.012     0.389 (15 steps)     0.583
    oracle           0.172      0.50 / 2.00   0.09     0.031     —                    0.583
Oracle credit spreads the weights 3.6x as far as SmolLM2's guided credit (whose summary echoes
the system prompt) and moves the teacher 2.6x as much; one update changes no held-out verdict
under any provider, so what is learned needs more updates to tell apart.
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
from reports.credit_audit import summarize_audit  # noqa: E402
from sgcd.rollout import evaluate_policy  # noqa: E402
from sgcd.trainer import TrainConfig, Trainer  # noqa: E402

BENCH = dict(benchmark="toy", benchmark_args={"levels": "0"})
TRAIN = dict(updates=1, groups_per_update=2, group_size=4, max_groups_sampled=4, dynamic_sampling=True,
             temperature=1.0, max_new_tokens=40, max_steps=6, max_errors=1, lr=1e-5, micro_batch_rows=4,
             threads=2, checkpoint_every=1000)  # fmt: skip
PROVIDERS = {"zero": {"provider": "zero"},
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


def trainer(base: Path, root: Path, name: str, algo_cfg: dict) -> Trainer:
    cfg = TrainConfig(algo="sgcd", model=f"local/{base}", algo_config=algo_cfg, **BENCH, **TRAIN)
    return Trainer(cfg, root / f"sgcd-{name.replace('/', '-')}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--eval-tasks", type=int, default=12)
    ap.add_argument("--out", type=Path, default=Path("runs/bench-oracle-credit"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    console = Console()
    base = warm_start(args.out)
    first = trainer(base, args.out, "sampler", {"provider": "zero"})
    results: dict = {"base_held_out": held_out(first.policy, args.eval_tasks), "eval_tasks": args.eval_tasks}
    console.print(f"warm start {base}: greedy held-out success {results['base_held_out']:.3f}")
    batch = None
    for step in range(1, 6):  # the first wave with a mixed group (dynamic sampling may keep none)
        batch, collected = first.rollout_batch(step)
        if batch is not None:
            break
    if batch is None:
        raise SystemExit("no mixed sibling group in 5 waves: nothing for any credit to weigh")
    results["batch"] = {"wave": step, "groups": len(collected.kept), "trajectories": len(batch.rewards),
                        "successes": int(batch.success.sum()), "policy_tokens": int(batch.num_policy_tokens)}  # fmt: skip
    console.print(f"batch: {json.dumps(results['batch'])}")
    results["runs"] = []
    for name, algo_cfg in PROVIDERS.items():
        t0 = time.perf_counter()
        tr = trainer(base, args.out, name, algo_cfg)
        stats = tr.update(batch)
        w = stats  # the step's token-weight statistics (SGCD's write_audit metrics)
        audit = summarize_audit(tr.dir) or {}
        res = {"provider": name, "weight_sd": w["weight_std"], "weight_min": w["weight_min"],
               "weight_max": w["weight_max"], "clipped": w["weight_clipped_frac"],
               "d_abs": stats.get("teacher_d_abs_mean"), "credit_parsed": stats.get("credit_parsed"),
               "agreement_with_oracle": audit.get("provider_rank_agreement"),
               "agreement_steps": audit.get("agreement_steps"),
               "held_out": held_out(tr.policy, args.eval_tasks), "seconds": time.perf_counter() - t0}  # fmt: skip
        results["runs"].append(res)
        console.print(json.dumps(res))
        (args.out / "oracle_credit.json").write_text(json.dumps(results, indent=2))

    def f(v, d=3):
        return "n/a" if v is None else f"{v:.{d}f}"

    b = results["batch"]
    table = Table(title=f"One SGCD update per credit provider on the same batch ({b['groups']} mixed groups, "
                        f"{b['trajectories']} trajectories, {b['successes']} successes) from the same SmolLM2 "
                        f"warm start (held-out {results['base_held_out']:.3f} on {args.eval_tasks} level-0 tasks)")  # fmt: skip
    for col in ("credit provider", "weight SD", "weight min / max", "clipped", "mean |d|",
                "agreement with oracle (steps)", "held-out success after"):  # fmt: skip
        table.add_column(col)
    for r in results["runs"]:
        agree = f"{f(r['agreement_with_oracle'])} ({r['agreement_steps'] or 0})" if r["agreement_steps"] else "—"
        table.add_row(r["provider"], f(r["weight_sd"]), f"{f(r['weight_min'])} / {f(r['weight_max'])}",
                      f(r["clipped"], 2), f(r["d_abs"]), agree, f(r["held_out"]))  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    main()
