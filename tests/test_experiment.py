"""A miniature experiment end to end: warm start, 2 methods x 2 training seeds, evals, one report
whose numbers must match the run's own results tables; a re-run skips every finished piece."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from click.testing import CliRunner

from harness.cli import main


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, toy_tiny_dir):
    root = tmp_path_factory.mktemp("exp")
    cfg = root / "mini.toml"
    cfg.write_text(f'''
name = "mini"
benchmark = "toy"
base_model = "local/{toy_tiny_dir}"
train_seeds = [0, 1]
benchmark_args = {{ levels = "0" }}

[warm_start]
updates = 2
sft_examples_per_update = 4
lr = 1e-3

[train]
updates = 2
groups_per_update = 1
group_size = 3
dynamic_sampling = false
max_new_tokens = 12
max_steps = 4
max_errors = 2

[eval]
split = "test"
seeds = 1
temperature = 0.0
limit = 6
max_steps = 4
max_errors = 2
max_tokens = 12

[[methods]]
name = "grpo"
algo = "grpo"

[[methods]]
name = "sgcd-zero"
algo = "sgcd"
algo_config = {{ provider = "zero" }}
''')
    out = root / "run"
    result = CliRunner().invoke(main, ["experiment", str(cfg), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return cfg, out


def test_every_piece_ran_and_the_report_matches_the_results(experiment):
    _, out = experiment
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    names = [p["name"] for p in manifest["pieces"]]
    for n in ("warm start", "grpo seed 0", "sgcd-zero seed 1", "grpo-s0", "sgcd-zero-s1", "base", "report.md"):
        assert n in names
    report = (out / "report.md").read_text()
    assert "SGCD" in report or "sgcd" in report
    assert "Credit audit" in report and "zero" in report
    logs = [out / "train" / f"sgcd-zero-s{s}" / "train" / "metrics.jsonl" for s in (0, 1)]
    groups = sum(int(json.loads(ln).get("credit_groups", 0)) for log in logs for ln in log.read_text().splitlines())
    assert groups == 4  # one group per update, 2 updates, 2 seeds (no dynamic sampling here)
    assert f"sgcd-zero: zero — a parsed reference for 0 of {groups} groups, 0 fell back to zero credit" in report
    for run in ("grpo-s0", "grpo-s1", "sgcd-zero-s0", "sgcd-zero-s1", "base"):
        df = pd.read_parquet(out / "eval" / run / "results.parquet")
        assert len(df) == 6
        mean = df.groupby("task_id").reward.mean().mean()
        row = next(line for line in report.splitlines() if line.startswith(f"| {run} |") and " ± " in line)
        assert re.search(rf"\| {mean:.3f} ±", row), (run, mean, row)
    for run in ("grpo-s0", "sgcd-zero-s1"):
        m = json.loads((out / "eval" / run / "manifest.json").read_text())
        assert m["method"] in ("grpo", "sgcd-zero") and m["train_seed"] in (0, 1)


def test_rerun_skips_finished_pieces(experiment):
    cfg, out = experiment
    result = CliRunner().invoke(main, ["experiment", str(cfg), "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    statuses = {p["name"]: p["status"] for p in manifest["pieces"]}
    assert all(s.startswith("skipped") for n, s in statuses.items() if n != "report.md"), statuses


@pytest.mark.parametrize("name", ["demo.toml", "tau3-airline-paper.toml", "appworld-paper.toml"])
def test_shipped_configs_parse(name):
    from pathlib import Path

    from harness.experiment import ExperimentConfig
    from sgcd.algorithms import get_algorithm
    from sgcd.trainer import TrainConfig

    cfg = ExperimentConfig.load(Path(__file__).parents[1] / "configs" / name)
    TrainConfig(**cfg.train)  # every [train] key is a TrainConfig key
    if cfg.warm_start:
        TrainConfig(**cfg.warm_start)
    for m in cfg.methods:
        algo = get_algorithm(m.algo)
        algo.Config(**m.algo_config)  # every [algo] key is the algorithm's
