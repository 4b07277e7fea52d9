"""Render a computed report (runs, summaries, comparisons, training seeds, plots) as markdown."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from reports.analysis import Comparison, Improvement, MethodSeeds, RunSummary
from reports.protocol import ROW_FIELDS, RUN_FIELDS, Harmonized
from reports.stats import WILCOXON_ZERO_METHOD
from reports.tidy import Run
from reports.verdict import (
    comparison_verdict,
    fmt,
    fmt_p,
    improvement_verdict,
    notes_beside_verdict,
    run_verdict,
)


@dataclass(frozen=True)
class Published:
    """A number from a paper: shown only in the labelled "published" column, with its source."""

    value: float
    source: str


@dataclass
class Report:
    """Everything the markdown shows; every number but `published` was computed from runs."""

    runs: list[Run]
    summaries: list[RunSummary]
    comparisons: list[Comparison]
    harmonized: Harmonized
    metric: str
    n_resamples: int
    seed: int
    training: tuple[list[MethodSeeds], list[Improvement]] | None = None
    published: dict[str, Published] = field(default_factory=dict)
    plots: dict[str, str] = field(default_factory=dict)  # key -> path relative to the markdown file
    notes: list[str] = field(default_factory=list)
    sections: dict[str, list[str]] = field(default_factory=dict)  # reports/sections.py, by name


def table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub markdown table; `|` inside cells is escaped."""

    def cells(row: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |"

    return "\n".join([cells(header), "|" + "---|" * len(header), *(cells(r) for r in rows)])


def _ci(low: float, high: float) -> str:
    return f"{fmt(low)} to {fmt(high)}"


def _pm(mean: float, sd: float) -> str:
    return f"{fmt(mean)} ± {fmt(sd)}"


def published_for(s: RunSummary, published: dict[str, Published]) -> Published | None:
    """The cited number for a run, matched by run name, then model, then method."""
    for key in (s.name, s.model, s.method):
        if key is not None and key in published:
            return published[key]
    return None


def _protocol(r: Report) -> list[str]:
    run0 = r.harmonized.runs[0]
    lines = ["## Protocol", ""]
    reps = sorted(
        set(run0.df["rep"]),
        key=lambda r: [int(x) if x.lstrip("-").isdigit() else x for x in r.split("/")],
    )
    shared = [f"{len(set(run0.df['task_id']))} tasks", f"eval seeds {', '.join(reps)}"]
    for key in ROW_FIELDS:
        value = run0.label(key)
        if value is not None and key not in r.harmonized.unknown:
            shared.append(f"{key} {value}")
    for key in RUN_FIELDS:
        if key not in r.harmonized.unknown and run0.manifest.get(key) is not None:
            shared.append(f"{key} {run0.manifest[key]}")
    if "data_hashes" not in r.harmonized.unknown and isinstance(
        run0.manifest.get("data_hashes"), dict
    ):
        shared.append("data hashes match")
    lines.append(
        ("Every run shares: " if len(r.runs) > 1 else "Protocol: ") + "; ".join(shared) + "."
    )
    if r.harmonized.unknown and len(r.runs) > 1:
        lines.append(
            f"Not recorded for every run, so not checked: {', '.join(r.harmonized.unknown)}."
        )
    lines += [f"**{n}**" for n in r.harmonized.notes]
    return lines + [""]


def _runs_section(r: Report) -> list[str]:
    ks = sorted({k for s in r.summaries for k in s.pass_k})
    has_group = any(s.group is not None for s in r.summaries)
    pubs = {s.name: published_for(s, r.published) for s in r.summaries}
    header = [
        "run",
        "model",
        "tasks × seeds",
        "mean ± SD over seeds",
        "SE (clustered)",
        "95% CI (t)",
        "95% CI (BCa bootstrap)",
        *[f"pass^{k}" for k in ks],
    ]
    header += ["SGC ± SD"] if has_group else []
    header += ["null floor"]
    header += ["published (cited, not measured here)"] if r.published else []
    rows = []
    for s in r.summaries:
        row = [
            s.name,
            s.model,
            f"{s.n_tasks} × {s.n_seeds}",
            _pm(s.mean, s.sd_seeds),
            f"{fmt(s.se)} (by {s.cluster_by})",
            _ci(s.ci_t.low, s.ci_t.high),
            _ci(s.ci_boot.low, s.ci_boot.high),
            *[fmt(s.pass_k.get(k)) for k in ks],
        ]
        if has_group:
            row.append(_pm(s.group.mean, s.group.sd_seeds) if s.group else "—")
        row.append(fmt(s.floor.value) if s.floor.value is not None else "none")
        if r.published:
            pub = pubs[s.name]
            row.append(f"{fmt(pub.value)} [published]" if pub else "—")
        rows.append(row)
    lines = [
        "## Results per run",
        "",
        f"Mean {r.metric} per task (each task's eval seeds averaged first), then over tasks. "
        "SD is over eval seeds (each seed's mean over tasks); SE and the t interval are "
        "clustered by "
        "task, or by scenario where scenario_id is set; pass^k uses the success flag.",
        "",
        table(header, rows),
        "",
    ]
    # A run's sentence only where it adds to the table: where its CI lies against a null floor.
    lines += [f"- {run_verdict(s)}" for s in r.summaries if s.floor.value is not None]
    for s in r.summaries:
        lines += [f"- {s.name}: {n}" for n in s.notes]
        if s.group is not None and s.group.n_incomplete:
            lines.append(
                f"- {s.name}: {s.group.n_incomplete} scenario × seed cell(s) left out of SGC "
                "(a task there had an infra error)"
            )
    cited = [(s.name, p) for s, p in ((s, pubs[s.name]) for s in r.summaries) if p is not None]
    if cited:
        lines += [
            "",
            "Sources of the published column (quoted for orientation only; not measured here, "
            "used in no computation):",
        ]
        lines += [f"- {name}: {p.source}" for name, p in cited]
    floors = {}
    for s in r.summaries:
        floors.setdefault((s.benchmark, s.floor.value, s.floor.note), []).append(s.name)
    lines += ["", "### Null-agent floor", ""]
    for (bench, value, note), names in floors.items():
        shown = f"{fmt(value)} ({note})" if value is not None else f"not available — {note}"
        lines.append(f"- {bench} ({', '.join(names)}): {shown}")
    return lines + [""]


def _comparisons_section(r: Report) -> list[str]:
    if not r.comparisons:
        return []
    holm = any(c.p_holm is not None for c in r.comparisons)
    header = [
        "comparison (b − a)",
        "tasks × seeds",
        "mean a ± SD",
        "mean b ± SD",
        "difference",
        "95% CI (paired BCa)",
        "p (paired t)",
        *(["p (t, Holm)"] if holm else []),
        "p (Wilcoxon)",
        "p (sign-flip perm.)",
        "p (McNemar exact)",
        "effect d_z",
        "MDE (80% power)",
        "infra pairs dropped",
    ]
    rows = []
    for c in r.comparisons:
        x = c.result
        rows.append(
            [
                f"{c.b} − {c.a}",
                f"{c.n_tasks} × {c.n_seeds}",
                _pm(c.mean_a, c.sd_a),
                _pm(c.mean_b, c.sd_b),
                f"{x.diff:+.3f}",
                _ci(x.ci.low, x.ci.high),
                fmt_p(x.p_ttest),
                *([fmt_p(c.p_holm)] if holm else []),
                fmt_p(x.p_wilcoxon),
                fmt_p(x.p_permutation),
                fmt_p(x.p_mcnemar) if x.p_mcnemar is not None else "n/a",
                fmt(x.effect_size, 2),
                fmt(x.mde),
                str(c.dropped_infra),
            ]
        )
    lines = [
        "## Paired comparisons",
        "",
        "Per-task differences d = b − a on the same tasks and eval seeds (pairs with an infra "
        "error on "
        "either side dropped). Tests: paired t; Wilcoxon signed-rank with zero_method="
        f"'{WILCOXON_ZERO_METHOD}' (zero differences are ranked, then their ranks dropped; "
        "all-zero differences give p = 1); sign-flip permutation "
        f"({r.n_resamples} resamples, exact when 2^n is smaller); paired BCa bootstrap "
        f"({r.n_resamples} resamples, seed {r.seed}); exact McNemar only "
        "with one eval seed and a pass/fail outcome. Effect size d_z = mean(d)/sd(d). "
        "MDE = (z0.975 + z0.8)·SE(d), with the t-test's SE (sd(d)/√n by task, clustered by scenario "
        "where set); undefined (—) when every difference is the same."
        + (
            " Holm's correction is applied to the paired-t p-values across the comparisons below."
            if holm
            else ""
        ),
        "",
        table(header, rows),
        "",
    ]
    lines += [f"- {comparison_verdict(c)}" for c in r.comparisons]
    for c in r.comparisons:
        lines += [f"- {c.b} − {c.a}: {n}" for n in notes_beside_verdict(c)]
        if math.isfinite(c.result.mde):  # no variation: the verdict above says what the tests show
            lines.append(f"- {c.b} − {c.a}: Wilcoxon p by {c.result.wilcoxon_method}")
    for c in r.comparisons:
        key = f"scatter:{c.a}:{c.b}"
        if key in r.plots:
            lines += ["", f"![per-task scatter, {c.b} against {c.a}]({r.plots[key]})"]
    return lines + [""]


def _training_section(r: Report) -> list[str]:
    if r.training is None:
        return []
    methods, improvements = r.training
    rows = [
        [
            m.method,
            ", ".join(m.runs),
            ", ".join(fmt(v) for v in m.scores),
            fmt(m.mean),
            fmt(m.iqm),
            _ci(m.iqm_ci.low, m.iqm_ci.high),
        ]
        for m in methods
    ]
    lines = [
        "## Training seeds",
        "",
        "One score per run (its mean over tasks and eval seeds), grouped by method; IQM, "
        "stratified "
        "percentile bootstrap CIs and probability of improvement after Agarwal et al. (2021).",
        "",
        table(["method", "runs", "score per training seed", "mean", "IQM", "IQM 95% CI"], rows),
        "",
    ]
    if improvements:
        lines += [
            table(
                ["x vs y", "P(x > y)", "95% CI"],
                [[f"{i.x} vs {i.y}", fmt(i.p, 2), _ci(i.ci.low, i.ci.high)] for i in improvements],
            ),
            "",
        ]
        lines += [f"- {improvement_verdict(i)}" for i in improvements]
    return lines + [""]


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("numpy", "scipy", "pandas"):
        try:
            out.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            continue
    return ", ".join(out)


def render(r: Report) -> str:
    """The whole report as markdown text."""
    lines = [
        "# sgcd-bench report",
        "",
        f"Every number below was computed by this report from the tidy results listed under Inputs "
        f"(metric: {r.metric}; bootstrap and permutation: {r.n_resamples} resamples, "
        f"seed {r.seed}; {_versions()})"
        + (
            ', except the column labelled "published", which quotes its sources.'
            if r.published
            else "."
        ),
        "",
        "## Inputs",
        "",
        table(
            [
                "run",
                "path",
                "model",
                "benchmark",
                "split",
                "rows",
                "rows with infra errors left out of every metric",
            ],
            [
                [
                    run.name,
                    str(run.path),
                    run.model,
                    run.benchmark,
                    run.split,
                    str(s.n_rows),
                    str(s.dropped_infra),
                ]
                for run, s in zip(r.runs, r.summaries, strict=True)
            ],
        ),
        "",
    ]
    extra = r.sections
    lines += extra.get("provenance", []) + _protocol(r) + _runs_section(r) + extra.get("flips", [])
    lines += extra.get("usage", []) + _comparisons_section(r) + _training_section(r)
    plots = [("forest", "confidence intervals"), ("learning", "learning curves")]
    shown = [(k, t) for k, t in plots if k in r.plots]
    if shown:
        lines += ["## Plots", ""] + [f"![{t}]({r.plots[k]})\n" for k, t in shown]
    if r.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in r.notes] + [""]
    lines += extra.get("failures", [])
    return "\n".join(lines).rstrip() + "\n"


def relative(path: Path, start: Path) -> str:
    """`path` relative to the markdown file's folder, with forward slashes."""
    try:
        return path.resolve().relative_to(start.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()
