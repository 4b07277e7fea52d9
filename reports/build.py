"""Run the whole pipeline: load runs, check the protocol, compute, draw plots, write markdown."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from rich.progress import Progress

from reports import analysis
from reports.markdown import Published, Report, relative, render
from reports.protocol import Harmonized, harmonize
from reports.sections import load_prices, sections
from reports.tidy import Run, TidyError, load_run, read_train_log


@dataclass(frozen=True)
class Options:
    """Settings shared by `compare` and `report`."""

    metric: str = "reward"
    common_subset: bool = False
    n_resamples: int = 10_000
    seed: int = 0
    data_dir: Path | None = None
    prices: Path | None = None  # TOML of USD per million input/output tokens by model (reports/sections.py)


def load_runs(paths: list[Path], common_subset: bool) -> Harmonized:
    """Load each run (directory or tidy file), give duplicate names a suffix, check the protocol."""
    runs: list[Run] = [load_run(p) for p in paths]
    seen: dict[str, int] = {}
    for run in runs:
        seen[run.name] = seen.get(run.name, 0) + 1
        if seen[run.name] > 1:
            run.name = f"{run.name}#{seen[run.name]}"
    return harmonize(runs, common_subset=common_subset)


def compare_paths(
    path_a: Path, path_b: Path, opts: Options
) -> tuple[analysis.Comparison, Harmonized]:
    """Paired comparison of run B against run A, with the null floor over the compared tasks."""
    h = load_runs([path_a, path_b], opts.common_subset)
    a, b = h.runs
    c = analysis.compare_runs(a, b, opts.metric, rng=opts.seed, n_resamples=opts.n_resamples)
    c.floor = analysis.run_floor(a, [str(t) for t in c.per_task["task_id"].tolist()], opts.data_dir)
    return c, h


def load_published(path: Path) -> dict[str, Published]:
    """JSON {label: {"value": number, "source": "citation"}}; label = run name, model or method."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise TidyError(f"could not read published numbers from {path}: {e}") from e
    out = {}
    for label, entry in raw.items() if isinstance(raw, dict) else []:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("source"), str)
            or not entry["source"].strip()
        ):
            raise TidyError(
                f"{path}: published entry {label!r} needs a numeric 'value' and a 'source'"
            )
        try:
            value = float(entry["value"])
        except (KeyError, TypeError, ValueError) as e:
            raise TidyError(f"{path}: published entry {label!r} needs a numeric 'value'") from e
        if not math.isfinite(value):
            raise TidyError(f"{path}: published entry {label!r} has a non-finite value")
        out[str(label)] = Published(value, entry["source"].strip())
    if not out:
        raise TidyError(f"{path}: expected a JSON object of {{label: {{value, source}}}}")
    return out


def _log_label(path: Path) -> str:
    """runs/NAME/train/metrics.jsonl -> NAME; any other log -> its path."""
    path = Path(path)
    return path.parent.parent.name if path.parent.name == "train" else str(path)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "run"


def build_report(
    paths: list[Path],
    out: Path,
    opts: Options,
    *,
    plots: bool = True,
    train_logs: list[Path] | None = None,
    published: Path | None = None,
) -> Report:
    """Compute everything for `paths`; write markdown to `out`, plots beside it."""
    h = load_runs(paths, opts.common_subset)
    pub = load_published(published) if published else {}
    prices = load_prices(opts.prices) if opts.prices else None
    log_paths = {
        Path(p).resolve(): Path(p)
        for p in [*(train_logs or []), *(lp for r in h.runs for lp in r.train_logs)]
    }
    logs = {p: read_train_log(p) for p in log_paths.values()}
    with Progress(transient=True) as progress:
        job = progress.add_task("summarising runs", total=len(h.runs))
        summaries = []
        for i, run in enumerate(h.runs):
            summaries.append(
                analysis.summarize_run(
                    run,
                    opts.metric,
                    rng=opts.seed + i,
                    n_resamples=opts.n_resamples,
                    data_dir=opts.data_dir,
                )
            )
            progress.advance(job)
        pairs, notes = analysis.comparison_pairs(h.runs, summaries)
        job = progress.add_task("paired comparisons", total=len(pairs))
        comparisons = []
        for a, b in pairs:
            comparisons.append(
                analysis.compare_runs(
                    a, b, opts.metric, rng=opts.seed, n_resamples=opts.n_resamples
                )
            )
            progress.advance(job)
    analysis.apply_holm(comparisons)
    training = analysis.training_seeds(summaries, rng=opts.seed, n_resamples=opts.n_resamples)
    report = Report(
        runs=h.runs,
        summaries=summaries,
        comparisons=comparisons,
        harmonized=h,
        metric=opts.metric,
        n_resamples=opts.n_resamples,
        seed=opts.seed,
        training=training,
        published=pub,
        notes=notes,
        sections=sections(h.runs, pairs, prices, opts.prices, opts.seed),
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if plots:
        from reports import plots as draw

        folder = out.parent / f"{out.stem}_plots"
        folder.mkdir(exist_ok=True)
        for c in comparisons:
            path = draw.paired_scatter(c, folder / f"scatter_{_slug(c.b)}_vs_{_slug(c.a)}.png")
            report.plots[f"scatter:{c.a}:{c.b}"] = relative(path, out.parent)
        report.plots["forest"] = relative(
            draw.forest(summaries, comparisons, folder / "forest.png"), out.parent
        )
        if logs:
            names = {_log_label(p): log for p, log in logs.items()}
            report.plots["learning"] = relative(
                draw.learning_curves(names, folder / "learning_curves.png"), out.parent
            )
    elif logs:
        report.notes.append(
            f"{len(logs)} training log(s) given; learning curves not drawn (--no-plots)"
        )
    text = render(report)
    audits = _credit_audits(log_paths.values())
    if audits:
        from reports.credit_audit import audit_markdown

        text += "\n" + audit_markdown(audits)
    out.write_text(text)
    return report


def _credit_audits(train_logs) -> dict:
    """SGCD runs write credit/ beside metrics.jsonl: their audits, by run label."""
    from reports.credit_audit import summarize_audit

    audits = {}
    for path in train_logs:
        train_dir = Path(path).parent
        if (train_dir / "credit").is_dir():
            audits[_log_label(Path(path))] = summarize_audit(train_dir)
    return audits
