"""The end-of-run summary of a tidy results table: pass@1 ± SE, pass^k, floor, end reasons.

The fuller statistics (CIs, paired tests) live in `reports/`; this is what `sgcd-bench eval`
prints and writes as summary.md, computed from the run's own rows.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from harness.benchmarks import SummaryMetric
from harness.floors import null_floor
from harness.metrics import clustered_se, flip_rate, pass_hat_k_mean
from harness.provenance import provenance_lines


def summarize(rows: list[dict[str, Any]], pass_k: list[int],
              metrics: Callable[[list[dict[str, Any]]], list[SummaryMetric]] | None = None) -> dict[str, Any]:  # fmt: skip
    """pass@1 is the mean over tasks of each task's mean reward over seeds; its standard error
    is harness.metrics.clustered_se over those task means, clustered by scenario where the rows
    have one (AppWorld), else by task (the SD of task means over √n_tasks), as in the reports.
    Infra errors are left out and counted. `metrics`: the benchmark's own summary metrics
    (Benchmark.summary_metrics; AppWorld's TGC and SGC), each as KEY_mean and KEY_sd."""
    scored = [r for r in rows if not r["infra_error"]]
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in scored:
        by_task[r["task_id"]].append(r)
    task_means = [sum(r["reward"] for r in rs) / len(rs) for rs in by_task.values()]
    n = len(task_means)
    mean = sum(task_means) / n if n else float("nan")
    scenarios = [rs[0].get("scenario_id") or "" for rs in by_task.values()]
    se = clustered_se(task_means, scenarios if any(scenarios) else None)
    out: dict[str, Any] = {
        "n_tasks": n,
        "n_rows": len(rows),
        "pass@1": mean,
        "pass@1_se": se,
        "se_cluster_by": "scenario" if any(scenarios) else "task",
        "end_reasons": dict(Counter(r["end_reason"] for r in rows)),
        "infra_errors": len(rows) - len(scored),
    }
    min_trials = min((len(rs) for rs in by_task.values()), default=0)
    for k in pass_k:
        if 1 <= k <= min_trials:
            out[f"pass^{k}"] = pass_hat_k_mean({t: [r["success"] for r in rs] for t, rs in by_task.items()}, k)
        else:
            out.setdefault("notes", []).append(
                f"pass^{k} left out: some task has only {min_trials} scored trial(s) after infrastructure errors"
            )
    flips = flip_rate({t: [r["success"] for r in rs] for t, rs in by_task.items()})
    if flips is not None:
        out["flip_rate"] = asdict(flips)
    floor = null_floor({t: rs[0].get("null_success") for t, rs in by_task.items()})
    if floor is not None:
        out["null_floor"] = floor
    if metrics is not None:
        try:
            own = metrics(rows)
        except ValueError as e:  # e.g. a seed whose every episode was an infrastructure error
            out["metrics_note"] = f"the benchmark's own metrics were not computed: {e}"
        else:
            out["metrics"] = {m.key: m.label for m in own}
            for m in own:
                out[f"{m.key}_mean"], out[f"{m.key}_sd"] = m.mean, m.sd
    wr = [m for (t, rs), m in zip(by_task.items(), task_means, strict=True) if rs[0].get("write_required")]
    if wr:
        out["write_required_tasks"] = len(wr)
        out["write_required_pass@1"] = sum(wr) / len(wr)
    return out


def summary_markdown(summary: dict[str, Any], manifest: dict[str, Any]) -> str:
    lines = [
        f"# {manifest['benchmark']} / {manifest['split']}: {manifest.get('model_label') or manifest['model']}",
        "",
        f"- user model: {manifest.get('user_model_label') or manifest.get('user_model')}",
        f"- seeds: {manifest['seeds']} at temperature {manifest['temperature']}; "
        f"max {manifest['max_steps']} steps, {manifest['max_errors']} tool errors",
        f"- tasks: {summary['n_tasks']} ({summary['n_rows']} episodes; {summary['infra_errors']} infrastructure errors left out)",
        *[line for line in provenance_lines(manifest) if not line.startswith("- user model")],
        "",
        "| metric | value |",
        "|---|---|",
        f"| pass@1 (± SE clustered by {summary.get('se_cluster_by', 'task')}) | "
        f"{summary['pass@1']:.3f} ± {summary['pass@1_se']:.3f} |",
    ]
    for key in sorted(k for k in summary if k.startswith("pass^")):
        lines.append(f"| {key} | {summary[key]:.3f} |")
    for key, label in summary.get("metrics", {}).items():
        if f"{key}_mean" in summary:
            sd = summary[f"{key}_sd"]
            spread = "no SD (one seed)" if math.isnan(sd) else f"{sd:.1f}"
            lines.append(f"| {label} (mean ± SD over seeds) | {summary[f'{key}_mean']:.1f} ± {spread} |")
    if "flip_rate" in summary:
        f = summary["flip_rate"]
        lines.append(f"| flip rate: tasks whose success differs between seeds (95% CI over tasks) | "
                     f"{f['value']:.3f} ({f['low']:.3f} to {f['high']:.3f}; {f['n_flipped']:.0f} of {f['n_tasks']}) |")  # fmt: skip
    if "null_floor" in summary:
        lines.append(f"| null-agent floor (same tasks) | {summary['null_floor']:.3f} |")
    if "write_required_pass@1" in summary:
        lines.append(f"| pass@1 on write-required tasks ({summary['write_required_tasks']}) | {summary['write_required_pass@1']:.3f} |")
    for note in [summary.get("metrics_note"), *summary.get("notes", [])]:
        if note:
            lines.append(f"\n_{note}_")
    lines += ["", "| how episodes ended | count |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in sorted(summary["end_reasons"].items())]
    if summary.get("infra_errors"):
        lines.append(f"\n_{summary['infra_errors']} episode(s) ended in an infrastructure error; "
                     "re-running the same command runs them again._")  # fmt: skip
    missing = summary.get("missing") or manifest.get("missing") or []
    if missing:
        lines.append(f"\n**INCOMPLETE: {len(missing)} episode(s) have no row:** {', '.join(missing)}. "
                     "Re-run the same command to run them.")  # fmt: skip
    return "\n".join(lines) + "\n"
