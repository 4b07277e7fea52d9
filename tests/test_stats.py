"""reports.stats against scipy / statsmodels on random data and against hand-computed cases."""

from __future__ import annotations

import itertools
from unittest import mock

import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from reports import stats


def _ols_cluster(x: np.ndarray, groups: np.ndarray):
    codes = np.unique(groups, return_inverse=True)[1]
    return sm.OLS(x, np.ones_like(x)).fit(
        cov_type="cluster", cov_kwds={"groups": codes}, use_t=True
    )


def _random_clusters(rng: np.random.Generator, n: int) -> np.ndarray:
    sizes = rng.integers(1, 5, size=n)
    return np.repeat(np.arange(n), sizes)[:n].astype(str)


# ---- clustered standard error, t interval, paired t --------------------------------------------


def test_cluster_sums_hand_case():
    s, m = stats.cluster_sums(np.array([1.0, 2.0, 4.0]), np.array(["b", "a", "b"]))
    assert s.tolist() == [2.0, 5.0] and m.tolist() == [1.0, 2.0]


def test_clustered_se_hand_case():
    # mean .75, S = [1, 2], m = [2, 2]; SE² = 2/1 · (0.5² + 0.5²) / 4² = 1/16
    assert stats.clustered_se(
        np.array([1.0, 0.0, 1.0, 1.0]), np.array(["a", "a", "b", "b"])
    ) == pytest.approx(0.25)


@pytest.mark.parametrize("seed", range(5))
def test_clustered_se_without_clusters_is_sem(seed):
    x = np.random.default_rng(seed).normal(size=37)
    assert stats.clustered_se(x) == pytest.approx(sps.sem(x), rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_clustered_se_matches_statsmodels(seed):
    rng = np.random.default_rng(seed)
    g = _random_clusters(rng, 60)
    x = rng.normal(size=60) + rng.normal(size=60)[np.unique(g, return_inverse=True)[1]]
    fit = _ols_cluster(x, g)
    assert stats.clustered_se(x, g) == pytest.approx(fit.bse[0], rel=1e-10)
    ci = stats.t_interval(x, g)
    assert (ci.low, ci.high) == pytest.approx(tuple(fit.conf_int()[0]), rel=1e-10)
    assert stats.paired_t(x, g) == pytest.approx(fit.pvalues[0], rel=1e-8)


@pytest.mark.parametrize("seed", range(5))
def test_t_interval_and_paired_t_match_scipy(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=25), rng.normal(0.3, size=25)
    ci = stats.t_interval(b - a)
    ref = sps.ttest_1samp(b - a, 0.0).confidence_interval()
    assert (ci.low, ci.high) == pytest.approx((ref.low, ref.high), rel=1e-12)
    assert stats.paired_t(b - a) == pytest.approx(sps.ttest_rel(b, a).pvalue, rel=1e-12)


def test_sd_over_seeds_hand_case():
    m = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, np.nan]])  # seed means 2/3 and 0
    assert stats.sd_over_seeds(m) == pytest.approx(np.std([2 / 3, 0.0], ddof=1))
    assert np.isnan(stats.sd_over_seeds(m[:, :1]))


def test_mde_formula():
    assert stats.mde(0.1) == pytest.approx((1.959963985 + 0.841621234) * 0.1, rel=1e-8)


# ---- bootstrap ----------------------------------------------------------------------------------


def test_bootstrap_matches_scipy_bca():
    x = np.random.default_rng(0).normal(size=40)
    ours = stats.bootstrap_interval(x, rng=7, n_resamples=2000)
    ref = sps.bootstrap((x,), np.mean, n_resamples=2000, method="BCa", rng=np.random.default_rng(7))
    assert ours.method == "BCa bootstrap"
    assert (ours.low, ours.high) == pytest.approx(tuple(ref.confidence_interval), rel=1e-10)


def test_cluster_bootstrap_with_singleton_clusters_equals_task_bootstrap():
    x = np.random.default_rng(1).normal(size=30)
    a = stats.bootstrap_interval(x, rng=3, n_resamples=1000)
    b = stats.bootstrap_interval(
        x, np.array([f"{i:03d}" for i in range(30)]), rng=3, n_resamples=1000
    )
    assert (a.low, a.high) == pytest.approx((b.low, b.high), rel=1e-9)


def test_bootstrap_degenerate_and_reproducible():
    one = stats.bootstrap_interval(np.array([0.3]), rng=0, n_resamples=500)
    assert np.isnan(one.low) and "undefined" in one.method
    ci = stats.bootstrap_interval(np.full(10, 0.5), rng=0, n_resamples=500)
    assert (ci.low, ci.high) == (0.5, 0.5) and "degenerate" in ci.method
    x = np.random.default_rng(2).random(20)
    assert stats.bootstrap_interval(x, rng=4, n_resamples=500) == stats.bootstrap_interval(
        x, rng=4, n_resamples=500
    )


def test_cluster_bootstrap_is_wider_when_clusters_correlate():
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(15), 4).astype(str)
    x = rng.normal(size=15).repeat(4) + 0.1 * rng.normal(size=60)
    naive = stats.bootstrap_interval(x, rng=0, n_resamples=1000)
    clustered = stats.bootstrap_interval(x, g, rng=0, n_resamples=1000)
    assert clustered.high - clustered.low > 1.5 * (naive.high - naive.low)


# ---- permutation, Wilcoxon, McNemar -------------------------------------------------------------


def _exact_sign_flip(s: np.ndarray) -> float:
    obs = abs(s.sum())
    null = [abs(np.dot(signs, s)) for signs in itertools.product((-1, 1), repeat=len(s))]
    return float(np.mean(np.array(null) >= obs - 1e-12))


def test_sign_flip_hand_cases():
    # ±1±2±3: |sum| >= 6 for 2 of 8 flips
    assert stats.sign_flip_test(np.array([1.0, 2.0, 3.0]), rng=0) == pytest.approx(0.25)
    # clusters {a: 1+1, b: 2}: ±2±2, |sum| >= 4 for 2 of 4 flips
    assert stats.sign_flip_test(
        np.array([1.0, 1.0, 2.0]), np.array(["a", "a", "b"]), rng=0
    ) == pytest.approx(0.5)


@pytest.mark.parametrize("seed", range(3))
def test_sign_flip_exact_matches_enumeration(seed):
    d = np.random.default_rng(seed).normal(0.4, 1.0, size=10)
    assert stats.sign_flip_test(d, rng=0, n_resamples=5000) == pytest.approx(_exact_sign_flip(d))


def test_sign_flip_monte_carlo_close_to_t_test():
    d = np.random.default_rng(11).normal(0.3, 1.0, size=60)
    p = stats.sign_flip_test(d, rng=0, n_resamples=4000)
    assert p == pytest.approx(sps.ttest_1samp(d, 0).pvalue, abs=0.02)


@pytest.mark.parametrize("seed", range(4))
def test_mcnemar_matches_statsmodels(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.random(40) < 0.5, rng.random(40) < 0.6
    table = [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]
    assert stats.mcnemar_exact(a, b) == pytest.approx(mcnemar(table, exact=True).pvalue, rel=1e-10)


def test_mcnemar_hand_cases():
    a = np.zeros(8, bool)
    b = np.array([1, 1, 1, 1, 1, 0, 0, 0], bool)  # b01 = 5, b10 = 0: p = 2 · 0.5^5
    assert stats.mcnemar_exact(a, b) == pytest.approx(0.0625)
    assert stats.mcnemar_exact(a, a) == 1.0


def test_paired_tests_match_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=30), rng.normal(0.5, size=30)
    r = stats.paired_tests(a, b, rng=0, n_resamples=1000)
    assert r.p_ttest == pytest.approx(sps.ttest_rel(b, a).pvalue)
    assert r.p_wilcoxon == pytest.approx(sps.wilcoxon(b - a, zero_method="pratt").pvalue)
    assert r.effect_size == pytest.approx(np.mean(b - a) / np.std(b - a, ddof=1))
    assert r.mde == pytest.approx(2.8015852 * np.std(b - a, ddof=1) / np.sqrt(30), rel=1e-6)
    assert r.p_mcnemar is None and r.n_units == 30 and r.wilcoxon_method == "exact"
    assert r.ci.low < r.diff < r.ci.high


def test_paired_tests_all_zero_and_constant_differences():
    a = np.array([0.0, 1.0, 0.5, 1.0])
    r = stats.paired_tests(a, a, rng=0, n_resamples=200)
    assert r.p_wilcoxon == 1.0 and r.p_ttest == 1.0 and r.diff == 0.0
    assert any("Wilcoxon p = 1" in n for n in r.notes)
    assert np.isnan(r.mde) and len(r.notes) == 1  # no variation: no MDE, and one note says so once
    r = stats.paired_tests(a, a + 0.1, rng=0, n_resamples=200)
    assert np.isnan(r.p_ttest) and any("t-test is undefined" in n for n in r.notes)
    assert (r.ci.low, r.ci.high) == pytest.approx((0.1, 0.1))
    assert np.isnan(r.mde)


def test_paired_tests_mcnemar_and_clusters():
    rng = np.random.default_rng(4)
    a, b = (rng.random(30) < 0.4).astype(float), (rng.random(30) < 0.7).astype(float)
    r = stats.paired_tests(a, b, rng=0, n_resamples=500, binary_single_seed=True)
    assert r.p_mcnemar == pytest.approx(stats.mcnemar_exact(a, b))
    g = np.repeat(np.arange(10), 3).astype(str)
    r = stats.paired_tests(a, b, g, rng=0, n_resamples=500, binary_single_seed=True)
    assert r.n_units == 10 and r.n_tasks == 30
    assert any("McNemar treats tasks as independent" in n for n in r.notes)
    with pytest.raises(ValueError, match="at least 2"):
        stats.paired_tests(a[:1], b[:1], rng=0)


# ---- Holm ---------------------------------------------------------------------------------


def test_holm_hand_case():
    # sorted .01 .03 .04 -> 3·.01 = .03, 2·.03 = .06, 1·.04 -> max(.06, .04) = .06
    assert stats.holm(np.array([0.01, 0.04, 0.03])).tolist() == pytest.approx([0.03, 0.06, 0.06])


@settings(deadline=None, max_examples=60)
@given(st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=12))
def test_holm_matches_statsmodels(p):
    with mock.patch("gc.collect", return_value=0):  # multipletests runs gc.collect() on every call
        ref = multipletests(p, method="holm")[1]
    assert stats.holm(np.array(p)) == pytest.approx(ref, abs=1e-12)
