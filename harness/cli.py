"""The `sgcd-bench` command line: data, scoring, demo (and, from other modules, more commands)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from harness.data import DATASETS, DataError

console = Console(stderr=True)


@click.group()
def main() -> None:
    """sgcd-bench: evaluation-first harness for long-horizon tool-use agents."""


@main.group()
def data() -> None:
    """Fetch and check benchmark data (the project ships none)."""


@data.command("pull")
@click.argument("dataset", type=click.Choice(sorted(DATASETS)))
@click.option("--from", "source", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Copy from a local directory instead of downloading from upstream.")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Target directory (default: $SGCD_DATA_DIR/DATASET or the user cache).")
def data_pull(dataset: str, source: Path | None, dest: Path | None) -> None:
    """Put DATASET's files in the data directory, checking every sha256."""
    from harness.data import dataset_dir, pull

    target = dest or dataset_dir(dataset)
    try:
        hashes = pull(dataset, source=source, dest_dir=target)
    except DataError as e:
        raise click.ClickException(str(e)) from e
    for name, digest in hashes.items():
        console.print(f"[green]ok[/] {name}  sha256 {digest[:16]}…")
    console.print(f"{dataset} is in {target}")


@data.command("verify")
@click.argument("dataset", type=click.Choice(sorted(DATASETS)))
def data_verify(dataset: str) -> None:
    """Check that DATASET is present and intact."""
    from harness.data import dataset_dir, verify

    try:
        hashes = verify(dataset)
    except DataError as e:
        raise click.ClickException(str(e)) from e
    console.print(f"{dataset}: {len(hashes)} files intact in {dataset_dir(dataset)}")


@main.command("score")
@click.argument("benchmark", type=click.Choice(["tau3-airline"]))
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None)
def score_cmd(benchmark: str, input_path: Path, output_path: Path, data_dir: Path | None) -> None:
    """Score saved trajectories (JSONL) with the official rules; one output line per input line."""
    from harness.airline.score_file import score_file

    try:
        counts = score_file(input_path, output_path, data_dir=data_dir)
    except DataError as e:
        raise click.ClickException(str(e)) from e
    console.print(
        f"scored {counts['scored']} trajectories ({counts['success']} successes), "
        f"{counts['errors']} malformed lines -> {output_path}"
    )


@main.command("demo")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None)
def demo_cmd(data_dir: Path | None) -> None:
    """Score gold and do-nothing trajectories on every τ³-airline task; print pass@1 by split."""
    from harness.airline.demo import run_demo

    try:
        run_demo(data_dir)
    except DataError as e:
        raise click.ClickException(str(e)) from e


if __name__ == "__main__":
    main()
