"""Several training processes (gloo on the CPU): N processes take the update one process takes.

Each launch here is real: `sgcd-bench train --processes 2` or sgcd/launch.py's elastic agent,
two processes joined by accelerate's DDP. The comparisons are against one plain process on the
same data; float32 sums in another order agree to ~1e-7.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sgcd.trainer import TrainConfig, Trainer

CLI = str(Path(sys.executable).parent / "sgcd-bench")
ACCELERATE = str(Path(sys.executable).parent / "accelerate")
ROOT = Path(__file__).resolve().parents[1]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _max_diff(a: Path, b: Path) -> float:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa)


def _metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "train" / "metrics.jsonl").read_text().splitlines()]


SFT = """algo = "sft"
benchmark = "toy"
updates = {updates}
sft_examples_per_update = 4
micro_batch_rows = 1
lr = 1e-3
checkpoint_every = 1
backend = "hf"
[benchmark_args]
levels = "0"
"""


def test_two_processes_take_the_same_sft_steps_as_one_each_on_half_the_rows(tmp_path, toy_tiny_dir):
    cfg = tmp_path / "sft.toml"
    cfg.write_text(SFT.format(updates=2))
    common = ["train", "--config", str(cfg), "--model", f"local/{toy_tiny_dir}"]
    subprocess.run([CLI, *common, "--out", str(tmp_path / "one")], check=True, capture_output=True, timeout=300)
    subprocess.run([CLI, *common, "--out", str(tmp_path / "two"), "--processes", "2"], check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    # the same two processes started by accelerate's launcher with the shipped CPU config
    subprocess.run([ACCELERATE, "launch", "--config_file", str(ROOT / "configs/accelerate/cpu-2proc.yaml"), "-m",
                    "harness.cli", *common, "--out", str(tmp_path / "launched")], check=True, capture_output=True,
                   timeout=300)  # fmt: skip
    ckpt = Path("train/checkpoints/step-2")
    moved = _max_diff(tmp_path / "one" / ckpt, toy_tiny_dir.parent / toy_tiny_dir.name)
    assert moved > 1e-4  # the steps did move the weights
    assert _max_diff(tmp_path / "one" / ckpt, tmp_path / "two" / ckpt) < 1e-5
    assert _max_diff(tmp_path / "one" / ckpt, tmp_path / "launched" / ckpt) < 1e-5
    assert json.loads((tmp_path / "launched" / "train" / "manifest.json").read_text())["processes"] == 2
    one, two = _metrics(tmp_path / "one"), _metrics(tmp_path / "two")
    for a, b in zip(one, two, strict=True):
        assert abs(a["nll"] - b["nll"]) < 1e-5 and a["policy_tokens"] == b["policy_tokens"]
        # each process computed only its half: 2 of the 4 conversations' rows each
        assert len(b["process_rows"]) == 2 and sum(b["process_rows"]) == a["process_rows"][0]
        assert all(0 < r < a["process_rows"][0] for r in b["process_rows"])
    manifest = json.loads((tmp_path / "two" / "train" / "manifest.json").read_text())
    assert manifest["processes"] == 2 and manifest["distributed"] == "MULTI_CPU"


@pytest.fixture(scope="module")
def recorded_groups(tmp_path_factory, toy_tiny_dir):
    """Four groups of two siblings sampled once, with the first sibling of each made successful
    (the tiny random model never succeeds; the update's maths is under test, not its skill)."""
    root = tmp_path_factory.mktemp("groups")
    tr = Trainer(_fixed_cfg(toy_tiny_dir, "grpo"), root)
    _, collected = tr.rollout_batch(1)
    for group in collected.kept:
        for i, res in enumerate(group.results):
            res.outcome.success = i == 0
            res.outcome.reward = float(i == 0)
    path = root / "groups.pkl"
    path.write_bytes(pickle.dumps(collected.kept))
    return path


def _fixed_cfg(model_dir: Path, algo: str, **algo_config) -> TrainConfig:
    return TrainConfig(algo=algo, benchmark="toy", benchmark_args={"levels": "0"}, model=f"local/{model_dir}",
                       updates=1, groups_per_update=4, group_size=2, dynamic_sampling=False, max_new_tokens=12,
                       max_steps=3, max_errors=2, micro_batch_rows=2, lr=1e-3, backend="hf", threads=1,
                       algo_config=algo_config)  # fmt: skip


@pytest.mark.parametrize("algo, algo_config", [("grpo", {}), ("sdpo", {"teacher": "live"}),
                                                ("sgcd", {"provider": "oracle"})])  # fmt: skip
def test_an_update_on_recorded_groups_split_over_two_processes_equals_one(tmp_path, toy_tiny_dir, recorded_groups,
                                                                          algo, algo_config):  # fmt: skip
    """The same four groups: all in one process, or two per process. GRPO's token-mean, SDPO's
    distillation term (normalised by the eligible tokens of every process) and SGCD's credit
    weights (the oracle's references) give the same step."""
    from dist_worker import fixed_update

    from sgcd.launch import run_processes

    cfg = _fixed_cfg(toy_tiny_dir, algo, **algo_config)
    alone = fixed_update(cfg, tmp_path / "one", recorded_groups)
    split = run_processes(fixed_update, (cfg, tmp_path / "two", recorded_groups), 2)
    ckpt = Path("train/checkpoints/step-1")
    assert _max_diff(tmp_path / "one" / ckpt, toy_tiny_dir) > 1e-5
    assert _max_diff(tmp_path / "one" / ckpt, tmp_path / "two" / ckpt) < 1e-5
    assert abs(alone["loss"] - split["loss"]) < 1e-5 and alone["policy_tokens"] == split["policy_tokens"]
    assert split["process_rows"][0] > 0 and split["process_rows"][1] > 0
    if algo == "sgcd":  # one audit file for the step, with every process's groups
        audit = json.loads((tmp_path / "two" / "train" / "credit" / "step-1.json").read_text())
        assert len(audit["groups"]) == 4 and len(audit["trajectories"]) == 8
        assert split["credit_groups"] == 4 and abs(alone["weight_std"] - split["weight_std"]) < 1e-5


def test_a_budget_that_does_not_divide_over_the_processes_is_refused_before_any_rollout(tmp_path, toy_tiny_dir):
    cfg = tmp_path / "sft.toml"
    cfg.write_text(SFT.format(updates=1).replace("sft_examples_per_update = 4", "sft_examples_per_update = 3"))
    out = subprocess.run([CLI, "train", "--config", str(cfg), "--model", f"local/{toy_tiny_dir}", "--out",
                          str(tmp_path / "run"), "--processes", "2"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode != 0
    assert "sft_examples_per_update" in out.stderr and "divisible by the 2 processes" in out.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without GPUs")
def test_a_gpu_accelerate_config_on_a_machine_without_gpus_is_a_clear_error_before_anything_runs(tmp_path, toy_tiny_dir):
    cfg = tmp_path / "sft.toml"
    cfg.write_text(SFT.format(updates=1))
    # the shipped 8-GPU FSDP2 config, with 2 processes (8 would only take longer to refuse)
    out = subprocess.run([ACCELERATE, "launch", "--config_file", str(ROOT / "configs/accelerate/fsdp2-8gpu.yaml"),
                          "--num_processes", "2", "-m", "harness.cli", "train", "--config", str(cfg), "--model", f"local/{toy_tiny_dir}", "--out",
                          str(tmp_path / "run")], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode != 0
    assert "Error: the accelerate config asks for FSDP, which accelerate runs on GPUs only" in out.stderr
    assert not (tmp_path / "run").exists()


def _children(pid: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _alive(pids: list[int]) -> list[int]:
    import psutil

    return [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def test_a_two_process_run_killed_by_sigkill_resumes_with_nothing_lost_or_doubled(tmp_path, toy_tiny_dir):
    """SIGKILL to the launching command: no process of the launch lives on; the same command
    resumes from the last checkpoint, and the final weights are those of an uninterrupted run."""
    cfg = tmp_path / "sft.toml"
    cfg.write_text(SFT.format(updates=5))
    cmd = [CLI, "train", "--config", str(cfg), "--model", f"local/{toy_tiny_dir}", "--out", str(tmp_path / "run"),
           "--processes", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = tmp_path / "run" / "train" / "checkpoints"
    deadline = time.time() + 240
    while not (ckpts / "step-2" / "trainer_state.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    ranks = _children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (ckpts / "step-2").is_dir() and ranks
    deadline = time.time() + 30
    while _alive(ranks) and time.time() < deadline:
        time.sleep(0.1)
    assert not _alive(ranks), "a process of the killed launch is still running"
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    rows = _metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    assert json.loads((tmp_path / "run" / "train" / "manifest.json").read_text())["resumed_from"]
    subprocess.run([CLI, "train", "--config", str(cfg), "--model", f"local/{toy_tiny_dir}", "--out",
                    str(tmp_path / "straight")], check=True, capture_output=True, timeout=300)  # fmt: skip
    assert _max_diff(ckpts / "step-5", tmp_path / "straight" / "train" / "checkpoints" / "step-5") < 1e-5


def test_a_process_that_dies_stops_the_launch_naming_it(tmp_path, toy_tiny_dir):
    cfg = tmp_path / "sft.toml"
    cfg.write_text(SFT.format(updates=200))
    cmd = [CLI, "train", "--config", str(cfg), "--model", f"local/{toy_tiny_dir}", "--out", str(tmp_path / "run"),
           "--processes", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (tmp_path / "run" / "train" / "checkpoints" / "step-1").exists() and time.time() < deadline:
        time.sleep(0.05)
    import psutil

    workers = [p for p in _children(proc.pid) if "spawn_main" in " ".join(psutil.Process(p).cmdline())]
    assert len(workers) == 2
    os.kill(workers[1], signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert re.search(r"process [01] of 2 failed \(signal SIGKILL\)", err), err[-2000:]
    assert not _alive(workers)
