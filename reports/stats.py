"""Statistics over per-task scores: clustered errors, CIs, paired tests, MDE, McNemar, Holm.

The unit of analysis is the task: a task's eval seeds are averaged first. Where tasks belong to
scenarios (AppWorld), tasks of one scenario are not independent, so errors and resampling are
clustered by scenario. Every routine reduces its input to cluster sums:

    values x (n_tasks,), cluster labels (n_tasks,)  ->  S (G,) = sum of x in cluster g,
                                                         m (G,) = number of tasks in cluster g
    estimate  mean = sum(S) / sum(m)       (the mean over tasks; each task weighs the same)

Without clusters every task is its own cluster (S = x, m = 1) and each routine reduces to the
textbook one (sd/sqrt(n), scipy.stats.ttest_rel, a per-task sign flip, ...); the tests check this.
scipy does the work where it has the routine (t and normal quantiles, wilcoxon, bootstrap BCa,
permutation_test, binomtest); Holm is written out here, and the clustered SE (with its cluster
sums) is harness.metrics.clustered_se, the one the eval summary and the inspect task use too.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from harness.metrics import cluster_sums, clustered_se
from harness.metrics import sd_over_seeds as _sd_of_seed_scores

ALPHA = 0.05
POWER = 0.80
# Wilcoxon zero method: zero differences take part in ranking, then their ranks are dropped.
WILCOXON_ZERO_METHOD = "pratt"


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval and the method that produced it."""

    low: float
    high: float
    method: str

    def excludes(self, value: float = 0.0) -> bool:
        return bool(self.low > value or self.high < value)


def t_interval(
    values: np.ndarray, clusters: np.ndarray | None = None, level: float = 0.95
) -> Interval:
    """mean ± t_{(1+level)/2, G-1} · clustered SE, for values (n,) in G clusters."""
    s, m = cluster_sums(values, clusters)
    mean, se = s.sum() / m.sum(), clustered_se(values, clusters)
    half = stats.t.ppf((1 + level) / 2, df=len(s) - 1) * se
    return Interval(float(mean - half), float(mean + half), "t")


def _mean(x: np.ndarray, axis: int) -> np.ndarray:
    """The bootstrap statistic without clusters: the mean along `axis`."""
    return x.mean(axis=axis)


def _ratio(x: np.ndarray, k: np.ndarray, axis: int) -> np.ndarray:
    """The bootstrap statistic over clusters: sum(S*)/sum(m*) along `axis`."""
    return x.sum(axis=axis) / k.sum(axis=axis)


def bootstrap_interval(
    values: np.ndarray,
    clusters: np.ndarray | None = None,
    *,
    rng: np.random.Generator | int,
    n_resamples: int = 10_000,
    level: float = 0.95,
) -> Interval:
    """BCa bootstrap CI of the mean of values (n,), resampling whole clusters (scipy bootstrap).

    With clusters the statistic is the ratio sum(S*)/sum(m*) over resampled clusters. When every
    value is equal the bootstrap distribution is a point and the interval is (mean, mean).
    """
    s, m = cluster_sums(values, clusters)
    mean = float(s.sum() / m.sum())
    if len(s) < 2:
        return Interval(float("nan"), float("nan"), "undefined (fewer than 2 units)")
    if np.allclose(s / m, s[0] / m[0]):
        return Interval(mean, mean, "degenerate (all values equal)")
    data: tuple[np.ndarray, ...]
    statistic: Callable[..., np.ndarray]
    if clusters is None:
        data, statistic = (s,), _mean
    else:
        data, statistic = (s, m), _ratio
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        res = stats.bootstrap(
            data,
            statistic,
            n_resamples=n_resamples,
            paired=True,
            vectorized=True,
            confidence_level=level,
            method="BCa",
            rng=np.random.default_rng(rng),
        )
    low, high = res.confidence_interval
    if np.isfinite(low) and np.isfinite(high):
        return Interval(float(low), float(high), "BCa bootstrap")
    # BCa needs a non-degenerate jackknife and bootstrap distribution; else fall back to percentile.
    dist = res.bootstrap_distribution
    q = np.quantile(dist, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(q[0]), float(q[1]), "percentile bootstrap (BCa undefined)")


def sd_over_seeds(matrix: np.ndarray) -> float:
    """SD (ddof=1) of the per-seed scores, for matrix (n_tasks, n_seeds) with NaN where absent.

    Each seed's score is the mean over the tasks it has; their SD is harness.metrics.sd_over_seeds
    (the one AppWorld's TGC/SGC spread uses). NaN with fewer than two seeds.
    """
    per_seed = np.nanmean(np.asarray(matrix, dtype=float), axis=0)
    return _sd_of_seed_scores(per_seed.tolist())


def mde(se: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """Minimum detectable effect, (z_{1-α/2} + z_{power}) · SE; with SE = sd(d)/√n for tasks."""
    return float((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * se)


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values for p (m,).

    In ascending order, p_(i) -> min(1, max_{j<=i} (m - j + 1) · p_(j)); returned in input order.
    """
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p)
    scaled = (len(p) - np.arange(len(p))) * p[order]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


def paired_t(d: np.ndarray, clusters: np.ndarray | None = None) -> float:
    """Two-sided p of mean(d) = 0 for differences d (n,): t = mean/clustered SE, df = G-1.

    Without clusters this is scipy.stats.ttest_rel / ttest_1samp.
    """
    d = np.asarray(d, dtype=float)
    if clusters is None:
        return float(stats.ttest_1samp(d, 0.0).pvalue)
    se, g = clustered_se(d, clusters), len(cluster_sums(d, clusters)[0])
    return float(2 * stats.t.sf(abs(d.mean() / se), df=g - 1))


def wilcoxon_method(d: np.ndarray) -> str:
    """Which p-value scipy.stats.wilcoxon(method="auto") computes for d (n,) (per its Notes)."""
    d = np.asarray(d, dtype=float)
    ties_or_zeros = (d == 0).any() or len(np.unique(np.abs(d))) < len(d)
    if not ties_or_zeros:
        return "exact" if len(d) <= 50 else "normal approximation"
    return "exact permutation" if len(d) <= 13 else "normal approximation (tie-corrected)"


def sign_flip_test(
    d: np.ndarray,
    clusters: np.ndarray | None = None,
    *,
    rng: np.random.Generator | int,
    n_resamples: int = 10_000,
) -> float:
    """Two-sided sign-flip permutation p of mean(d) = 0 for d (n,), flipping whole clusters.

    Null: each cluster's differences are symmetric about 0. scipy.stats.permutation_test with one
    sample and permutation_type="samples" flips signs; it enumerates all 2^G flips when
    2^G <= n_resamples, else draws n_resamples and returns (count + 1) / (n_resamples + 1).
    """
    s, m = cluster_sums(d, clusters)
    n = m.sum()
    res = stats.permutation_test(
        (s,),
        lambda x, axis: x.sum(axis=axis) / n,
        permutation_type="samples",
        vectorized=True,
        n_resamples=n_resamples,
        alternative="two-sided",
        rng=np.random.default_rng(rng),
    )
    return float(res.pvalue)


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> float:
    """Exact McNemar p for paired binary outcomes a, b (n,): binomial test of the discordant pairs.

    b01 = #(a=0, b=1), b10 = #(a=1, b=0); p = binomtest(b01, b01 + b10, 0.5). No discordant pair: 1.
    """
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    b01, b10 = int(np.sum(~a & b)), int(np.sum(a & ~b))
    if b01 + b10 == 0:
        return 1.0
    return float(stats.binomtest(b01, b01 + b10, 0.5).pvalue)


@dataclass
class PairedResult:
    """Paired comparison of per-task scores a, b (n_tasks,), difference d = b - a."""

    n_tasks: int
    n_units: int  # tasks, or scenarios when clustered
    diff: float
    ci: Interval
    p_ttest: float
    p_wilcoxon: float
    p_permutation: float
    p_mcnemar: float | None
    effect_size: float  # Cohen's d_z = mean(d) / sd(d) over tasks
    se: float
    mde: float
    wilcoxon_method: str
    notes: list[str] = field(default_factory=list)


def paired_tests(
    a: np.ndarray,
    b: np.ndarray,
    clusters: np.ndarray | None = None,
    *,
    rng: np.random.Generator | int,
    n_resamples: int = 10_000,
    binary_single_seed: bool = False,
) -> PairedResult:
    """Every paired statistic of per-task means a, b (n_tasks,); clusters: labels (n_tasks,).

    `binary_single_seed`: one eval seed and a pass/fail outcome, so exact McNemar applies.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = b - a
    rng = np.random.default_rng(rng)
    s, m = cluster_sums(d, clusters)
    notes: list[str] = []
    if len(s) < 2:
        raise ValueError(f"paired tests need at least 2 independent units; got {len(s)}")
    unit = "scenario" if clusters is not None else "task"
    diff, sd = float(d.mean()), float(d.std(ddof=1))
    se = clustered_se(d, clusters)
    constant = bool(np.allclose(s / m, s[0] / m[0]))
    unit_d = s / m
    all_zero = bool(np.all(unit_d == 0))
    if constant:
        # Constant differences: the t statistic is undefined; no test can reject a constant 0; with
        # no variation there is no SE to size a detectable effect by. Said once, in one note.
        p_t = 1.0 if np.isclose(diff, 0.0) else float("nan")
        notes.append(
            f"every {unit} difference equals {diff:.3g}: the t-test is undefined"
            + ("; p = 1" if p_t == 1.0 else "")
            + ("; Wilcoxon p = 1" if all_zero else "")
            + "; no minimum detectable effect (no variation)"
        )
    else:
        p_t = paired_t(d, clusters)
    if all_zero:
        p_w = 1.0
    else:
        p_w = float(stats.wilcoxon(unit_d, zero_method=WILCOXON_ZERO_METHOD, method="auto").pvalue)
    p_perm = sign_flip_test(d, clusters, rng=rng, n_resamples=n_resamples)
    p_mc = None
    if binary_single_seed:
        p_mc = mcnemar_exact(a, b)
        if clusters is not None:
            notes.append("McNemar treats tasks as independent although they share scenarios")
    if clusters is not None:
        notes.append(
            f"clustered by scenario ({len(s)} scenarios): the t-test uses the clustered SE, "
            "the permutation test flips and the bootstrap resamples whole scenarios, "
            "Wilcoxon ranks per-scenario mean differences"
        )
    return PairedResult(
        n_tasks=len(d),
        n_units=len(s),
        diff=diff,
        ci=bootstrap_interval(d, clusters, rng=rng, n_resamples=n_resamples),
        p_ttest=p_t,
        p_wilcoxon=p_w,
        p_permutation=p_perm,
        p_mcnemar=p_mc,
        effect_size=diff / sd if sd > 0 else float("nan"),
        se=se,
        mde=float("nan") if constant else mde(se),
        wilcoxon_method=wilcoxon_method(unit_d),
        notes=notes,
    )
