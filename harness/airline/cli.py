"""τ³-airline's own commands: `sgcd-bench score tau3-airline` and `sgcd-bench demo`."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from harness.data import DataError

console = Console(stderr=True)


@click.command("score")
@click.argument("benchmark", type=click.Choice(["tau3-airline"]))
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None)
def score_cmd(benchmark: str, input_path: Path, output_path: Path, data_dir: Path | None) -> None:
    """Score saved trajectories (JSONL) with the official rules; one output line per input line."""
    from harness.airline.score_file import score_file

    try:
        counts = score_file(input_path, output_path, data_dir=data_dir)
    except (DataError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    console.print(
        f"scored {counts['scored']} trajectories ({counts['success']} successes), "
        f"{counts['errors']} malformed lines -> {output_path}"
    )


@click.command("demo")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None)
def demo_cmd(data_dir: Path | None) -> None:
    """Score gold and do-nothing trajectories on every τ³-airline task; print pass@1 by split."""
    from harness.airline.demo import run_demo

    try:
        run_demo(data_dir)
    except DataError as e:
        raise click.ClickException(str(e)) from e


COMMANDS = [score_cmd, demo_cmd]
