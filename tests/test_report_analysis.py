"""reports.analysis and reports.verdict: summaries, paired comparisons, training seeds, verdicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.metrics import pass_hat_k_mean
from reports import analysis
from reports.synthetic import tidy_table
from reports.tidy import Run, normalize
from reports.verdict import comparison_verdict, improvement_verdict, run_verdict


def _airline_source() -> Path:
    """τ³-airline files: the shared copy beside the checkout (as make does), else pulled data."""
    from harness.data import dataset_dir

    for candidate in (
        Path(__file__).resolve().parents[2] / "shared" / "data" / "tau3-airline",
        dataset_dir("tau3-airline"),
    ):
        if (candidate / "tasks.json").is_file():
            return candidate
    pytest.fail(
        "τ³-airline data not found; run `make data` (or `sgcd-bench data pull tau3-airline`)"
    )


def _run(df: pd.DataFrame, name: str = "r", manifest: dict | None = None) -> Run:
    return Run(name, Path(name), normalize(df, Path(name), manifest), manifest or {})


def _hand_table(
    model: str,
    rewards: dict[tuple[str, int], float],
    scenarios: dict[str, str] | None = None,
    infra: set[tuple[str, int]] = frozenset(),
) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "model": model,
                "benchmark": "synthetic",
                "split": "test",
                "task_id": t,
                "seed": s,
                "reward": r,
                "success": r == 1.0,
                "infra_error": (t, s) in infra,
                "scenario_id": (scenarios or {}).get(t, ""),
            }
            for (t, s), r in rewards.items()
        ]
    )


def test_summary_hand_case():
    # task x: seeds 1, 0 -> 0.5; task y: 1, 1 -> 1; task z: 0, infra -> 0. Mean over tasks 0.5.
    rewards = {
        ("x", 0): 1.0,
        ("x", 1): 0.0,
        ("y", 0): 1.0,
        ("y", 1): 1.0,
        ("z", 0): 0.0,
        ("z", 1): 1.0,
    }
    s = analysis.summarize_run(
        _run(_hand_table("m", rewards, infra={("z", 1)})), rng=0, n_resamples=500
    )
    assert s.mean == pytest.approx(0.5) and s.n_tasks == 3 and s.dropped_infra == 1
    # seed 0 mean over x, y, z = 2/3; seed 1 over x, y = 1/2
    assert s.sd_seeds == pytest.approx(np.std([2 / 3, 1 / 2], ddof=1))
    assert s.se == pytest.approx(np.std([0.5, 1.0, 0.0], ddof=1) / np.sqrt(3))
    assert s.pass_k == {1: pytest.approx(0.5)}  # z has one trial left, so k stops at 1
    assert any("pass^k shown up to k=1" in n for n in s.notes)
    assert s.floor.value is None and "no null-agent floor" in s.floor.note
    assert "no null-agent floor is available" in run_verdict(s)


def test_summary_pass_k_uses_the_harness_implementation():
    df = tidy_table("m", rng=3, n_tasks=20, seeds=(0, 1, 2, 3))
    s = analysis.summarize_run(_run(df), rng=0, n_resamples=500)
    flags = df.groupby("task_id")["success"].apply(list).to_dict()
    assert s.pass_k == {k: pytest.approx(pass_hat_k_mean(flags, k)) for k in range(1, 5)}
    assert s.ci_t.low < s.mean < s.ci_t.high and s.ci_boot.low < s.mean < s.ci_boot.high


def test_sgc_hand_case():
    # scenario A = {a1, a2}, B = {b1}. Seed 0: A all pass, B fails -> 1/2.
    # Seed 1: A fails, B passes -> 1/2.
    # Seed 2: a2 has an infra error, so A is left out; B passes -> 1/1.
    rewards = {
        ("a1", 0): 1.0,
        ("a2", 0): 1.0,
        ("b1", 0): 0.0,
        ("a1", 1): 1.0,
        ("a2", 1): 0.0,
        ("b1", 1): 1.0,
        ("a1", 2): 1.0,
        ("a2", 2): 1.0,
        ("b1", 2): 1.0,
    }
    df = _hand_table("m", rewards, {"a1": "A", "a2": "A", "b1": "B"}, infra={("a2", 2)})
    s = analysis.summarize_run(_run(df), rng=0, n_resamples=300)
    assert s.group is not None and s.cluster_by == "scenario" and s.n_clusters == 2
    assert s.group.mean == pytest.approx(np.mean([0.5, 0.5, 1.0]))
    assert s.group.n_incomplete == 1 and s.group.n_groups == 2


def test_null_floor_from_the_airline_data(tmp_path, monkeypatch):
    from harness.data import pull

    source = _airline_source()
    monkeypatch.setenv("SGCD_DATA_DIR", str(tmp_path))
    missing = analysis.data_floor("tau3-airline", ["0", "1"])
    assert missing.value is None and "sgcd-bench data pull tau3-airline" in missing.note
    pull("tau3-airline", source=source, dest_dir=tmp_path / "tau3-airline")
    floor = analysis.data_floor("tau3-airline", [str(i) for i in range(50)])
    assert floor.value == pytest.approx(23 / 50)
    df = tidy_table("m", rng=0, n_tasks=50, benchmark="tau3-airline")
    df["task_id"] = df["task_id"].str[1:].astype(int).astype(str)
    s = analysis.summarize_run(_run(df), rng=0, n_resamples=300)
    assert s.floor.value == pytest.approx(0.46)
    assert "null-agent floor of 0.460" in run_verdict(s)
    unknown = analysis.data_floor("tau3-airline", ["999"])
    assert unknown.value is None and "unknown τ³-airline task id" in unknown.note


def test_compare_runs_drops_infra_pairs_and_averages_seeds():
    ra = {("x", 0): 0.0, ("x", 1): 0.0, ("y", 0): 1.0, ("y", 1): 0.0, ("z", 0): 0.0, ("z", 1): 1.0}
    rb = {("x", 0): 1.0, ("x", 1): 1.0, ("y", 0): 1.0, ("y", 1): 1.0, ("z", 0): 1.0, ("z", 1): 0.0}
    a = _run(_hand_table("a", ra), "A")
    b = _run(_hand_table("b", rb, infra={("z", 1)}), "B")
    c = analysis.compare_runs(a, b, rng=0, n_resamples=500)
    assert c.dropped_infra == 1 and c.n_tasks == 3 and c.n_seeds == 2
    # per task (a, b): x (0, 1), y (0.5, 1), z (0, 1) using seed 0 only -> d = 1, .5, 1
    assert c.per_task.set_index("task_id")["b"].tolist() == [1.0, 1.0, 1.0]
    assert c.result.diff == pytest.approx(2.5 / 3)
    assert c.result.p_mcnemar is None  # two seeds
    assert c.to_json()["p_mcnemar"] is None and c.to_json()["dropped_infra"] == 1


def test_compare_runs_single_seed_binary_gives_mcnemar():
    a = _run(tidy_table("a", rng=0, n_tasks=30, seeds=(0,)), "A")
    b = _run(tidy_table("b", rng=1, n_tasks=30, seeds=(0,), effect=1.0), "B")
    c = analysis.compare_runs(a, b, rng=0, n_resamples=500)
    assert c.result.p_mcnemar is not None and c.n_seeds == 1
    partial = _run(tidy_table("b", rng=1, n_tasks=30, seeds=(0,), binary=False), "P")
    assert analysis.compare_runs(a, partial, rng=0, n_resamples=300).result.p_mcnemar is None
    with pytest.raises(ValueError, match="no partner"):
        analysis.compare_runs(
            a, _run(tidy_table("b", rng=1, n_tasks=20, seeds=(0,)), "short"), rng=0
        )


def test_clustered_comparison():
    a = _run(tidy_table("a", rng=0, n_tasks=30, scenario_size=3), "A")
    b = _run(tidy_table("b", rng=1, n_tasks=30, scenario_size=3), "B")
    c = analysis.compare_runs(a, b, rng=0, n_resamples=300)
    assert c.result.n_units == 10 and any("clustered by scenario" in n for n in c.result.notes)


def test_holm_across_comparisons():
    a = _run(tidy_table("a", rng=0, n_tasks=30), "A")
    cs = [
        analysis.compare_runs(
            a, _run(tidy_table(m, rng=i, n_tasks=30, effect=e), m), rng=0, n_resamples=300
        )
        for i, (m, e) in enumerate([("b", 0.0), ("c", 1.0)], start=1)
    ]
    analysis.apply_holm(cs)
    ps = sorted(c.result.p_ttest for c in cs)
    assert sorted(c.p_holm for c in cs) == pytest.approx([2 * ps[0], max(2 * ps[0], ps[1])])
    assert "Holm-adjusted" in comparison_verdict(cs[0])


def test_verdicts_claim_only_what_the_test_shows():
    a = _run(tidy_table("a", rng=0, n_tasks=60), "A")
    big = analysis.compare_runs(
        a, _run(tidy_table("b", rng=1, n_tasks=60, effect=1.5), "B"), rng=0, n_resamples=500
    )
    text = comparison_verdict(big)
    assert (
        text.startswith("B scores higher than A by") and "95% CI" in text and "paired t p" in text
    )
    null = analysis.compare_runs(
        a, _run(tidy_table("c", rng=2, n_tasks=60), "C"), rng=0, n_resamples=500
    )
    assert null.result.p_ttest >= 0.05  # fixed seeds: a null draw that does not reject
    text = comparison_verdict(null)
    assert (
        text.startswith("No significant difference detected")
        and "minimum detectable effect" in text
    )
    assert f"{null.result.mde:.3f}" in text
    same = analysis.compare_runs(a, _run(a.df.assign(model="z"), "Z"), rng=0, n_resamples=200)
    assert "No significant difference" in comparison_verdict(same)
    assert "minimum detectable effect is undefined" in comparison_verdict(same)
    assert "0.000 over" not in comparison_verdict(same).split("minimum detectable")[1]  # no MDE of 0.000
    for t in (comparison_verdict(big), comparison_verdict(null), comparison_verdict(same)):
        assert "prove" not in t.lower()


def test_training_seed_grouping_and_pairs():
    runs, summaries = [], []
    for method, effect in (("grpo", 0.0), ("sgcd", 0.8)):
        for seed in (1, 2, 3):
            r = _run(
                tidy_table(method, rng=10 * seed + int(effect), n_tasks=30, effect=effect),
                f"{method}-{seed}",
                {"method": method, "train_seed": seed},
            )
            runs.append(r)
            summaries.append(analysis.summarize_run(r, rng=0, n_resamples=300))
    methods, improvements = analysis.training_seeds(summaries, rng=0, n_resamples=500)
    assert [m.method for m in methods] == ["grpo", "sgcd"] and methods[1].scores.shape == (3,)
    assert improvements[0].x == "sgcd" and improvements[0].y == "grpo"
    assert 0.0 <= improvements[0].ci.low <= improvements[0].p <= improvements[0].ci.high <= 1.0
    assert "P(sgcd > grpo)" in improvement_verdict(improvements[0])
    pairs, notes = analysis.comparison_pairs(runs, summaries)
    assert [(x.name, y.name) for x, y in pairs] == [
        ("grpo-1", "sgcd-1"),
        ("grpo-2", "sgcd-2"),
        ("grpo-3", "sgcd-3"),
    ]
    assert analysis.training_seeds(summaries[:1] + summaries[3:4], rng=0) is None


def test_improvement_verdict_needs_enough_training_seeds():
    from reports.stats import Interval

    few = analysis.Improvement("sgcd", "grpo", 1.0, Interval(1.0, 1.0, "x"), 3, 3)
    assert "no claim is made" in improvement_verdict(few)
    many = analysis.Improvement("sgcd", "grpo", 0.8, Interval(0.6, 0.95, "x"), 5, 6)
    assert "sgcd tends to beat grpo" in improvement_verdict(many)
    unclear = analysis.Improvement("sgcd", "grpo", 0.6, Interval(0.4, 0.8, "x"), 10, 10)
    assert "neither method is shown" in improvement_verdict(unclear)
