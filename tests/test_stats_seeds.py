"""reports.seeds (IQM, stratified bootstrap, P(improvement)) by hand and against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from reports import seeds


def test_iqm_hand_cases():
    assert seeds.iqm(np.arange(1.0, 9.0)) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert seeds.iqm(np.array([0.0, 1.0, 1.0, 100.0])) == pytest.approx(1.0)
    m = np.random.default_rng(0).random((5, 3))
    assert seeds.iqm(m) == pytest.approx(sps.trim_mean(m.ravel(), 0.25))


def test_probability_of_improvement_hand_case():
    # pairs: 1>2 no, 1>0 yes, 2=2 half, 2>0 yes -> 2.5 / 4
    assert seeds.probability_of_improvement(
        np.array([1.0, 2.0]), np.array([2.0, 0.0])
    ) == pytest.approx(0.625)
    # two tasks: task 1 as above (0.625), task 2 x always below y (0) -> mean 0.3125
    x = np.array([[1.0, 0.0], [2.0, 0.0]])
    y = np.array([[2.0, 1.0], [0.0, 1.0]])
    assert seeds.probability_of_improvement(x, y) == pytest.approx(0.3125)


@pytest.mark.parametrize("seed", range(4))
def test_probability_of_improvement_is_mann_whitney_u(seed):
    rng = np.random.default_rng(seed)
    x, y = (
        rng.integers(0, 5, size=7).astype(float),
        rng.integers(0, 5, size=9).astype(float),
    )  # with ties
    u = sps.mannwhitneyu(x, y).statistic
    assert seeds.probability_of_improvement(x, y) == pytest.approx(u / (7 * 9))
    assert seeds.probability_of_improvement(x, y) + seeds.probability_of_improvement(
        y, x
    ) == pytest.approx(1.0)


def test_stratified_resample_keeps_each_task_column():
    x = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    boot = seeds.stratified_resample(x, np.random.default_rng(0), 200)
    assert boot.shape == (200, 3, 2)
    assert set(np.unique(boot[:, :, 0])) <= {1.0, 2.0, 3.0}
    assert set(np.unique(boot[:, :, 1])) <= {10.0, 20.0, 30.0}
    # runs are drawn independently per task, not as whole rows
    assert np.any(boot[:, :, 1] != 10 * boot[:, :, 0])


def test_intervals_contain_estimate_and_are_reproducible():
    rng = np.random.default_rng(1)
    x, y = rng.normal(0.6, 0.05, size=5), rng.normal(0.5, 0.05, size=5)
    ci = seeds.iqm_interval(x, rng=3, n_resamples=1000)
    assert ci.low <= seeds.iqm(x) <= ci.high
    assert ci == seeds.iqm_interval(x, rng=3, n_resamples=1000)
    pi = seeds.probability_of_improvement_interval(x, y, rng=3, n_resamples=1000)
    assert 0.0 <= pi.low <= seeds.probability_of_improvement(x, y) <= pi.high <= 1.0
    with pytest.raises(ValueError, match="same tasks"):
        seeds.probability_of_improvement(np.ones((3, 2)), np.ones((3, 3)))


def test_iqm_interval_coverage():
    """The stratified percentile CI of the IQM of 10 normal runs usually covers the centre."""
    rng = np.random.default_rng(2)
    hits = [
        (ci := seeds.iqm_interval(rng.normal(0.0, 1.0, size=10), rng=i, n_resamples=500)).low
        <= 0.0
        <= ci.high
        for i in range(150)
    ]
    assert 0.80 <= np.mean(hits) <= 0.99
