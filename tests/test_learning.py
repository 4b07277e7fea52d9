"""Learning on the CPU: GRPO, SGCD and SDPO raise a tiny model's held-out success on the toy benchmark.

Path to first successes (issue: a tiny random model never emits a well-formed tool call): a
supervised warm start on scripted level-0 solutions teaches the tool-call syntax; 60 steps make
the syntax sharp while the colour→number code is still at chance (it is one token of ~45 per
solution). GRPO then has mixed sibling groups and learns the code from reward alone.
Fixed seeds; 64 held-out level-0 tasks; greedy success before and after is the measure.
The tiny model here has 32-wide heads, so its rollouts are sampled by vLLM (harness/vllm_sampler.py)
with the trainer's weights pushed after every step: every update's rollout_logprob_diff shows
the engine sampled from the weights the trainer holds.
"""

from __future__ import annotations

import json

import pytest

from harness.loop import LoopConfig
from sgcd.rollout import evaluate_policy
from sgcd.trainer import TrainConfig, Trainer


@pytest.fixture(scope="module")
def warm_start(tmp_path_factory):
    import torch

    from harness.tiny_model import build_tiny_model
    from harness.toy.benchmark import scripted_corpus

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("learn")
    tiny = build_tiny_model(root / "tiny", scripted_corpus(300), vocab_size=512, hidden=128, max_context=1024)
    cfg = TrainConfig(algo="sft", benchmark="toy", benchmark_args={"levels": "0"}, model=f"local/{tiny}",
                      updates=60, sft_examples_per_update=8, lr=3e-3, micro_batch_rows=8, checkpoint_every=60)  # fmt: skip
    Trainer(cfg, root / "sft").run(progress=False)
    return root, root / "sft" / "train" / "checkpoints" / "step-60"


def train_and_measure(warm_start, algo: str, lr: float = 2e-4, lora: dict | None = None, out: str | None = None,
                      **algo_config):  # fmt: skip
    """Train `algo` from the warm start on the shared budget; held-out greedy success before and
    after (64 level-0 test tasks), the metrics rows, and a message with the figures."""
    root, ckpt = warm_start
    cfg = TrainConfig(algo=algo, benchmark="toy", benchmark_args={"levels": "0"}, model=f"local/{ckpt}",
                      updates=12, groups_per_update=4, group_size=8, max_groups_sampled=8, lr=lr,
                      max_new_tokens=24, max_steps=6, max_errors=2, micro_batch_rows=16, checkpoint_every=12,
                      lora=lora or {}, algo_config=algo_config)  # fmt: skip
    trainer = Trainer(cfg, root / (out or algo))
    assert trainer.policy.backend == "vllm", trainer.policy.sampler.fallback
    held_out = trainer.bench.split_ids("test")[:64]
    loop = LoopConfig(max_steps=6, max_errors=2)
    before = evaluate_policy(trainer.bench, held_out, trainer.policy, loop, max_new_tokens=24)
    rows = trainer.run(progress=False)
    after = evaluate_policy(trainer.bench, held_out, trainer.policy, loop, max_new_tokens=24)
    curve = [round(r.get("success_rate", 0.0), 2) for r in rows]
    msg = f"{algo}: held-out greedy success {before:.3f} -> {after:.3f} over 64 tasks; training success per update {curve}"
    print(msg)
    return before, after, rows, msg


def test_grpo_raises_held_out_success_on_toy(warm_start):
    before, after, rows, msg = train_and_measure(warm_start, "grpo")
    assert after >= before + 0.25, msg
    assert sum(r.get("groups_kept", 0) for r in rows) > 0, msg
    updates = [r for r in rows if "loss" in r and r["loss"] is not None]
    assert updates and all(r["rollout_logprob_diff"] <= 1e-3 for r in updates), [r.get("rollout_logprob_diff") for r in rows]


def test_sgcd_raises_held_out_success_on_toy(warm_start, monkeypatch):
    """Same warm start, budget and seeds as the GRPO test. SGCD's credit comes from a scripted
    OpenAI-compatible server on 127.0.0.1 (credit follows each sibling's success)."""
    from credit_server import CreditServer

    with CreditServer("good") as srv:
        monkeypatch.setenv("SGCD_CREDIT_BASE_URL", srv.base_url)
        monkeypatch.setenv("SGCD_CREDIT_MODEL", "credit")
        before, after, rows, msg = train_and_measure(warm_start, "sgcd", provider="openai")
    assert after >= before + 0.25, msg
    assert srv.calls > 0
    assert all(r["credit_parsed"] == r["credit_groups"] for r in rows if "credit_groups" in r)


def test_sdpo_raises_held_out_success_on_toy(warm_start):
    """Same warm start, budget and seeds; SDPO's defaults. Pure SDPO (λ = 1: no policy-gradient
    term): the teacher is an EMA of the policy (τ = 0.05) reprompted with a successful sibling's
    solution and the environment's feedback on the trajectory; the student learns only by
    distillation towards it. (A live-policy teacher collapsed on this budget: it drifts with the
    student.)"""
    before, after, rows, msg = train_and_measure(warm_start, "sdpo")
    assert after >= before + 0.25, msg
    assert all(r["distill_tokens"] > 0 for r in rows if "distill_tokens" in r), msg


def test_grpo_with_two_processes_raises_held_out_success_on_toy(warm_start):
    """The GRPO test's warm start, budget and seeds, trained by two processes (gloo DDP, one vLLM
    engine each, sharing accelerate's process group): each samples half of every wave's groups
    and trains on half of the kept ones."""
    from harness.policy import Policy
    from sgcd.launch import run_processes, train_worker

    root, ckpt = warm_start
    cfg = TrainConfig(algo="grpo", benchmark="toy", benchmark_args={"levels": "0"}, model=f"local/{ckpt}",
                      updates=12, groups_per_update=4, group_size=8, max_groups_sampled=8, lr=2e-4,
                      max_new_tokens=24, max_steps=6, max_errors=2, micro_batch_rows=16, checkpoint_every=12)  # fmt: skip
    assert run_processes(train_worker, (cfg, root / "grpo-2proc", False), 2) == 12
    from harness.benchmarks import get_benchmark

    bench = get_benchmark("toy", levels="0")
    held_out = bench.split_ids("test")[:64]
    loop = LoopConfig(max_steps=6, max_errors=2)
    before = evaluate_policy(bench, held_out, Policy.load(ckpt), loop, max_new_tokens=24)
    trained = Policy.load(root / "grpo-2proc" / "train" / "checkpoints" / "step-12")
    after = evaluate_policy(bench, held_out, trained, loop, max_new_tokens=24)
    rows = [json.loads(x) for x in (root / "grpo-2proc" / "train" / "metrics.jsonl").read_text().splitlines()]
    msg = f"grpo, 2 processes: held-out greedy success {before:.3f} -> {after:.3f}; per update {[r.get('success_rate') for r in rows]}"
    print(msg)
    assert after >= before + 0.25, msg
    updates = [r for r in rows if r.get("loss") is not None]
    assert updates and all(len(r["process_rows"]) == 2 for r in updates)
    assert all(r["rollout_logprob_diff"] <= 1e-3 for r in updates), [r.get("rollout_logprob_diff") for r in rows]


def test_grpo_with_a_lora_adapter_raises_held_out_success_on_toy(warm_start):
    """The GRPO test's warm start, budget and seeds; only a rank-16 adapter on every linear layer
    trains (at a higher lr, as LoRA needs). The sampler gets the merged weights after every step;
    the checkpoint is the merged folder with the adapter beside it."""
    before, after, rows, msg = train_and_measure(warm_start, "grpo", lr=2e-3, lora={"r": 16, "alpha": 32},
                                                 out="grpo-lora")  # fmt: skip
    assert after >= before + 0.25, msg
    updates = [r for r in rows if r.get("loss") is not None]
    assert updates and all(r["rollout_logprob_diff"] <= 1e-3 for r in updates), [r.get("rollout_logprob_diff") for r in rows]
    root, _ = warm_start
    assert (root / "grpo-lora" / "train" / "checkpoints" / "step-12" / "adapter" / "adapter_config.json").is_file()
