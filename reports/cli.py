"""Click commands `compare` and `report` (registered on the `sgcd-bench` group by harness.cli).

pandas, scipy and matplotlib are imported inside the commands, so `sgcd-bench --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from reports import METRICS  # a light import: the package's one list of metrics

RUN = click.Path(exists=True, path_type=Path)


def _common(f):  # type: ignore[no-untyped-def]
    """Options shared by both commands."""
    options = [
        click.option(
            "--metric",
            type=click.Choice(METRICS),
            default="reward",
            show_default=True,
            help="Per-row outcome to analyse.",
        ),
        click.option(
            "--common-subset",
            is_flag=True,
            help="Runs that differ in tasks/seeds/settings: compare only the rows they share "
            "(the output says so) instead of failing.",
        ),
        click.option(
            "--n-resamples",
            type=click.IntRange(min=100),
            default=10_000,
            show_default=True,
            help="Bootstrap and permutation resamples.",
        ),
        click.option(
            "--seed", type=int, default=0, show_default=True, help="Seed of every resampling."
        ),
        click.option(
            "--data-dir",
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            default=None,
            help="The benchmark's data directory, for the null floor (default: the copy pulled by "
            "`sgcd-bench data pull`).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.command("compare")
@click.argument("run_a", type=RUN)
@click.argument("run_b", type=RUN)
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as one JSON object.")
@_common
def compare(
    run_a: Path,
    run_b: Path,
    as_json: bool,
    metric: str,
    common_subset: bool,
    n_resamples: int,
    seed: int,
    data_dir: Path | None,
) -> None:
    """Paired comparison of RUN_B against RUN_A (run directories or tidy CSV/parquet files)."""
    from rich.console import Console
    from rich.table import Table

    from harness.data import DataError
    from reports.build import Options, compare_paths
    from reports.protocol import ProtocolError
    from reports.tidy import TidyError
    from reports.verdict import comparison_verdict, fmt, fmt_p, notes_beside_verdict

    opts = Options(metric, common_subset, n_resamples, seed, data_dir)
    try:
        c, h = compare_paths(run_a, run_b, opts)
    except (TidyError, ProtocolError, ValueError, DataError) as e:
        raise click.ClickException(str(e)) from e
    if as_json:
        out = c.to_json()
        out["restricted"] = h.restricted
        out["protocol_notes"] = h.notes
        out["protocol_unknown"] = h.unknown
        out["verdict"] = comparison_verdict(c)
        click.echo(json.dumps(out, indent=2, allow_nan=False))
        return
    r = c.result
    table = Table(title=f"{c.b} − {c.a} ({c.metric}; {c.n_tasks} tasks × {c.n_seeds} eval seeds)")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    rows = [
        (f"mean {c.a} ± SD over seeds", f"{fmt(c.mean_a)} ± {fmt(c.sd_a)}"),
        (f"mean {c.b} ± SD over seeds", f"{fmt(c.mean_b)} ± {fmt(c.sd_b)}"),
        ("difference (b − a)", f"{r.diff:+.3f}"),
        ("95% CI (paired BCa bootstrap)", f"{fmt(r.ci.low)} to {fmt(r.ci.high)}"),
        ("p, paired t", fmt_p(r.p_ttest)),
        ("p, Wilcoxon (zero_method=pratt)", fmt_p(r.p_wilcoxon)),
        ("p, sign-flip permutation", fmt_p(r.p_permutation)),
        ("p, exact McNemar", fmt_p(r.p_mcnemar) if r.p_mcnemar is not None else "n/a"),
        ("effect size d_z", fmt(r.effect_size, 2)),
        ("MDE (α=0.05, 80% power)", fmt(r.mde)),
        ("infra-error pairs dropped", str(c.dropped_infra)),
        (
            "null-agent floor",
            fmt(c.floor.value) if c.floor and c.floor.value is not None else "none",
        ),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console = Console()
    console.print(table)
    notes = h.notes + notes_beside_verdict(c)  # the verdict below says the rest
    if c.floor and c.floor.value is None:  # the reason, said once (it may name the floor itself)
        note = c.floor.note
        notes.append(note if "null-agent floor" in note else f"no null-agent floor: {note}")
    for note in notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(comparison_verdict(c))


@click.command("report")
@click.argument("runs", nargs=-1, required=True, type=RUN)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Markdown file to write; plots go to OUT_STEM_plots/ beside it.",
)
@click.option("--no-plots", is_flag=True, help="Write the markdown without PNG plots.")
@click.option(
    "--train-log",
    "train_logs",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Training log (metrics.jsonl) for learning curves; runs/NAME/train/metrics.jsonl is found "
    "automatically.",
)
@click.option(
    "--published",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help='JSON {label: {"value": x, "source": "citation"}}, shown only in a labelled '
    '"published" column.',
)
@click.option(
    "--prices",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help='TOML of USD per million tokens by model name (["MODEL"] input = 0.5 output = 1.5): '
    "adds cost, cost per episode and cost per success to the tokens table.",
)
@_common
def report(
    runs: tuple[Path, ...],
    out: Path,
    no_plots: bool,
    train_logs: tuple[Path, ...],
    published: Path | None,
    prices: Path | None,
    metric: str,
    common_subset: bool,
    n_resamples: int,
    seed: int,
    data_dir: Path | None,
) -> None:
    """Markdown report over RUNS: per-run scores, paired comparisons, plots.

    Each run is compared with the first. Runs whose manifest (or a `method` column) names a method,
    with several runs per method, are instead summarised per method over training seeds (IQM,
    probability of improvement) and compared pairwise between matched `train_seed`s.
    """
    from rich.console import Console

    from harness.data import DataError
    from reports.build import Options, build_report
    from reports.protocol import ProtocolError
    from reports.tidy import TidyError

    opts = Options(metric, common_subset, n_resamples, seed, data_dir, prices)
    try:
        rep = build_report(
            list(runs),
            out,
            opts,
            plots=not no_plots,
            train_logs=list(train_logs),
            published=published,
        )
    except (TidyError, ProtocolError, ValueError, DataError) as e:
        raise click.ClickException(str(e)) from e
    console = Console(stderr=True)
    console.print(
        f"wrote {out} ({len(rep.summaries)} runs, {len(rep.comparisons)} comparisons, "
        f"{len(rep.plots)} plots)"
    )
