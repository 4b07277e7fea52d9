"""From loaded runs to numbers: one-run summaries, paired comparisons, training-seed aggregates.

Tidy rows -> infra errors dropped (counted) -> per-task means over eval seeds -> reports.stats /
reports.seeds. pass^k and the clustered SE come from harness.metrics and the null floor from
harness.floors.null_floor over the `null_success` column eval wrote (a table without that column,
not written by `sgcd-bench eval`, gets it from the benchmark's data where a floor is defined).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import metrics
from harness.metrics import pass_hat_k_mean
from reports import METRICS, stats
from reports import seeds as seedstats
from reports.stats import Interval, PairedResult
from reports.tidy import Run, drop_infra, is_binary, task_scenarios, task_seed_matrix, to_bool

MAX_PASS_K = 8


@dataclass
class GroupMetric:
    """A scenario-level metric (AppWorld SGC): share of scenarios whose tasks all succeed."""

    name: str
    mean: float  # mean over eval seeds of the per-seed share
    sd_seeds: float
    n_groups: int
    n_incomplete: int  # scenario × seed cells left out because a task there had an infra error


@dataclass
class Floor:
    """The null-agent floor (success rate of a do-nothing agent), or why there is none."""

    value: float | None
    note: str


@dataclass
class RunSummary:
    """One run, averaged per task first: mean ± SD over seeds, clustered SE, CIs, pass^k, floor."""

    name: str
    model: str
    benchmark: str
    split: str
    metric: str
    n_rows: int
    n_tasks: int
    n_seeds: int
    dropped_infra: int
    cluster_by: str  # "task" or "scenario"
    n_clusters: int
    mean: float
    sd_seeds: float
    se: float
    ci_t: Interval
    ci_boot: Interval
    pass_k: dict[int, float]
    group: GroupMetric | None
    floor: Floor
    method: str | None = None
    train_seed: str | None = None
    notes: list[str] = field(default_factory=list)


def _clusters(scenarios: pd.Series | None, task_ids: pd.Index) -> np.ndarray | None:
    return None if scenarios is None else scenarios.reindex(task_ids).to_numpy(dtype=str)


def group_success(df: pd.DataFrame, scenario_tasks: dict[str, set[str]]) -> GroupMetric | None:
    """SGC: per eval seed, the share of scenarios whose tasks all succeeded; mean, SD over seeds
    (harness.metrics.group_success, the one AppWorld's metrics use).

    `df` holds rows without infra errors; a scenario × seed cell missing a task is left out.
    """
    if not scenario_tasks:
        return None
    per_seed = {rep: dict(zip(rows["task_id"].astype(str), rows["success"].astype(bool), strict=True))
                for rep, rows in df.groupby("rep")}  # fmt: skip
    group_of = {str(t): s for s, tasks in scenario_tasks.items() for t in tasks}
    g = metrics.group_success(per_seed, group_of)
    if math.isnan(g.mean):
        return None
    return GroupMetric("SGC (scenarios with every task passed)", g.mean, g.sd, g.n_groups, g.n_incomplete)


def data_floor(benchmark: str, task_ids: list[str], data_dir: Path | None = None) -> Floor:
    """The floor over these tasks from the benchmark's data (harness.floors.null_successes), for
    a table without a `null_success` column; or a Floor with no value and the reason."""
    from harness.data import DataError
    from harness.floors import null_floor, null_successes

    try:
        value = null_floor(null_successes(benchmark, task_ids, data_dir))
    except DataError as e:
        if data_dir is not None:  # an explicit --data-dir that is missing or corrupt is an error
            raise
        return Floor(None, str(e))
    except (KeyError, ValueError, OSError, RuntimeError) as e:
        reason = e.args[0] if e.args else repr(e)
        return Floor(None, str(reason))
    if value is None:
        return Floor(None, "null floor of no tasks")
    return Floor(value, f"do-nothing agent's success rate on these {len(task_ids)} tasks")


def run_floor(run: Run, task_ids: list[str], data_dir: Path | None = None) -> Floor:
    """The null-agent floor over `task_ids`: what eval wrote (the rows' `null_success`), else
    from the benchmark's data (data_floor)."""
    from harness.floors import null_floor

    df = run.df
    if "null_success" not in df.columns or df["null_success"].isna().all():
        return data_floor(run.benchmark, task_ids, data_dir)
    recorded = df.dropna(subset=["null_success"]).groupby("task_id")["null_success"].first()
    recorded = to_bool(recorded, "null_success", run.path)  # read as `success` is
    flags = {str(t): bool(v) for t, v in recorded.items()}
    value = null_floor({t: flags.get(t) for t in map(str, task_ids)})
    if value is None:
        return Floor(None, "some task has no recorded null_success in the results")
    return Floor(value, f"do-nothing agent's success rate on these {len(task_ids)} tasks")


def summarize_run(
    run: Run,
    metric: str = "reward",
    *,
    rng: np.random.Generator | int,
    n_resamples: int = 10_000,
    data_dir: Path | None = None,
) -> RunSummary:
    """Every one-model statistic of `run` on `metric` (reward or success)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}; got {metric!r}")
    df, dropped = drop_infra(run.df)
    if df.empty:
        raise ValueError(f"{run.name}: every row is an infra error; nothing to summarise")
    matrix = task_seed_matrix(df, metric)  # (n_tasks, n_seeds)
    task_means = matrix.mean(axis=1)  # NaN-skipping: a task's available seeds
    scen = task_scenarios(df)
    clusters = _clusters(scen, task_means.index)
    x = task_means.to_numpy()
    notes = []  # the rows dropped for infra errors are a column of the report's Inputs table
    n_seeds = matrix.shape[1]
    if n_seeds < 2:
        notes.append("one eval seed: no SD over seeds")
    flags = df.groupby("task_id")["success"].apply(list).to_dict()
    kmax = min(min(len(f) for f in flags.values()), MAX_PASS_K)
    pass_k = {k: pass_hat_k_mean(flags, k) for k in range(1, kmax + 1)}
    if kmax < min(n_seeds, MAX_PASS_K):
        notes.append(
            f"pass^k shown up to k={kmax}: after infra drops some task has only {kmax} trial(s)"
        )
    group = None
    if scen is not None:
        all_tasks = run.df.groupby("scenario")["task_id"].agg(set).to_dict()
        group = group_success(df, all_tasks)
    s, _ = stats.cluster_sums(x, clusters)
    return RunSummary(
        name=run.name,
        model=run.model,
        benchmark=run.benchmark,
        split=run.split,
        metric=metric,
        n_rows=len(run.df),
        n_tasks=len(x),
        n_seeds=n_seeds,
        dropped_infra=dropped,
        cluster_by="scenario" if clusters is not None else "task",
        n_clusters=len(s),
        mean=float(x.mean()),
        sd_seeds=stats.sd_over_seeds(matrix.to_numpy()),
        se=stats.clustered_se(x, clusters),
        ci_t=stats.t_interval(x, clusters),
        ci_boot=stats.bootstrap_interval(x, clusters, rng=rng, n_resamples=n_resamples),
        pass_k=pass_k,
        group=group,
        floor=run_floor(run, [str(t) for t in task_means.index], data_dir),
        method=run.label("method"),
        train_seed=run.label("train_seed"),
        notes=notes,
    )


@dataclass
class Comparison:
    """Run b against run a on the same tasks and seeds: d = b - a per task."""

    a: str
    b: str
    model_a: str
    model_b: str
    metric: str
    n_tasks: int
    n_seeds: int
    mean_a: float
    mean_b: float
    sd_a: float
    sd_b: float
    result: PairedResult
    dropped_infra: int  # task × seed pairs left out because either side had an infra error
    per_task: pd.DataFrame  # columns task_id, a, b (per-task means)
    p_holm: float | None = None  # paired-t p, Holm-adjusted across the report's comparisons
    floor: Floor | None = None  # null-agent floor over the compared tasks, when computed

    def to_json(self) -> dict[str, Any]:
        r = self.result

        def num(v: float | None) -> float | None:
            return None if v is None or not math.isfinite(v) else float(v)

        return {
            "run_a": self.a,
            "run_b": self.b,
            "model_a": self.model_a,
            "model_b": self.model_b,
            "metric": self.metric,
            "n_tasks": self.n_tasks,
            "n_seeds": self.n_seeds,
            "n_units": r.n_units,
            "mean_a": num(self.mean_a),
            "mean_b": num(self.mean_b),
            "sd_a": num(self.sd_a),
            "sd_b": num(self.sd_b),
            "diff": num(r.diff),
            "ci_low": num(r.ci.low),
            "ci_high": num(r.ci.high),
            "ci_method": r.ci.method,
            "p_ttest": num(r.p_ttest),
            "p_wilcoxon": num(r.p_wilcoxon),
            "wilcoxon_zero_method": stats.WILCOXON_ZERO_METHOD,
            "wilcoxon_method": r.wilcoxon_method,
            "p_permutation": num(r.p_permutation),
            "p_mcnemar": num(r.p_mcnemar),
            "p_ttest_holm": num(self.p_holm),
            "effect_size_dz": num(r.effect_size),
            "se": num(r.se),
            "mde": num(r.mde),
            "dropped_infra": self.dropped_infra,
            "null_floor": num(self.floor.value) if self.floor else None,
            "null_floor_note": self.floor.note if self.floor else "not computed",
            "notes": r.notes,
        }


def compare_runs(
    a: Run,
    b: Run,
    metric: str = "reward",
    *,
    rng: np.random.Generator | int,
    n_resamples: int = 10_000,
) -> Comparison:
    """Paired statistics of b - a; the runs must share tasks and seeds (reports.protocol)."""
    cols = ["task_id", "rep", metric, "infra", "scenario"]
    merged = a.df[cols].merge(
        b.df[cols], on=["task_id", "rep"], how="outer", suffixes=("_a", "_b"), indicator=True
    )
    unmatched = int((merged["_merge"] != "both").sum())
    if unmatched:
        raise ValueError(
            f"{unmatched} task × seed rows of {a.name} and {b.name} have no partner; "
            "check the protocol first (reports.protocol.harmonize)"
        )
    bad = merged["infra_a"] | merged["infra_b"]
    paired = merged.loc[~bad]
    if paired.empty:
        raise ValueError(f"{a.name} vs {b.name}: every pair has an infra error")
    ma = paired.pivot(index="task_id", columns="rep", values=f"{metric}_a").astype(float)
    mb = paired.pivot(index="task_id", columns="rep", values=f"{metric}_b").astype(float)
    per_task = pd.DataFrame({"a": ma.mean(axis=1), "b": mb.mean(axis=1)})
    scen = paired.groupby("task_id")["scenario_a"].first()
    clusters = None if scen.isna().all() else _clusters(scen, per_task.index)
    n_seeds = ma.shape[1]
    binary = n_seeds == 1 and is_binary(ma.to_numpy()) and is_binary(mb.to_numpy())
    result = stats.paired_tests(
        per_task["a"].to_numpy(),
        per_task["b"].to_numpy(),
        clusters,
        rng=rng,
        n_resamples=n_resamples,
        binary_single_seed=binary,
    )
    return Comparison(  # the pairs dropped for infra errors: dropped_infra, not a note as well
        a=a.name,
        b=b.name,
        model_a=a.model,
        model_b=b.model,
        metric=metric,
        n_tasks=len(per_task),
        n_seeds=n_seeds,
        mean_a=float(per_task["a"].mean()),
        mean_b=float(per_task["b"].mean()),
        sd_a=stats.sd_over_seeds(ma.to_numpy()),
        sd_b=stats.sd_over_seeds(mb.to_numpy()),
        result=result,
        dropped_infra=int(bad.sum()),
        per_task=per_task.reset_index(),
    )


def apply_holm(comparisons: list[Comparison]) -> None:
    """Set each comparison's Holm-adjusted paired-t p (over those with a finite p)."""
    finite = [c for c in comparisons if math.isfinite(c.result.p_ttest)]
    if len(finite) < 2:
        return
    for c, p in zip(finite, stats.holm(np.array([c.result.p_ttest for c in finite])), strict=True):
        c.p_holm = float(p)


@dataclass
class MethodSeeds:
    """One method's runs (one per training seed): per-run scores, mean, IQM and its CI."""

    method: str
    runs: list[str]
    scores: np.ndarray  # (n_runs,): each run's mean over tasks and eval seeds
    mean: float
    iqm: float
    iqm_ci: Interval


@dataclass
class Improvement:
    """P(method x beats method y) over training seeds, with its stratified bootstrap CI."""

    x: str
    y: str
    p: float
    ci: Interval
    n_x: int  # training seeds (runs) of x
    n_y: int


def training_seeds(
    summaries: list[RunSummary], *, rng: np.random.Generator | int, n_resamples: int = 2_000
) -> tuple[list[MethodSeeds], list[Improvement]] | None:
    """Group runs by method (manifest or column `method`); None unless a method has >= 2 runs.
    Runs without a training seed (e.g. the base checkpoint) are not a method's seed."""
    summaries = [s for s in summaries if s.train_seed is not None] or summaries
    if any(s.method is None for s in summaries):
        return None
    groups: dict[str, list[RunSummary]] = {}
    for s in summaries:
        groups.setdefault(str(s.method), []).append(s)
    if max(len(g) for g in groups.values()) < 2:
        return None
    rng = np.random.default_rng(rng)
    methods = []
    for name, runs in groups.items():
        x = np.array([r.mean for r in runs])
        methods.append(
            MethodSeeds(
                name,
                [r.name for r in runs],
                x,
                float(x.mean()),
                seedstats.iqm(x),
                seedstats.iqm_interval(x, rng=rng, n_resamples=n_resamples),
            )
        )
    base = methods[0]
    improvements = [
        Improvement(
            m.method,
            base.method,
            seedstats.probability_of_improvement(m.scores, base.scores),
            seedstats.probability_of_improvement_interval(
                m.scores, base.scores, rng=rng, n_resamples=n_resamples
            ),
            len(m.scores),
            len(base.scores),
        )
        for m in methods[1:]
    ]
    return methods, improvements


def comparison_pairs(
    runs: list[Run], summaries: list[RunSummary]
) -> tuple[list[tuple[Run, Run]], list[str]]:
    """Which runs to compare pairwise: each against the first; with training-seed groups, each
    other method's run against the first method's run of the same training seed."""
    methods = [s.method for s in summaries]
    grouped = all(m is not None for m in methods) and len(set(methods)) < len(methods)
    if not grouped:
        return [(runs[0], r) for r in runs[1:]], []
    seeds = [s.train_seed for s in summaries]
    unseeded = [r.name for r, t in zip(runs, seeds, strict=True) if t is None]
    notes = [f"{', '.join(unseeded)}: no training seed, so summarized but not paired"] if unseeded else []
    if all(t is None for t in seeds):
        return [], [
            "paired per-task comparisons skipped: runs are grouped by method but lack train_seed"
        ]
    first = next(s.method for s in summaries if s.train_seed is not None)
    base = {t: r for r, s, t in zip(runs, summaries, seeds, strict=True) if s.method == first and t is not None}
    pairs = [
        (base[t], r)
        for r, s, t in zip(runs, summaries, seeds, strict=True)
        if s.method != first and t in base
    ]
    return pairs, notes
