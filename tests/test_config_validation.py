"""Bad configs are refused before any work: every config dataclass (the algorithms' own
included) checks its types and ranges, unknown keys are named with the valid ones, and the
message names the key (and its table) and what is allowed."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.configs import ConfigError
from sgcd.trainer import TrainConfig

BAD_TRAIN = [
    ({"updates": "two"}, r"^updates: expected an integer; got 'two'"),
    ({"updates": 1.5}, r"^updates: expected an integer; got 1.5"),
    ({"updates": True}, r"^updates: expected an integer"),
    ({"updates": 0}, r"^updates: must be at least 1; got 0"),
    ({"updates": -3}, r"^updates: must be at least 1"),
    ({"group_size": 1}, r"^group_size: must be at least 2 with dynamic_sampling = true"),
    ({"groups_per_update": 8, "max_groups_sampled": 4}, r"^max_groups_sampled: must be at least groups_per_update"),
    ({"temperature": -0.1}, r"^temperature: must be at least 0"),
    ({"lr": float("nan")}, r"^lr: must be a finite number"),
    ({"lr": 0.0}, r"^lr: must be above 0"),
    ({"micro_batch_rows": 0}, r"^micro_batch_rows: must be at least 1"),
    ({"checkpoint_every": 0}, r"^checkpoint_every: must be at least 1"),
    ({"threads": 0}, r"^threads: must be at least 1"),
    ({"advantage": "ppo"}, r"^advantage: must be one of drgrpo \| grpo \| rloo; got 'ppo'"),
    ({"loss_agg": "sum"}, r"^loss_agg: must be one of token-mean \| seq-mean-token-mean; got 'sum'"),
    ({"top_p": 0.0}, r"^top_p: must be in \(0, 1\]"),
    ({"algo": "ppo"}, r"^algo: unknown algorithm 'ppo'; known: grpo, sdpo, sft, sgcd"),
    ({"algo": "sgcd", "algo_config": {"temperature": 0}}, r"^\[algo\] temperature: must be above 0"),
    ({"algo": "sgcd", "algo_config": {"w_min": 3.0, "w_max": 2.0}}, r"^\[algo\] w_max: must be at least w_min"),
    ({"algo": "sgcd", "algo_config": {"form": "both"}}, r"^\[algo\] form: must be one of signed \| abs"),
    ({"algo": "sgcd", "algo_config": {"provider": "gpt4"}}, r"^\[algo\] provider: must be openai \| local/PATH"),
    ({"algo": "sgcd", "algo_config": {"retries": "1"}}, r"^\[algo\] retries: expected an integer"),
    ({"algo": "sgcd", "algo_config": {"temprature": 1.0}},
     r"^\[algo\] temprature: unknown key; valid keys: provider, random_base, temperature"),
    ({"algo": "sdpo", "algo_config": {"alpha": 2}}, r"^\[algo\] alpha: must be in \[0, 1\]"),
    ({"algo": "sdpo", "algo_config": {"topk": 0}}, r"^\[algo\] topk: must be at least 1"),
    ({"algo": "grpo", "algo_config": {"w_min": 1}}, r"^\[algo\] w_min: unknown key; valid keys: \(none\)"),
    ({"backend": "tpu"}, r"^backend: must be one of auto \| vllm \| hf; got 'tpu'"),
    ({"sampler_args": {"dtyp": "float32"}}, r"^sampler_args: must be keys among dtype, .*; got 'dtyp'"),
    ({"sampler_args": {"dtype": "int3"}}, r"^sampler_args: unknown dtype 'int3'"),
]  # fmt: skip


@pytest.mark.parametrize(("keys", "message"), BAD_TRAIN)
def test_train_config_refuses_each_bad_value_naming_the_key(keys, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**keys)


def test_defaults_and_shipped_values_pass():
    TrainConfig()
    TrainConfig(algo="sgcd", algo_config={"provider": "random", "random_base": "openai"})
    TrainConfig(group_size=1, dynamic_sampling=False)


def test_train_cli_refuses_bad_keys_before_any_model_loads(tmp_path):
    """The model folder does not exist: only a config check that runs first can answer."""
    missing = f"local/{tmp_path / 'no-model'}"
    cases = [
        ("updates = 0\n", "updates: must be at least 1; got 0"),
        ('updates = "two"\n', "updates: expected an integer; got 'two'"),
        ("lerning_rate = 1e-5\n", "lerning_rate: unknown key; valid keys: algo, benchmark"),
        ("[algo]\ntemperature = 0.0\n", "[algo] temperature: must be above 0"),
        ("[algo]\nw_min = 2.0\nw_max = 1.0\n", "[algo] w_max: must be at least w_min (2.0); got 1.0"),
        ('[algo]\nprovider = "gpt"\n', "[algo] provider: must be openai | local/PATH"),
        ("updates = [\n", "not valid TOML"),
    ]
    for text, message in cases:
        cfg = tmp_path / "c.toml"
        cfg.write_text(text)
        res = CliRunner().invoke(main, ["train", "--algo", "sgcd", "--config", str(cfg), "--model", missing,
                                        "--out", str(tmp_path / "o")])  # fmt: skip
        assert res.exit_code != 0 and message in res.output and str(cfg) in res.output, (text, res.output)
        assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--limit", "-1"], "--limit must be a whole number of at least 1; got -1"),
        (["--max-steps", "-5"], "--max-steps must be a whole number of at least 1; got -5"),
        (["--max-errors", "0"], "--max-errors must be a whole number of at least 1"),
        (["--temperature", "-1"], "--temperature must be at least 0"),
    ],
)
def test_eval_cli_refuses_negative_limits_before_any_work(tmp_path, args, message):
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["eval", "--benchmark", "toy", "--model", f"local/{tmp_path / 'none'}",
                                    "--out", str(out), *args])  # fmt: skip
    assert res.exit_code != 0 and message in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert not out.exists()
