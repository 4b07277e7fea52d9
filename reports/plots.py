"""PNG plots for reports: paired per-task scatter, CI forest plot, learning curves.

matplotlib is imported only when a plot is drawn, so importing reports stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from reports.analysis import Comparison, RunSummary


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def paired_scatter(c: Comparison, path: Path) -> Path:
    """Per-task mean of run a (x) against run b (y); marker area counts tasks at the same point."""
    plt = _pyplot()
    counts = c.per_task.groupby(["a", "b"]).size().reset_index(name="n")
    fig, ax = plt.subplots(figsize=(4.8, 5.2))
    lo = float(min(c.per_task["a"].min(), c.per_task["b"].min(), 0.0))
    hi = float(max(c.per_task["a"].max(), c.per_task["b"].max(), 1.0))
    ax.plot([lo, hi], [lo, hi], color="0.6", lw=1, ls="--", label="b = a")
    ax.scatter(
        counts["a"],
        counts["b"],
        s=20 + 30 * counts["n"],
        alpha=0.6,
        color="C0",
        edgecolor="k",
        lw=0.5,
        label="tasks (area ∝ count)",
    )
    if len(counts) <= 25:
        for _, row in counts.iterrows():
            ax.annotate(
                str(int(row["n"])), (row["a"], row["b"]), ha="center", va="center", fontsize=7
            )
    ax.set_xlabel(f"{c.a}: per-task mean {c.metric}")
    ax.set_ylabel(f"{c.b}: per-task mean {c.metric}")
    ax.set_title(f"{c.b} − {c.a} = {c.result.diff:+.3f} over {c.n_tasks} tasks", fontsize=9)
    pad = 0.05 * (hi - lo)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def forest(summaries: list[RunSummary], comparisons: list[Comparison], path: Path) -> Path:
    """Top: each run's mean, 95% t CI, null floor dashed. Bottom: paired differences, BCa CI."""
    plt = _pyplot()
    rows = 2 if comparisons else 1
    height = 1.0 + 0.45 * (len(summaries) + len(comparisons))
    fig, axes = plt.subplots(rows, 1, figsize=(6.4, max(2.6, height)), squeeze=False)
    ax = axes[0, 0]
    ys = list(range(len(summaries)))[::-1]
    for y, s in zip(ys, summaries, strict=True):
        ax.errorbar(
            s.mean,
            y,
            xerr=[[s.mean - s.ci_t.low], [s.ci_t.high - s.mean]],
            fmt="o",
            color="C0",
            capsize=3,
        )
        if s.floor.value is not None:
            ax.plot([s.floor.value] * 2, [y - 0.3, y + 0.3], color="C3", ls="--", lw=1)
    ax.set_yticks(ys, [s.name for s in summaries], fontsize=8)
    ax.set_ylim(-0.7, len(summaries) - 0.3)
    ax.set_xlabel(
        f"mean {summaries[0].metric} (95% t CI; red dashes: null-agent floor)", fontsize=8
    )
    if comparisons:
        ax = axes[1, 0]
        ys = list(range(len(comparisons)))[::-1]
        for y, c in zip(ys, comparisons, strict=True):
            r = c.result
            ax.errorbar(
                r.diff,
                y,
                xerr=[[r.diff - r.ci.low], [r.ci.high - r.diff]],
                fmt="s",
                color="C1",
                capsize=3,
            )
        ax.axvline(0.0, color="0.5", lw=1)
        ax.set_yticks(ys, [f"{c.b} − {c.a}" for c in comparisons], fontsize=8)
        ax.set_ylim(-0.7, len(comparisons) - 0.3)
        ax.set_xlabel("paired difference of per-task means (95% BCa bootstrap CI)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def learning_curves(logs: dict[str, pd.DataFrame], path: Path) -> Path:
    """reward_mean and success_rate against step, one line per training log."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.4))
    for name, log in logs.items():
        for ax, col in zip(axes, ("reward_mean", "success_rate"), strict=True):
            ax.plot(log["step"], log[col], label=name, lw=1.2)
    for ax, col in zip(axes, ("reward_mean", "success_rate"), strict=True):
        ax.set_xlabel("update step")
        ax.set_ylabel(col)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
