"""`--dry-run`: memory per device on paper, from the model's config.json and the accelerate config."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from sgcd.sizing import GIB, Layout, estimate
from sgcd.trainer import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "sgcd-bench")


@pytest.fixture(scope="module")
def qwen7b_shape(tmp_path_factory) -> Path:
    """A config.json with Qwen2.5-7B's published shape (no weights: the dry run needs none)."""
    from transformers import Qwen2Config

    folder = tmp_path_factory.mktemp("q7")
    Qwen2Config(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                num_key_value_heads=4, vocab_size=152064, max_position_embeddings=32768,
                tie_word_embeddings=False).save_pretrained(folder)  # fmt: skip
    return folder


def test_the_parts_follow_the_formulas_and_shard_over_fsdp_processes(qwen7b_shape):
    cfg = TrainConfig(model=str(qwen7b_shape), groups_per_update=8, micro_batch_rows=1, gradient_checkpointing=True,
                      sampler_args={"max_context": 8192, "gpu_memory_utilization": 0.35})  # fmt: skip
    fsdp = estimate(cfg, Layout.read(ROOT / "configs/accelerate/fsdp2-8gpu.yaml"), qwen7b_shape, 80)
    ddp = estimate(cfg, Layout.read(ROOT / "configs/accelerate/ddp-8gpu.yaml"), qwen7b_shape, 80)
    p = fsdp["parameters"]
    assert 7.5e9 < p < 7.7e9  # Qwen2.5-7B has 7.62B parameters
    full, lora = fsdp["columns"]["full"], fsdp["columns"]["lora"]
    assert full["parts"]["weights"] == 4 * p / 8 and full["parts"]["optimizer"] == 8 * p / 8
    assert ddp["columns"]["full"]["parts"]["weights"] == 4 * p  # DDP: every GPU holds all of it
    assert lora["trainable"] < p / 100 and lora["parts"]["optimizer"] == 8 * lora["trainable"] / 8
    assert full["fits"] and not ddp["columns"]["full"]["fits"]  # 7B full FT needs sharding on 80 GB
    assert fsdp["engine"]["weights"] == 2 * p and fsdp["engine"]["fits"]
    nockpt = estimate(TrainConfig(**{**cfg.__dict__, "gradient_checkpointing": False}),
                      Layout.read(ROOT / "configs/accelerate/fsdp2-8gpu.yaml"), qwen7b_shape, 80)  # fmt: skip
    assert nockpt["columns"]["full"]["parts"]["activations (one micro-batch)"] > 4 * full["parts"]["activations (one micro-batch)"]


def test_the_paper_configs_carry_the_figures_their_dry_run_prints(tmp_path, qwen7b_shape):
    """The sizing comment in configs/tau3-airline-paper.toml is what `experiment --dry-run` says
    for a 7B-shaped base model (so the comment cannot go stale unnoticed)."""
    text = (ROOT / "configs/tau3-airline-paper.toml").read_text()
    cfg = tmp_path / "paper.toml"
    cfg.write_text(re.sub(r'(?m)^base_model = .*$', f'base_model = "{qwen7b_shape}"', text))
    out = subprocess.run([CLI, "experiment", str(cfg), "--out", str(tmp_path / "exp"), "--dry-run"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    total = re.search(r"\| \*\*total\*\* \| \*\*([\d.]+)\*\* \| \*\*([\d.]+)\*\* \|", out.stdout)
    assert total and f"= {total.group(1)} GiB" in text.replace("\n# ", " ") and f"LoRA r = 16: {total.group(2)} GiB" in text
    assert "| fits (training and the engine) | yes | yes |" in out.stdout
    assert not (tmp_path / "exp").exists()  # nothing ran, nothing written


def test_train_dry_run_refuses_a_budget_the_launch_cannot_split(tmp_path, toy_tiny_dir):
    out = subprocess.run([CLI, "train", "--model", f"local/{toy_tiny_dir}", "--out", str(tmp_path / "run"), "--dry-run",
                          "--accelerate-config", str(ROOT / "configs/accelerate/fsdp2-8gpu.yaml")],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode != 0 and "groups_per_update: divisible by the 8 processes" in out.stderr
    ok = subprocess.run([CLI, "train", "--model", f"local/{toy_tiny_dir}", "--out", str(tmp_path / "run"),
                         "--dry-run"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert ok.returncode == 0 and "| fits (training and the engine) | yes | yes |" in ok.stdout
    assert not (tmp_path / "run").exists()
    assert 0 < estimate(TrainConfig(model=str(toy_tiny_dir)), Layout(), toy_tiny_dir, 80)["columns"]["full"]["need"] < GIB
