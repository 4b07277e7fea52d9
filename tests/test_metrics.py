"""pass^k against hand-computed values."""

from __future__ import annotations

import pytest

from harness.metrics import pass_hat_k, pass_hat_k_mean


def test_pass_hat_k_hand_values():
    assert pass_hat_k(3, 4, 1) == 0.75
    assert pass_hat_k(3, 4, 2) == 3 / 6
    assert pass_hat_k(3, 4, 4) == 0.0
    assert pass_hat_k(4, 4, 4) == 1.0
    assert pass_hat_k(0, 4, 1) == 0.0


def test_pass_hat_k_mean_over_tasks():
    per_task = {"a": [True, True, False], "b": [True, True, True], "c": [False, False, False]}
    assert pass_hat_k_mean(per_task, 1) == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert pass_hat_k_mean(per_task, 2) == pytest.approx((1 / 3 + 1 + 0) / 3)


def test_pass_hat_k_needs_k_le_trials():
    with pytest.raises(ValueError, match="k=3"):
        pass_hat_k_mean({"a": [True, False]}, 3)
    with pytest.raises(ValueError):
        pass_hat_k(1, 2, 0)
