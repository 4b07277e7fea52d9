"""The sampler seam: vLLM and transformers behind one protocol.

vLLM's engines live for the whole test session (harness/vllm_sampler.py keeps one per model
shape per process): the tiny model's engine starts once and every test here reloads weights
into it. SmolLM2's engine (greedy equality) is the other one.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from harness.policy import Policy
from harness.sampler import SamplerOptions, vllm_unsupported


@pytest.fixture(scope="session")
def vllm_tiny_dir(tmp_path_factory):
    """A tiny random Llama vLLM's CPU kernels can run (head size 32), tokenizer from toy conversations."""
    from harness.tiny_model import build_tiny_model
    from harness.toy.benchmark import scripted_corpus

    torch.set_num_threads(2)
    return build_tiny_model(tmp_path_factory.mktemp("vllm_tiny") / "model", scripted_corpus(200), vocab_size=512,
                            heads=2, max_context=1024)  # fmt: skip


@pytest.fixture(scope="session")
def vllm_policy(vllm_tiny_dir):
    return Policy.load(vllm_tiny_dir, backend="vllm")


def _first_prompt(policy: Policy, benchmark: str, k: int = 0, **args) -> list[int]:
    """The agent's first prompt on the k-th test task (τ³: after a user's opening line)."""
    from harness.benchmarks import get_benchmark
    from harness.records import Message

    bench = get_benchmark(benchmark, **args)
    start = bench.episode(bench.split_ids("test")[k]).reset()
    messages = list(start.messages)
    if bench.has_user:
        messages.append(Message(role="user", content="Hi, I need to change my reservation."))
    return policy.render(start.system_prompt, start.tools, messages)


def _toy_prompt(policy: Policy) -> list[int]:
    return _first_prompt(policy, "toy", levels="0")


def test_unsupported_models_and_bad_options_are_named(tiny_model_dir, tmp_path):
    assert "head size 16" in (vllm_unsupported(tiny_model_dir) or "")  # the 64-wide, 4-head tiny model
    policy = Policy.load(tiny_model_dir, backend="vllm")  # asked for vLLM: falls back, and says why
    assert policy.sampler.backend == "hf" and "head size 16" in policy.sampler.fallback
    with pytest.raises(ValueError, match="unknown sampler backend 'tpu'"):
        SamplerOptions(backend="tpu")
    with pytest.raises(ValueError, match="unknown dtype"):
        SamplerOptions(dtype="int3")
    (tmp_path / "config.json").write_text("{not json")
    assert "unreadable config.json" in (vllm_unsupported(tmp_path) or "vllm is not installed")


def test_unknown_model_args_fail_before_anything_starts(tiny_model_dir, tmp_path):
    from harness.cli import main

    for arg, message in (("backend=tpu", "unknown sampler backend"), ("bakend=vllm", "unknown model arg(s) bakend"),
                         ("batch=many", "is not a int")):  # fmt: skip
        result = CliRunner().invoke(main, ["eval", "--benchmark", "toy", "--model", f"local/{tiny_model_dir}",
                                           "-M", arg, "--limit", "1", "--out", str(tmp_path / arg), "--display", "none"])  # fmt: skip
        assert result.exit_code != 0 and message in result.output, result.output
        assert not (tmp_path / arg / "logs").exists()


def test_seeds_reach_vllm(vllm_policy):
    prompt = _toy_prompt(vllm_policy)
    assert vllm_policy.sampler.backend == "vllm"
    a, b, c = vllm_policy.generate_batch([prompt] * 3, temperature=1.0, seeds=[7, 7, 8], max_new_tokens=24)
    assert a.completion_ids == b.completion_ids  # same seed, same batch: same reply
    again = vllm_policy.generate_ids(prompt, temperature=1.0, seed=7, max_new_tokens=24)
    assert again.completion_ids == a.completion_ids  # alone: the same reply again
    assert c.completion_ids != a.completion_ids  # another seed: another reply (random tiny model, T = 1)
    assert len(a.logprobs) == len(a.completion_ids) and all(lp <= 0 for lp in a.logprobs)


def test_weight_sync_after_an_optimizer_step_and_a_skipped_sync_shows(vllm_policy):
    """vLLM's returned log-probs against the trainer's own forward on the same tokens: equal to
    1e-4 at float32 after every sync; after an optimizer step without a sync the trainer's
    rollout_logprob_diff is large."""
    from sgcd.tokens import collate, segments_from_turns, token_logprobs
    from sgcd.trainer import rollout_logprob_diff

    model = vllm_policy.model
    prompt = _toy_prompt(vllm_policy)
    vllm_policy.sync_weights()

    def diff() -> float:
        outs = vllm_policy.generate_batch([prompt] * 2, temperature=1.0, seeds=[1, 2], max_new_tokens=16)
        segs = [s for i, o in enumerate(outs) for s in segments_from_turns([(o.prompt_ids, o.completion_ids)], i, [o.logprobs])]
        batch = collate(segs, [0, 0], [0.0, 1.0], [False, True], vllm_policy.pad_id)
        with torch.no_grad():
            mine = token_logprobs(model, batch.input_ids, batch.attention_mask, batch.loss_mask)
        return rollout_logprob_diff(batch.rollout_logp, mine, batch.loss_mask)

    assert diff() <= 1e-4
    opt = torch.optim.AdamW(model.parameters(), lr=5e-2)
    ids = torch.tensor([prompt])
    model.train()
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    model.eval()
    assert diff() > 1e-2  # the engine still holds the old weights: the trainer sees it
    vllm_policy.sync_weights()
    assert diff() <= 1e-4


def test_checkpoints_of_one_shape_share_an_engine(vllm_tiny_dir, tmp_path):
    """A second checkpoint of the same model reuses the engine, loading its own weights first;
    switching back reloads the first's."""
    import shutil

    from transformers import AutoModelForCausalLM

    from harness.vllm_sampler import _ENGINES

    other = tmp_path / "other"
    shutil.copytree(vllm_tiny_dir, other)
    m = AutoModelForCausalLM.from_pretrained(other)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    m.save_pretrained(other)
    a = Policy.load(vllm_tiny_dir, backend="vllm")
    a.sync_weights()  # a trainer's step leaves the engine's weights stale (pushed before a's next batch)
    engines = len(_ENGINES)
    b = Policy.load(other, backend="vllm")  # must load its own weights, not take the stale ones
    assert len(_ENGINES) == engines and a.sampler.engine is b.sampler.engine
    prompt = _toy_prompt(a)
    ra = a.generate_ids(prompt, temperature=1.0, seed=3, max_new_tokens=12)
    rb = b.generate_ids(prompt, temperature=1.0, seed=3, max_new_tokens=12)
    assert ra.logprobs != rb.logprobs
    assert a.generate_ids(prompt, temperature=1.0, seed=3, max_new_tokens=12).logprobs == pytest.approx(ra.logprobs, abs=1e-5)
    with torch.no_grad():  # b's tokens scored by b's own transformers forward
        logits = b.model(torch.tensor([prompt + rb.completion_ids])).logits[0, len(prompt) - 1 : -1]
        mine = torch.log_softmax(logits.float(), -1).gather(1, torch.tensor(rb.completion_ids)[:, None])[:, 0]
    assert (mine - torch.tensor(rb.logprobs)).abs().max() <= 1e-4


def test_greedy_replies_equal_across_backends_on_smollm2(domain):
    """SmolLM2 (no near-ties, unlike random tiny models) at float32: the same greedy reply on
    toy and τ³ first turns (a 5k-token prompt) from vLLM and from transformers."""
    from harness.models import smollm2_folder

    path = smollm2_folder()
    vllm, hf = Policy.load(path, backend="vllm"), Policy.load(path, backend="hf")
    assert vllm.sampler.backend == "vllm" and hf.sampler.backend == "hf"
    prompts = [_toy_prompt(vllm), _first_prompt(vllm, "tau3-airline", 0)]
    for prompt in prompts:
        a = vllm.generate_ids(prompt, max_new_tokens=24)
        b = hf.generate_ids(prompt, max_new_tokens=24)
        assert a.completion_ids == b.completion_ids, (a.text, b.text)
        assert a.logprobs == pytest.approx(b.logprobs, abs=2e-3)
    # seeded rows of a 5k-token prompt (on the CPU build, a seeded prompt prefilled in chunks crashed the engine)
    sampled = vllm.generate_batch([prompts[1]] * 2, temperature=1.0, seeds=[1, 2], max_new_tokens=4)
    assert all(len(o.completion_ids) >= 1 for o in sampled)


def test_eval_names_the_backend_and_a_dead_engine_is_recorded_not_hung(vllm_tiny_dir, tmp_path, monkeypatch):
    from harness.cli import main
    from harness.vllm_sampler import _ENGINES

    def run(out, *args):
        r = CliRunner().invoke(main, ["eval", "--benchmark", "toy", "--model", f"local/{vllm_tiny_dir}", "--limit", "2",
                                      "--out", str(out), "--display", "none", *args])  # fmt: skip
        assert r.exit_code == 0, r.output
        return pd.read_csv(out / "results.csv"), json.loads((out / "manifest.json").read_text())

    rows, manifest = run(tmp_path / "v", "-M", "backend=vllm")
    assert set(rows["backend"]) == {"vllm"} and set(rows["dtype"]) == {"float32"}
    assert manifest["provenance"]["agent"]["backend"] == "vllm"
    rows, _ = run(tmp_path / "h", "-M", "backend=hf")
    assert set(rows["backend"]) == {"hf"}

    engine = next(e for e in _ENGINES.values() if e.owner is not None and str(vllm_tiny_dir) in str(e.owner.path))

    def boom(*a, **k):
        raise RuntimeError("engine core died")

    monkeypatch.setattr(engine.llm, "generate", boom)
    rows, manifest = run(tmp_path / "dead", "-M", "backend=vllm")  # the first run's Policy again
    assert rows["infra_error"].all() and len(rows) == 2
    assert set(rows["backend"]) == {"vllm"} and manifest["provenance"]["agent"]["backend"] == "vllm"
    assert manifest["status"] == "complete"  # every sample ended as a row
    monkeypatch.undo()
    engine.dead = None


def test_the_trainer_logs_rollout_drift_and_a_skipped_sync_shows(vllm_tiny_dir, tmp_path, monkeypatch):
    """GRPO through the trainer on the vLLM sampler: in sync, every step's rollout_logprob_diff is
    ~0; with the weight push switched off, the second step's rollouts come from stale weights."""
    from sgcd.trainer import TrainConfig, Trainer

    def run(out):  # weight decay moves the weights even when both siblings tie (zero advantage)
        cfg = TrainConfig(benchmark="toy", benchmark_args={"levels": "0"}, model=f"local/{vllm_tiny_dir}", updates=2,
                          groups_per_update=1, group_size=2, dynamic_sampling=False, max_new_tokens=8, max_steps=2,
                          max_errors=1, lr=5e-2, weight_decay=1.0, checkpoint_every=2, threads=2,
                          backend="vllm")  # fmt: skip
        trainer = Trainer(cfg, out)
        assert trainer.policy.backend == "vllm"
        return [r["rollout_logprob_diff"] for r in trainer.run(progress=False)]

    assert max(run(tmp_path / "synced")) <= 1e-3
    monkeypatch.setattr(Policy, "sync_weights", lambda self, state=None: None)
    first, second = run(tmp_path / "unsynced")
    assert first <= 1e-3 and second > 1e-2
