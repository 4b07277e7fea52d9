"""Simulations: type-I error near 5% under the null, power near 80% at the MDE, coverage ~95%.

Counts are kept small so the file runs in seconds; the bounds are wide enough for that noise
(400 simulations: the SD of an estimated 5% rate is about 1.1 points) but would catch a test that
is badly anti-conservative or a power formula that is off.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as sps

from reports import stats
from reports.analysis import compare_runs
from reports.synthetic import tidy_table
from reports.tidy import Run, normalize


def _rate(flags: list[bool]) -> float:
    return float(np.mean(flags))


def test_type_one_error_continuous_differences():
    rng = np.random.default_rng(0)
    t_hits, w_hits, p_hits = [], [], []
    for i in range(400):
        d = rng.normal(0.0, 1.0, size=30)
        t_hits.append(stats.paired_t(d) < 0.05)
        w_hits.append(sps.wilcoxon(d, zero_method=stats.WILCOXON_ZERO_METHOD).pvalue < 0.05)
        p_hits.append(stats.sign_flip_test(d, rng=i, n_resamples=199) < 0.05)
    for rate in (_rate(t_hits), _rate(w_hits), _rate(p_hits)):
        assert 0.02 <= rate <= 0.09


def test_type_one_error_binary_tasks_with_seeds():
    """Pass/fail outcomes, 40 tasks of varied difficulty × 3 seeds, both models equal."""
    rng = np.random.default_rng(1)
    hits = []
    for _ in range(400):
        p = 1 / (1 + np.exp(-rng.normal(0, 1.5, size=40)))
        a = (rng.random((40, 3)) < p[:, None]).mean(axis=1)
        b = (rng.random((40, 3)) < p[:, None]).mean(axis=1)
        hits.append(stats.paired_t(b - a) < 0.05)
    assert 0.02 <= _rate(hits) <= 0.09


def test_clustered_t_keeps_type_one_error_when_scenarios_correlate():
    """Differences share a scenario effect: the clustered test holds 5%, the naive one does not."""
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(20), 4).astype(str)
    clustered, naive = [], []
    for _ in range(400):
        d = rng.normal(0, 1, size=20).repeat(4) + 0.3 * rng.normal(size=80)
        clustered.append(stats.paired_t(d, g) < 0.05)
        naive.append(stats.paired_t(d) < 0.05)
    assert 0.02 <= _rate(clustered) <= 0.09
    assert _rate(naive) > 0.2


def test_mcnemar_is_not_anticonservative():
    rng = np.random.default_rng(3)
    hits = [
        stats.mcnemar_exact(rng.random(60) < 0.5, rng.random(60) < 0.5) < 0.05 for _ in range(400)
    ]
    assert _rate(hits) <= 0.07


def test_power_at_the_mde_is_near_eighty_percent():
    """True effect (z.975 + z.8)·sd/√n: the paired t-test rejects about 80% of the time."""
    rng = np.random.default_rng(4)
    n, sd = 100, 1.0
    effect = stats.mde(sd / np.sqrt(n))
    hits = [stats.paired_t(rng.normal(effect, sd, size=n)) < 0.05 for _ in range(400)]
    assert 0.70 <= _rate(hits) <= 0.88


def test_bca_coverage_near_nominal():
    rng = np.random.default_rng(5)
    hits = [
        stats.bootstrap_interval(rng.normal(0.0, 1.0, 40), rng=i, n_resamples=500).excludes(0.0)
        is False
        for i in range(200)
    ]
    assert 0.88 <= _rate(hits) <= 0.99


def _run(df, name: str) -> Run:
    return Run(name, None, normalize(df, name))  # type: ignore[arg-type]


def test_pipeline_null_comparisons_reject_near_five_percent():
    """Whole pipeline (tidy rows -> compare_runs) on simulated equal models."""
    hits = []
    for i in range(120):
        a = _run(tidy_table("a", rng=2 * i, n_tasks=40, task_seed=i), "a")
        b = _run(tidy_table("b", rng=2 * i + 1, n_tasks=40, task_seed=i), "b")
        r = compare_runs(a, b, rng=i, n_resamples=200).result
        hits.append(r.p_ttest < 0.05 and r.ci.excludes(0.0))
    assert _rate(hits) <= 0.10
