"""The τ³-airline demo: score reference trajectories for every task and print pass@1 by split.

Gold trajectories must score 1 everywhere (a check of the evaluator against the task data);
the do-nothing trajectories give the null-agent floor that every real score is read against.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.airline.domain import load_domain
from harness.airline.evaluator import gold_state, score
from harness.airline.trajectories import gold_trajectory, null_trajectory


def run_demo(data_dir: Path | None = None, console: Console | None = None) -> dict[str, dict[str, float]]:
    console = console or Console()
    t0 = time.perf_counter()
    domain = load_domain(data_dir)
    domain.db  # noqa: B018 - load once, timed below
    t_load = time.perf_counter() - t0

    t1 = time.perf_counter()
    gold, null, writes = {}, {}, {}
    for task in domain.tasks.values():
        g = gold_trajectory(domain, task)
        n = null_trajectory(task)
        gold[task.id] = score(domain, task, g.messages, g.termination_reason).reward
        null[task.id] = score(domain, task, n.messages, n.termination_reason).reward
        writes[task.id] = bool(gold_state(domain, task).state.touched())
    t_score = time.perf_counter() - t1

    table = Table(title="τ³-airline: reference trajectories scored by the official rules")
    for col in ("split", "tasks", "gold pass@1", "null-agent floor", "write-required", "floor on write-required"):
        table.add_column(col, justify="right" if col != "split" else "left")
    summary = {}
    for split, ids in domain.splits.items():
        wr = [i for i in ids if writes[i]]
        row = {
            "tasks": len(ids),
            "gold": sum(gold[i] for i in ids) / len(ids),
            "null": sum(null[i] for i in ids) / len(ids),
            "write_required": len(wr),
            "null_write_required": sum(null[i] for i in wr) / len(wr) if wr else float("nan"),
        }
        summary[split] = row
        table.add_row(split, str(row["tasks"]), f"{row['gold']:.3f}", f"{row['null']:.3f}",
                      str(row["write_required"]), f"{row['null_write_required']:.3f}")  # fmt: skip
    console.print(table)
    n = 2 * len(domain.tasks)
    console.print(
        f"data: {domain.data_dir} (tool descriptions: {domain.tool_descriptions}); DB load {t_load:.2f} s; "
        f"{n} trajectories scored in {t_score:.2f} s ({1000 * t_score / n:.1f} ms each, gold states included)"
    )
    console.print("A score on τ³-airline means little unless it is read against the null-agent floor.")
    return summary
