"""Several training seeds per method: IQM, stratified bootstrap CIs, probability of improvement.

After Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice" (the `rliable`
package, written out here in numpy because rliable does not import with pandas 3). A method's
scores form a matrix (n_runs, n_tasks): one row per training seed, one column per task or
benchmark (a single column when each run is summarised by one score, its mean over tasks and
eval seeds). A 1-D array (n_runs,) is read as one column.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats

from reports.stats import Interval


def _matrix(scores: np.ndarray) -> np.ndarray:
    x = np.asarray(scores, dtype=float)
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"scores must have shape (n_runs,) or (n_runs, n_tasks); got {x.shape}")
    return x


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of all runs × tasks: the mean of the middle 50% (trim 25% each side)."""
    return float(stats.trim_mean(_matrix(scores).ravel(), 0.25))


def stratified_resample(
    scores: np.ndarray, rng: np.random.Generator, n_resamples: int
) -> np.ndarray:
    """(n_runs, n_tasks) -> (n_resamples, n_runs, n_tasks): runs drawn with replacement per task."""
    x = _matrix(scores)
    idx = rng.integers(0, x.shape[0], size=(n_resamples, *x.shape))
    return np.take_along_axis(x[None], idx, axis=1)


def _percentile(dist: np.ndarray, level: float) -> Interval:
    low, high = np.quantile(dist, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(low), float(high), "stratified percentile bootstrap")


def stratified_bootstrap_interval(
    scores: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    *,
    rng: np.random.Generator | int,
    n_resamples: int = 2_000,
    level: float = 0.95,
) -> Interval:
    """Percentile CI of `statistic` ((B, n_runs, n_tasks) -> (B,)) under stratified resampling."""
    boot = stratified_resample(scores, np.random.default_rng(rng), n_resamples)
    return _percentile(statistic(boot), level)


def iqm_interval(
    scores: np.ndarray,
    *,
    rng: np.random.Generator | int,
    n_resamples: int = 2_000,
    level: float = 0.95,
) -> Interval:
    """Stratified bootstrap CI of the IQM of scores (n_runs, n_tasks)."""

    def batch_iqm(boot: np.ndarray) -> np.ndarray:
        return stats.trim_mean(boot.reshape(len(boot), -1), 0.25, axis=1)

    return stratified_bootstrap_interval(
        scores, batch_iqm, rng=rng, n_resamples=n_resamples, level=level
    )


def _prob_improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x (..., N, M), y (..., K, M) -> (...): mean over tasks of P(X > Y), ties counting 1/2."""
    xe, ye = x[..., :, None, :], y[..., None, :, :]
    s = (xe > ye) + 0.5 * (xe == ye)  # (..., N, K, M)
    return s.mean(axis=(-3, -2)).mean(axis=-1)


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) for scores x (N, M) and y (K, M) of two methods on the same M tasks.

    P(X > Y) = (1/M) Σ_m (1/(N·K)) Σ_i Σ_j S(x_im, y_jm), S = 1 if x > y, 1/2 if equal, else 0:
    per task, the Mann-Whitney U statistic / (N·K).
    """
    x, y = _matrix(x), _matrix(y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"x and y must cover the same tasks; got {x.shape[1]} and {y.shape[1]} columns"
        )
    return float(_prob_improvement(x, y))


def probability_of_improvement_interval(
    x: np.ndarray,
    y: np.ndarray,
    *,
    rng: np.random.Generator | int,
    n_resamples: int = 2_000,
    level: float = 0.95,
) -> Interval:
    """Percentile CI of P(X > Y); runs of X and of Y are resampled independently per task."""
    rng = np.random.default_rng(rng)
    bx = stratified_resample(x, rng, n_resamples)
    by = stratified_resample(y, rng, n_resamples)
    return _percentile(_prob_improvement(bx, by), level)
