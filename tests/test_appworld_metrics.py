"""AppWorld TGC / SGC and scenario ids against hand-computed values (no AppWorld needed)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.appworld.metrics import (
    metrics_by_seed,
    scenario_goal_completion,
    scenario_id,
    seed_metrics,
    task_goal_completion,
)


def test_scenario_id_of_real_id_format():
    # AppWorld ids: 7 hex digits, "_", the task's number in its scenario; optional ":tag".
    assert scenario_id("50e1ac9_1") == "50e1ac9"
    assert scenario_id("50e1ac9_3") == "50e1ac9"
    assert scenario_id("82e2fac_2:hard") == "82e2fac"
    for bad in ("50e1ac9", "50e1ac9_", "_1", "50e1ac9_x"):
        with pytest.raises(ValueError):
            scenario_id(bad)


def test_tgc_and_sgc_hand_computed():
    # Scenario a: 3/3; scenario b: 2/3; scenario c: 0/3.  TGC = 5/9, SGC = 1/3.
    per_task = {"a_1": True, "a_2": True, "a_3": True, "b_1": True, "b_2": False, "b_3": True,
                "c_1": False, "c_2": False, "c_3": False}  # fmt: skip
    assert task_goal_completion(per_task.values()) == pytest.approx(100 * 5 / 9)
    assert scenario_goal_completion(per_task) == pytest.approx(100 / 3)
    m = seed_metrics(per_task)
    assert (m.n_tasks, m.n_scenarios, m.infra_errors, m.scenarios_dropped) == (9, 3, 0, 0)


def test_infra_errors_are_left_out_and_counted():
    # b_2 crashed: it leaves TGC (5 scored tasks, 4 successes) and scenario b leaves SGC
    # (a succeeds fully, c does not: SGC = 1/2).
    results = {"a_1": True, "a_2": True, "b_1": True, "b_2": None, "c_1": True, "c_2": False}
    m = seed_metrics(results)
    assert m.tgc == pytest.approx(80.0)
    assert m.sgc == pytest.approx(50.0)
    assert (m.n_tasks, m.n_scenarios, m.infra_errors, m.scenarios_dropped) == (5, 2, 1, 1)


def test_all_scenarios_dropped_gives_nan_sgc_not_zero():
    m = seed_metrics({"a_1": True, "a_2": None})
    assert m.tgc == 100.0 and math.isnan(m.sgc)
    with pytest.raises(ValueError):
        seed_metrics({"a_1": None})


def test_metrics_across_seeds_from_tidy_rows():
    rows = [
        # seed 0: TGC 75, SGC 50
        {"task_id": "a_1", "seed": 0, "success": True},
        {"task_id": "a_2", "seed": 0, "success": True},
        {"task_id": "b_1", "seed": 0, "success": True},
        {"task_id": "b_2", "seed": 0, "success": False},
        # seed 1: TGC 100 (3 scored), SGC 100 (scenario b dropped: b_2 is an infra error)
        {"task_id": "a_1", "seed": 1, "success": True},
        {"task_id": "a_2", "seed": 1, "success": True},
        {"task_id": "b_1", "seed": 1, "success": True},
        {"task_id": "b_2", "seed": 1, "success": False, "end_reason": "infra_error"},
    ]
    s = metrics_by_seed(rows)
    assert s.per_seed[0].tgc == pytest.approx(75.0) and s.per_seed[0].sgc == pytest.approx(50.0)
    assert s.per_seed[1].tgc == pytest.approx(100.0) and s.per_seed[1].sgc == pytest.approx(100.0)
    assert s.tgc_mean == pytest.approx(87.5) and s.sgc_mean == pytest.approx(75.0)
    assert s.tgc_sd == pytest.approx(math.sqrt(2 * 12.5**2)) and s.infra_errors == 1
    d = s.to_dict()
    assert d["seeds"] == 2 and d["per_seed"][1]["scenarios_dropped"] == 1


def test_infra_flag_column_and_duplicates():
    rows = [{"task_id": "a_1", "seed": 3, "success": 0, "infra_error": "True"},
            {"task_id": "a_2", "seed": 3, "success": 1, "infra_error": False}]  # fmt: skip
    s = metrics_by_seed(rows)
    assert s.per_seed[3].n_tasks == 1 and s.infra_errors == 1
    with pytest.raises(ValueError, match="twice"):
        metrics_by_seed(rows + rows[:1])


@given(
    st.dictionaries(
        st.sampled_from([f"s{i}_{j}" for i in range(4) for j in (1, 2, 3)]),
        st.booleans(),
        min_size=1,
    )
)
def test_sgc_never_exceeds_tgc_bounds(per_task):
    # A scenario counts only when all its tasks succeed, so SGC <= 100 × (share of fully
    # successful scenarios) and SGC == 100 exactly when TGC == 100.
    tgc = task_goal_completion(per_task.values())
    sgc = scenario_goal_completion(per_task)
    assert 0.0 <= sgc <= 100.0 and 0.0 <= tgc <= 100.0
    assert (sgc == 100.0) == (tgc == 100.0)
    if tgc == 0.0:
        assert sgc == 0.0
