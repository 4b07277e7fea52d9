"""LoRA: the checkpoint is a merged plain folder that behaves as base + adapter, and a run resumes
from base + the checkpoint's adapter as if it had not stopped."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from harness.configs import ConfigError
from harness.loop import LoopConfig
from harness.policy import Policy
from sgcd.rollout import run_episodes
from sgcd.trainer import TrainConfig, Trainer


def _cfg(model_dir: Path, **kw) -> TrainConfig:
    base = dict(algo="sft", benchmark="toy", benchmark_args={"levels": "0"}, model=f"local/{model_dir}", updates=2,
                sft_examples_per_update=4, micro_batch_rows=2, lr=1e-2, checkpoint_every=1, keep_checkpoints=10,
                backend="hf", threads=1, lora={"r": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj", "up_proj"]})  # fmt: skip
    return TrainConfig(**{**base, **kw})


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_the_merged_checkpoint_evaluates_as_base_plus_adapter(tmp_path, toy_tiny_dir):
    from peft import PeftModel

    Trainer(_cfg(toy_tiny_dir), tmp_path).run(progress=False)
    ckpt = tmp_path / "train" / "checkpoints" / "step-2"
    merged = _weights(ckpt)
    assert not any("lora" in k or "base_layer" in k for k in merged)  # a plain Hugging Face folder
    assert max(float((merged[k] - v).abs().max()) for k, v in _weights(toy_tiny_dir).items()) > 1e-4
    plain = Policy.load(ckpt, backend="hf")
    with_adapter = Policy.load(toy_tiny_dir, backend="hf")
    with_adapter.model = PeftModel.from_pretrained(with_adapter.model, str(ckpt / "adapter")).eval()
    from harness.benchmarks import get_benchmark
    from harness.records import Sampling

    bench = get_benchmark("toy", levels="0")
    runs = [(t, i) for i, t in enumerate(bench.split_ids("test")[:6])]
    loop, greedy = LoopConfig(max_steps=3, max_errors=2), Sampling(temperature=0.0, max_tokens=16)
    a = run_episodes(bench, runs, plain, greedy, loop)
    b = run_episodes(bench, runs, with_adapter, greedy, loop)
    assert [r.messages for r in a] == [r.messages for r in b]
    assert [r.outcome.reward for r in a] == [r.outcome.reward for r in b]
    x = torch.tensor([[5, 6, 7, 8, 9, 10]])
    with torch.no_grad():
        assert float((plain.model(x).logits - with_adapter.model(x).logits).abs().max()) < 1e-5


def test_a_lora_run_resumed_from_a_checkpoint_ends_where_an_uninterrupted_one_does(tmp_path, toy_tiny_dir):
    cfg = _cfg(toy_tiny_dir, updates=4)
    Trainer(cfg, tmp_path / "straight").run(progress=False)
    shutil.copytree(tmp_path / "straight", tmp_path / "resumed")
    ckpts = tmp_path / "resumed" / "train" / "checkpoints"
    for step in (3, 4):  # as if it had stopped after step 2
        shutil.rmtree(ckpts / f"step-{step}")
    tr = Trainer(cfg, tmp_path / "resumed")
    assert tr.start_step == 2
    tr.run(progress=False)
    a, b = _weights(tmp_path / "straight" / "train" / "checkpoints" / "step-4"), _weights(ckpts / "step-4")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6


@pytest.mark.parametrize("lora, key", [({"r": 0}, "r"), ({"target_modules": []}, "target_modules"),
                                       ({"rank": 8}, "rank"), ({"dropout": 1.0}, "dropout")])  # fmt: skip
def test_a_bad_lora_table_is_refused_naming_the_key(toy_tiny_dir, lora, key):
    with pytest.raises(ConfigError) as e:
        _cfg(toy_tiny_dir, lora=lora)
    assert key in str(e.value)
