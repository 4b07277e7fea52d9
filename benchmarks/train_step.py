"""Benchmark: one training update on the CPU — tokens per second and peak memory of GRPO, SGCD
(teacher pass included, credit LLM call excluded: `zero` provider) and SDPO on the same batch.

Models: a tiny random Llama (built here) and, with --smollm2, the embedded SmolLM2-135M.
Targets (issue 6): SGCD step time / GRPO step time <= 1.4. Threads are set explicitly (2).
With --processes: the same GRPO budget (rollouts and updates) trained by 1 and by 2 local
processes (sgcd/launch.py; the machine's cores shared out between them), seconds per update.
Run: `.venv/bin/python benchmarks/train_step.py [--smollm2] [--processes]`.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.tiny_model import build_tiny_model  # noqa: E402
from harness.toy.benchmark import scripted_corpus  # noqa: E402
from sgcd.trainer import TrainConfig, Trainer  # noqa: E402


def tiny_model(root: Path) -> Path:
    return build_tiny_model(root / "tiny", scripted_corpus(200), vocab_size=512, hidden=128, max_context=1024)


def measure(model: str, root: Path, repeats: int) -> list[tuple[str, float, float, int]]:
    base = dict(benchmark="toy", model=model, updates=1, groups_per_update=2, group_size=4, dynamic_sampling=False,
                max_new_tokens=32, max_steps=6, max_errors=2, micro_batch_rows=4, threads=2)  # fmt: skip
    grpo = Trainer(TrainConfig(algo="grpo", **base), root / "grpo")
    batch, _ = grpo.rollout_batch(1)  # one real batch of rollouts, reused by every algorithm
    tokens = int(batch.attention_mask.sum())
    rows = []
    algos = [("grpo", {}), ("sgcd", {"provider": "zero"}), ("sdpo", {"teacher": "live"})]
    for algo, algo_cfg in algos:
        tr = grpo if algo == "grpo" else Trainer(TrainConfig(algo=algo, algo_config=algo_cfg, **base), root / algo)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            tr.update(batch)
            times.append(time.perf_counter() - t0)
        best = min(times)
        rows.append((algo, best, tokens / best, batch.num_policy_tokens))
    return rows


def processes(model: str, root: Path) -> list[tuple[int, float, float, float]]:
    """(processes, wall seconds, mean seconds per update after the first, rollout+update tokens)
    for the same 3-update GRPO budget."""
    import json

    from sgcd.launch import run_processes, train_worker

    cfg = TrainConfig(algo="grpo", benchmark="toy", model=model, updates=3, groups_per_update=4, group_size=4,
                      dynamic_sampling=False, max_new_tokens=32, max_steps=6, max_errors=2, micro_batch_rows=4,
                      threads=2, checkpoint_every=3)  # fmt: skip
    out = []
    for n in (1, 2):
        t0 = time.perf_counter()
        run_processes(train_worker, (cfg, root / f"p{n}", False), n)
        wall = time.perf_counter() - t0
        rows = [json.loads(x) for x in (root / f"p{n}" / "train" / "metrics.jsonl").read_text().splitlines()]
        steady = [r["seconds"] for r in rows[1:]]
        out.append((n, wall, sum(steady) / len(steady), sum(r.get("policy_tokens", 0) for r in rows)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smollm2", action="store_true", help="also measure the embedded SmolLM2-135M")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--processes", action="store_true", help="also time 1 vs 2 training processes")
    args = ap.parse_args()
    torch.set_num_threads(2)
    table = Table(title="One training update on the CPU (2 threads), same batch for every algorithm")
    for col in ("model", "algorithm", "seconds / update", "tokens / s", "policy tokens", "vs GRPO"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = [("tiny (2x128)", f"local/{tiny_model(root)}")]
        if args.smollm2:
            models.append(("SmolLM2-135M (Q4_1 dequantized)", "local/smollm2"))
        for label, model in models:
            rows = measure(model, root / label.split()[0], args.repeats)
            grpo_t = rows[0][1]
            for algo, t, tps, ptok in rows:
                table.add_row(label, algo, f"{t:.2f}", f"{tps:.0f}", str(ptok), f"{t / grpo_t:.2f}x")
    Console().print(table)
    Console().print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; "
                    "target: SGCD / GRPO <= 1.4 (credit LLM call excluded)")  # fmt: skip
    if args.processes:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            rows = processes(f"local/{tiny_model(root)}", root)
        table = Table(title=f"The same GRPO budget (3 updates x 4 groups x 4 siblings, tiny model), 1 vs 2 "
                            f"processes on {__import__('os').cpu_count()} cores")  # fmt: skip
        for col in ("processes", "wall seconds (incl. start)", "seconds / update (steady)", "policy tokens", "speed-up"):
            table.add_column(col, justify="right")
        for n, wall, step, tok in rows:
            table.add_row(str(n), f"{wall:.1f}", f"{step:.2f}", f"{tok:.0f}", f"{rows[0][2] / step:.2f}x")
        Console().print(table)


if __name__ == "__main__":
    main()
