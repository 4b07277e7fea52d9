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


def test_every_piece_records_the_config_it_ran_with(experiment):
    _, out = experiment
    records = {p.name: json.loads(p.read_text()) for p in (out / "pieces").glob("*.json")}
    assert set(records) == {"train-base.json", "train-grpo-s0.json", "train-grpo-s1.json", "train-sgcd-zero-s0.json",
                            "train-sgcd-zero-s1.json", "eval-grpo-s0.json", "eval-grpo-s1.json",
                            "eval-sgcd-zero-s0.json", "eval-sgcd-zero-s1.json", "eval-base.json"}  # fmt: skip
    base = records["train-base.json"]
    assert base["config"]["algo"] == "sft" and base["config"]["lr"] == 1e-3 and base["after"] is None
    assert records["train-grpo-s1.json"]["after"] == base["config_hash"]  # a new warm start changes every run after it
    assert records["eval-grpo-s1.json"]["after"] == records["train-grpo-s1.json"]["config_hash"]
    header = (out / "report.md").read_text().split("\n\n")[1]
    assert f"warm start skipped (finished earlier) {base['config_hash'][:12]}" in header  # after the re-run above
    assert '"updates": 2' in header and '"group_size": 3' in header


SMALL = '''
name = "small"
benchmark = "toy"
base_model = "local/{model}"
benchmark_args = {{ levels = "0" }}

[train]
updates = 1
groups_per_update = 1
group_size = 2
dynamic_sampling = false
max_new_tokens = 8
max_steps = 4
max_errors = 2
lr = {lr}

[eval]
limit = 2
max_steps = 4
max_errors = 2
max_tokens = 8

[[methods]]
name = "grpo"
algo = "grpo"
'''


def test_a_changed_piece_is_refused_naming_it_and_force_redoes_it(toy_tiny_dir, tmp_path):
    """Re-running after a config change used to skip the finished pieces ("skipped (finished
    earlier)") and print the new lr in the header. Each piece records the hash of the config it
    ran with; a changed one is refused before any work, or redone with --force."""
    cfg, out = tmp_path / "small.toml", tmp_path / "run"
    cfg.write_text(SMALL.format(model=toy_tiny_dir, lr="1e-5"))
    run = CliRunner().invoke(main, ["experiment", str(cfg), "--out", str(out)])
    assert run.exit_code == 0, run.output
    records = sorted(p.name for p in (out / "pieces").glob("*.json"))
    assert records == ["eval-base.json", "eval-grpo-s0.json", "train-grpo-s0.json"]
    first = json.loads((out / "pieces" / "train-grpo-s0.json").read_text())
    assert first["config"]["lr"] == 1e-5 and len(first["config_hash"]) == 64
    metrics = (out / "train" / "grpo-s0" / "train" / "metrics.jsonl").read_text()

    cfg.write_text(SMALL.format(model=toy_tiny_dir, lr="2e-3"))
    refused = CliRunner().invoke(main, ["experiment", str(cfg), "--out", str(out)])
    assert refused.exit_code != 0
    assert "grpo seed 0 (train/grpo-s0): lr 1e-05 -> 0.002" in refused.output, refused.output
    assert "grpo-s0 (eval/grpo-s0): the piece it starts from changed" in refused.output
    assert "--force" in refused.output and "eval/base" not in refused.output  # the base did not change
    assert (out / "train" / "grpo-s0" / "train" / "metrics.jsonl").read_text() == metrics  # nothing ran
    assert json.loads((out / "pieces" / "train-grpo-s0.json").read_text()) == first

    forced = CliRunner().invoke(main, ["experiment", str(cfg), "--out", str(out), "--force"])
    assert forced.exit_code == 0, forced.output
    statuses = {p["name"]: p["status"] for p in json.loads((out / "manifest.json").read_text())["pieces"]}
    assert statuses["grpo seed 0"] == statuses["grpo-s0"] == "re-ran (config changed, --force)"
    assert statuses["base"].startswith("skipped")
    assert json.loads((out / "pieces" / "train-grpo-s0.json").read_text())["config"]["lr"] == 2e-3
    header = (out / "report.md").read_text().split("\n\n")[1]
    assert '"lr": 0.002' in header and "re-ran (config changed, --force)" in header


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("[train]\n", "[train]\nupdatez = 3\n"), "[train] updatez: unknown key; valid keys: algo, benchmark"),
        (("updates = 1\n", "updates = 0\n"), "[train] updates: must be at least 1; got 0"),
        (("updates = 1\n", 'updates = "two"\n'), "[train] updates: expected an integer; got 'two'"),
        (("updates = 1\n", "updates = 1.5\n"), "[train] updates: expected an integer; got 1.5"),
        (("[train]\n", '[train]\nalgo = "sgcd"\n'), "[train] algo: set by the experiment"),
        (("[train]\n", "[warm_start]\nlr = -1.0\n\n[train]\n"), "[warm_start] lr: must be above 0"),
        (("[train]\n", "[warm_start]\nmodel = \"x\"\n\n[train]\n"), "[warm_start] model: set by the experiment"),
        (("limit = 2\n", "limit = -1\n"), "[eval] limit: must be at least 1 (or omitted); got -1"),
        (("limit = 2\nmax_steps = 4\n", "limit = 2\nmax_steps = -5\n"), "[eval] max_steps: must be at least 1; got -5"),
        (("limit = 2\n", "limit = 2\nseed = 3\n"), "[eval] seed: unknown key; valid keys: split, seeds"),
        (("limit = 2\n", "limit = 2\nseeds = 3\n"), "3 seeds at temperature 0 with a local model"),
        (('algo = "grpo"\n', 'algo = "sgcd"\nalgo_config = { temperature = 0.0 }\n'),
         "[methods.grpo.algo] temperature: must be above 0"),
        (('algo = "grpo"\n', 'algo = "sgcd"\nalgo_config = { w_min = 3.0 }\n'),
         "[methods.grpo.algo] w_max: must be at least w_min (3.0); got 2.0"),
        (('algo = "grpo"\n', 'algo = "grpo"\nalgo_config = { temperature = 1.0 }\n'),
         "[methods.grpo.algo] temperature: unknown key"),
        (('algo = "grpo"\n', 'algo = "ppo"\n'), "[methods.grpo] algo: unknown algorithm 'ppo'"),
        (('algo = "grpo"\n', 'algo = "grpo"\nlr = 1.0\n'), "[methods[0]] lr: unknown key; valid keys: name, algo"),
        (('name = "small"\n', 'name = "small"\ntrain_seeds = [0, "1"]\n'), "train_seeds: expected a list of integers"),
        (('name = "small"\n', 'name = "small"\nseeds = 2\n'), "seeds: unknown key; valid keys: name, benchmark"),
    ],
)  # fmt: skip
def test_every_piece_is_validated_before_any_work(tmp_path, edit, message):
    """The base model does not exist and nothing is written: the check runs before the warm start."""
    text = SMALL.format(model=tmp_path / "no-model", lr="1e-5")
    assert edit[0] in text
    cfg, out = tmp_path / "bad.toml", tmp_path / "run"
    cfg.write_text(text.replace(edit[0], edit[1], 1))
    res = CliRunner().invoke(main, ["experiment", str(cfg), "--out", str(out)])
    assert res.exit_code != 0 and message in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert not out.exists()


def test_an_experiment_trains_its_pieces_with_two_processes_and_evaluates_alone(toy_tiny_dir, tmp_path):
    """`experiment --processes 2`: each training piece is a two-process launch; the evals run in
    the experiment's own process. The checkpoint is the one a one-process experiment trains."""
    from safetensors.torch import load_file

    cfg = tmp_path / "small.toml"
    cfg.write_text(SMALL.format(model=toy_tiny_dir, lr=1e-3).replace("groups_per_update = 1", "groups_per_update = 2"))
    for out, extra in ((tmp_path / "two", ["--processes", "2"]), (tmp_path / "one", [])):
        result = CliRunner().invoke(main, ["experiment", str(cfg), "--out", str(out), *extra])
        assert result.exit_code == 0, result.output
        assert (out / "report.md").is_file()
    train = "train/grpo-s0/train"
    assert json.loads((tmp_path / "two" / train / "manifest.json").read_text())["processes"] == 2
    a = load_file(str(tmp_path / "two" / train / "checkpoints/step-1/model.safetensors"))
    b = load_file(str(tmp_path / "one" / train / "checkpoints/step-1/model.safetensors"))
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5
    odd = tmp_path / "odd.toml"
    odd.write_text(SMALL.format(model=toy_tiny_dir, lr=1e-3))  # groups_per_update = 1
    result = CliRunner().invoke(main, ["experiment", str(odd), "--out", str(tmp_path / "odd"), "--processes", "2"])
    assert result.exit_code != 0 and "groups_per_update: divisible by the 2 processes" in result.output
