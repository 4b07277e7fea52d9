"""Benchmark: τ³-airline scoring speed and memory (DB load, tool call, scored trajectory).

Targets (issue 2): <= 10 ms per scored trajectory (the official evaluator takes about 0.6 s
here), DB load <= 1 s. Run: `.venv/bin/python benchmarks/airline_eval.py`.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.airline import evaluator  # noqa: E402
from harness.airline.db import AirlineDB  # noqa: E402
from harness.airline.domain import load_domain  # noqa: E402
from harness.airline.evaluator import score  # noqa: E402
from harness.airline.tools import call_tool  # noqa: E402
from harness.airline.trajectories import gold_trajectory, null_trajectory  # noqa: E402


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    domain = load_domain()
    db_path = domain.data_dir / "db.json"

    tracemalloc.start()
    loads = timed(lambda: AirlineDB.from_file(db_path), 3)
    _, load_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    tasks = list(domain.tasks.values())
    trajs = [gold_trajectory(domain, t) for t in tasks] + [null_trajectory(t) for t in tasks]
    by_id = domain.tasks
    for t in trajs:  # warm: gold end states are computed once per task per process
        score(domain, by_id[t.task_id], t.messages, t.termination_reason)

    per_traj = []
    for _ in range(5):
        for t in trajs:
            t0 = time.perf_counter()
            score(domain, by_id[t.task_id], t.messages, t.termination_reason)
            per_traj.append(time.perf_counter() - t0)
    tracemalloc.start()  # memory in a separate pass: tracing slows the timed one
    for t in trajs:
        score(domain, by_id[t.task_id], t.messages, t.termination_reason)
    _, score_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    cold = []
    for t in trajs:
        evaluator._GOLD.pop(domain, None)  # forget cached gold end states
        t0 = time.perf_counter()
        score(domain, by_id[t.task_id], t.messages, t.termination_reason)
        cold.append(time.perf_counter() - t0)

    calls = [
        ("get_user_details", {"user_id": "mei_hernandez_8984"}),
        ("search_direct_flight", {"origin": "ORD", "destination": "PHL", "date": "2024-05-26"}),
        ("search_onestop_flight", {"origin": "JFK", "destination": "SEA", "date": "2024-05-20"}),
        ("update_reservation_baggages", {"reservation_id": "R9QDGB", "total_baggages": 1, "nonfree_baggages": 1, "payment_id": "credit_card_6082923"}),
    ]  # fmt: skip
    call_rows = []
    for name, args in calls:
        ts = timed(lambda n=name, a=args: call_tool(domain.db.new_state(), n, a), 200)
        call_rows.append((name, statistics.median(ts)))

    table = Table(title="τ³-airline evaluation benchmark (this machine)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_row("DB load (parse + normalize db.json), median of 3", f"{statistics.median(loads):.3f} s", "<= 1 s")
    table.add_row("peak Python memory during one DB load", f"{load_peak / 2**20:.1f} MiB", "")
    table.add_row(f"scored trajectory, warm (median of {len(per_traj)})", f"{1000 * statistics.median(per_traj):.2f} ms", "<= 10 ms")
    table.add_row("scored trajectory, warm (p99)", f"{1000 * sorted(per_traj)[int(0.99 * len(per_traj))]:.2f} ms", "")
    table.add_row(f"scored trajectory incl. its task's gold replay (median of {len(cold)})", f"{1000 * statistics.median(cold):.2f} ms", "")
    table.add_row(f"peak extra memory while scoring {len(trajs)} trajectories", f"{score_peak / 2**20:.2f} MiB", "")
    for name, t in call_rows:
        table.add_row(f"tool call {name} on a fresh state (median)", f"{1e6 * t:.0f} µs", "")
    table.add_row("process peak RSS", f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB", "")
    Console().print(table)


if __name__ == "__main__":
    main()
