"""One protocol per benchmark, one source for every number: the entry points and the summaries agree."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from click.testing import CliRunner

from harness.benchmarks import EvalProtocol, benchmark_protocol, resolve_protocol
from harness.cli import main
from harness.eval_run import PROTOCOL_COLUMNS, EvalConfig, results_from_logs
from harness.floors import null_floor
from harness.metrics import clustered_se
from harness.summary import summarize


def test_each_benchmark_declares_its_protocol_and_overrides_are_named():
    assert benchmark_protocol("toy") == EvalProtocol(max_steps=12, max_errors=3, max_tokens=64, user=False)
    assert benchmark_protocol("tau3-airline") == EvalProtocol(max_steps=200, max_errors=10, max_tokens=None, user=True)
    assert benchmark_protocol("appworld") == EvalProtocol(max_steps=100, max_errors=50, max_tokens=2048, user=False)
    same = resolve_protocol("toy", max_steps=12)  # the benchmark's own value given explicitly: no override
    assert same.protocol == benchmark_protocol("toy") and same.overridden == ()
    changed = resolve_protocol("toy", max_steps=20, max_tokens=32)
    assert (changed.protocol.max_steps, changed.protocol.max_errors, changed.protocol.max_tokens) == (20, 3, 32)
    assert changed.overridden == ("max_steps", "max_tokens")
    assert changed.row_columns() == {"max_steps": 20, "max_errors": 3, "max_tokens": 32,
                                     "protocol_overrides": "max_steps,max_tokens"}  # fmt: skip
    assert changed.to_dict()["default"] == benchmark_protocol("toy").to_dict()
    with pytest.raises(KeyError, match="unknown benchmark"):
        benchmark_protocol("nope")


def test_task_and_cli_defaults_come_from_the_benchmark():
    from harness.tasks import benchmark_task, toy

    for name in ("toy", "tau3-airline"):
        task = benchmark_task(name, "test", 1, 0.0, 0, None, None, None, 1, None)
        assert task.metadata["protocol"]["overridden"] == []
        assert {k: task.metadata[k] for k in ("max_steps", "max_errors", "max_tokens")} == {
            k: getattr(benchmark_protocol(name), k) for k in ("max_steps", "max_errors", "max_tokens")
        }
    assert toy(limit=1, max_errors=5).metadata["protocol"]["overridden"] == ["max_errors"]
    import inspect

    from harness.tasks import LOOP_ARGS  # the task arguments that are not the benchmark's options

    assert LOOP_ARGS == tuple(p for p in inspect.signature(benchmark_task).parameters
                              if p not in ("benchmark", "benchmark_args"))  # fmt: skip
    with pytest.raises(ValueError, match="unknown -T key"):
        toy(limit=1, max_step=5)  # a misspelt limit is refused, not taken for an option
    cfg = EvalConfig("toy", "test", "local/x")
    assert cfg.protocol().protocol == benchmark_protocol("toy")


def _cli_eval(model: str, out, *extra: str) -> None:
    result = CliRunner().invoke(main, ["eval", "--benchmark", "toy", "--model", model, "--limit", "3",
                                       "--out", str(out), "--display", "none", *extra])  # fmt: skip
    assert result.exit_code == 0, result.output


def test_inspect_task_and_sgcd_bench_eval_give_identical_tables(toy_tiny_dir, tmp_path):
    """`inspect eval harness/tasks.py@toy` and `sgcd-bench eval --benchmark toy` on the same tiny
    model and tasks: the same rows, protocol columns included; summary.md and the report agree."""
    from inspect_ai import eval as inspect_eval

    from reports.analysis import summarize_run
    from reports.tidy import load_run

    model = f"local/{toy_tiny_dir}"
    logs = inspect_eval("harness/tasks.py@toy", model=model, task_args={"limit": 3}, log_dir=str(tmp_path / "logs"),
                        display="none")  # fmt: skip
    assert logs[0].status == "success"
    from_inspect = pd.DataFrame(results_from_logs(tmp_path / "logs", EvalConfig("toy", "test", model, limit=3)))
    _cli_eval(model, tmp_path / "cli")
    from_cli = pd.read_parquet(tmp_path / "cli" / "results.parquet")
    assert len(from_cli) == 3
    assert (from_cli[PROTOCOL_COLUMNS[:3]] == [12, 3, 64]).all().all()
    assert (from_cli["protocol_overrides"] == "").all()
    timing = ["seconds"]  # the only column that may differ between two runs
    pd.testing.assert_frame_equal(from_inspect.drop(columns=timing), from_cli.drop(columns=timing), check_dtype=False)

    manifest = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    assert manifest["protocol"]["overridden"] == [] and manifest["max_steps"] == 12 and manifest["max_tokens"] == 64

    # one floor, one SE: summary.md's numbers are the report's numbers (the toy has a floor in both)
    rows = from_cli.to_dict("records")
    summary = summarize(rows, [1])
    report = summarize_run(load_run(tmp_path / "cli"), "reward", rng=0, n_resamples=200)
    assert summary["null_floor"] == null_floor(dict(zip(from_cli.task_id, from_cli.null_success, strict=True)))
    assert report.floor.value == pytest.approx(summary["null_floor"])
    assert math.isclose(report.se, summary["pass@1_se"], rel_tol=1e-12) or (
        math.isnan(report.se) and math.isnan(summary["pass@1_se"])
    )
    assert "null-agent floor (same tasks)" in (tmp_path / "cli" / "summary.md").read_text()

    # an explicit override is recorded in the manifest and in every row
    _cli_eval(model, tmp_path / "short", "--max-steps", "4")
    short = pd.read_parquet(tmp_path / "short" / "results.parquet")
    assert (short["max_steps"] == 4).all() and (short["protocol_overrides"] == "max_steps").all()
    assert (short["turns"] <= 4).all()
    assert json.loads((tmp_path / "short" / "manifest.json").read_text())["protocol"]["overridden"] == ["max_steps"]


def test_one_clustered_se_for_summary_and_reports():
    """The summary clusters pass@1's SE by scenario where rows have one (as the reports do)."""
    rows = []
    for task, scen, reward in (("a_1", "a", 1.0), ("a_2", "a", 1.0), ("b_1", "b", 0.0), ("b_2", "b", 1.0),
                               ("c_1", "c", 0.0), ("c_2", "c", 0.0)):  # fmt: skip
        rows.append({"task_id": task, "scenario_id": scen, "seed": 0, "reward": reward, "success": reward == 1.0,
                     "end_reason": "agent_stop", "infra_error": False})  # fmt: skip
    s = summarize(rows, [1])
    means = [r["reward"] for r in rows]
    assert s["pass@1_se"] == pytest.approx(clustered_se(means, [r["scenario_id"] for r in rows]))
    assert s["pass@1_se"] != pytest.approx(clustered_se(means))  # clustering matters here
    assert s["se_cluster_by"] == "scenario"


def _appworld_rows(seeds: dict[int, dict[str, bool | None]]) -> list[dict]:
    return [{"task_id": t, "scenario_id": t.split("_")[0], "seed": seed, "reward": float(bool(ok)),
             "success": bool(ok), "infra_error": ok is None, "end_reason": "infra_error" if ok is None else "agent_stop"}
            for seed, results in seeds.items() for t, ok in results.items()]  # fmt: skip


@pytest.mark.parametrize("seeds", [
    {0: {"aaaaaaa_1": True, "aaaaaaa_2": True, "bbbbbbb_1": True, "bbbbbbb_2": False, "ccccccc_1": None}},
    {0: {"aaaaaaa_1": True, "aaaaaaa_2": True, "bbbbbbb_1": False}, 1: {"aaaaaaa_1": True, "aaaaaaa_2": False,
                                                                       "bbbbbbb_1": None}},
])  # fmt: skip
def test_one_sgc_for_appworld_metrics_summary_and_reports(seeds, tmp_path):
    """AppWorld's SGC (×100), the eval summary's and the report's are one computation: the same
    value, and the same SD (NaN with one seed in all three)."""
    from harness.appworld.metrics import metrics_by_seed
    from harness.benchmarks import benchmark_class
    from reports.analysis import summarize_run
    from reports.tidy import load_run

    rows = _appworld_rows(seeds)
    m = metrics_by_seed(rows)
    summary = summarize(rows, [1], benchmark_class("appworld").summary_metrics)  # what eval passes
    df = pd.DataFrame([{**r, "model": "m", "benchmark": "appworld", "split": "dev"} for r in rows])
    df.to_csv(tmp_path / "results.csv", index=False)
    group = summarize_run(load_run(tmp_path / "results.csv"), "success", rng=0, n_resamples=100).group
    assert group is not None
    assert summary["sgc_mean"] == pytest.approx(m.sgc_mean) == pytest.approx(100 * group.mean)
    for sd in (m.sgc_sd, summary["sgc_sd"], 100 * group.sd_seeds):
        if len(seeds) == 1:
            assert math.isnan(sd)
        else:
            assert sd == pytest.approx(m.sgc_sd)
    if len(seeds) == 1:
        assert "no SD (one seed)" in summary_markdown_of(summary)


def summary_markdown_of(summary: dict) -> str:
    from harness.summary import summary_markdown

    manifest = {"benchmark": "appworld", "split": "dev", "model": "m", "user_model": "none", "seeds": [0],
                "temperature": 0.0, "max_steps": 100, "max_errors": 50}  # fmt: skip
    return summary_markdown(summary, manifest)


def test_credit_counts_are_counted_once():
    from harness.credit_counts import credit_counts

    groups = [{"provider": "local/x", "reference": {"steps": []}}, {"provider": "local/x", "reference": None},
              {"provider": "zero", "reference": None}]  # fmt: skip
    assert credit_counts(groups) == {"groups": 3, "parsed": 1, "fallbacks": 1}


def test_the_cli_shows_no_raw_transformers_progress_bars(toy_tiny_dir, tmp_path):
    """A person reads the project's own lines: loading a local model prints no "Loading weights" bar."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    cmd = [sys.executable, "-m", "harness.cli", "eval", "--benchmark", "toy", "--model", f"local/{toy_tiny_dir}",
           "--limit", "1", "--out", str(tmp_path / "run"), "--display", "plain"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "run" / "results.csv").is_file()
    assert "Loading weights" not in proc.stdout + proc.stderr
