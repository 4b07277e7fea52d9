"""Timing of the paired statistics: BCa bootstrap with 10,000 resamples over 1,000 tasks × 5 seeds.

Target: the paired bootstrap (per-task aggregation of the 5,000 row pairs included) under 1 s.
Run: .venv/bin/python benchmarks/stats.py [--tasks 1000] [--seeds 5] [--resamples 10000]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1])
)  # run from a checkout without installing

from reports import stats  # noqa: E402
from reports.analysis import compare_runs  # noqa: E402
from reports.synthetic import tidy_table  # noqa: E402
from reports.tidy import Run, normalize  # noqa: E402

TARGET_S = 1.0


def _median_time(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up (imports, caches)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@click.command()
@click.option("--tasks", default=1000, show_default=True)
@click.option("--seeds", default=5, show_default=True)
@click.option("--resamples", default=10_000, show_default=True)
@click.option("--repeat", default=3, show_default=True, help="Timed repetitions (median reported).")
def main(tasks: int, seeds: int, resamples: int, repeat: int) -> None:
    """Print a table of timings; exit 1 if the paired bootstrap misses its target."""
    seed_list = tuple(range(seeds))

    def run(model: str, rng: int, effect: float, scenario_size: int | None = None) -> Run:
        df = tidy_table(
            model,
            rng=rng,
            n_tasks=tasks,
            seeds=seed_list,
            effect=effect,
            scenario_size=scenario_size,
        )
        return Run(model, Path(model), normalize(df, Path(model)))

    a, b = run("a", 0, 0.0), run("b", 1, 0.1)
    ca, cb = run("a", 0, 0.0, 4), run("b", 1, 0.1, 4)

    def aggregate() -> tuple:
        ma = a.df.pivot(index="task_id", columns="rep", values="reward").mean(axis=1)
        mb = b.df.pivot(index="task_id", columns="rep", values="reward").mean(axis=1)
        return ma.to_numpy(), mb.to_numpy()

    def paired_bootstrap() -> stats.Interval:
        xa, xb = aggregate()
        return stats.bootstrap_interval(xb - xa, rng=0, n_resamples=resamples)

    xa, xb = aggregate()
    rows = [
        ("per-task means of both runs (pivot, mean over seeds)", aggregate, None),
        ("paired BCa bootstrap incl. aggregation", paired_bootstrap, TARGET_S),
        (
            "sign-flip permutation test",
            lambda: stats.sign_flip_test(xb - xa, rng=0, n_resamples=resamples),
            None,
        ),
        (
            "compare_runs: every paired statistic",
            lambda: compare_runs(a, b, rng=0, n_resamples=resamples),
            None,
        ),
        (
            "compare_runs, clustered (250 scenarios)",
            lambda: compare_runs(ca, cb, rng=0, n_resamples=resamples),
            None,
        ),
    ]
    table = Table(
        title=f"paired statistics: {tasks} tasks × {seeds} seeds, {resamples:,} resamples "
        f"(median of {repeat})"
    )
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("target", justify="right")
    failed = False
    for name, fn, target in rows:
        t = _median_time(fn, repeat)
        verdict = (
            ""
            if target is None
            else (
                f"< {target:g} s [green]ok[/]" if t < target else f"< {target:g} s [red]missed[/]"
            )
        )
        failed |= target is not None and t >= target
        table.add_row(name, f"{t:.3f}", verdict)
    Console().print(table)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
