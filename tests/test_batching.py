"""Batched generation: `Policy.generate_batch` against one-at-a-time `generate_ids`, the gate
that runs episodes together (harness/batching.py), and the training forward that runs a
group's shared prompt once (sgcd/tokens.py)."""

from __future__ import annotations

import asyncio

import pytest

from harness.batching import run_together
from harness.benchmarks import get_benchmark
from harness.loop import LoopConfig, run_episode
from harness.policy import Policy, PolicyOutput
from harness.records import Message
from sgcd.rollout import PolicyAgent, PolicyUser, Sampling, run_episodes


@pytest.fixture(scope="module")
def policy(toy_tiny_dir):
    return Policy.load(toy_tiny_dir, threads=2)


def _prompts(policy):
    bench = get_benchmark("toy", levels="0,1")
    out = []
    for tid in bench.split_ids("train")[:2] + bench.split_ids("train")[-1:]:
        start = bench.episode(tid).reset()
        out.append(policy.render(start.system_prompt, start.tools, start.messages))
    return out


def test_greedy_batch_matches_one_at_a_time_across_turns(policy, monkeypatch):
    """Rows of different lengths (padded), a repeated prompt, then each row's second turn served
    from its own cached prefix: the same tokens as generating each prompt alone."""
    a, b, c = _prompts(policy)
    first = [a, b, a, c]
    policy.clear_cache()
    alone = [policy.generate_ids(p, max_new_tokens=12) for p in first]
    policy.clear_cache()
    with monkeypatch.context() as m:  # the batched path itself, not the one-at-a-time fallback
        m.setattr(policy, "generate_ids", None)
        together = policy.generate_batch(first, max_new_tokens=12)
    for x, y in zip(alone, together, strict=True):
        assert y.completion_ids == x.completion_ids and y.status == x.status
        assert y.logprobs == pytest.approx(x.logprobs, abs=1e-4)
    second = [p + out.completion_ids + p[-3:] for p, out in zip(first, together, strict=True)]
    together2 = policy.generate_batch(second, max_new_tokens=12)
    assert all(out.reused_prefix >= len(p) for p, out in zip(first, together2, strict=True))  # no re-prefill
    policy.clear_cache()
    alone2 = [policy.generate_ids(p, max_new_tokens=12) for p in second]
    for x, y in zip(alone2, together2, strict=True):
        assert y.completion_ids == x.completion_ids
        assert y.logprobs == pytest.approx(x.logprobs, abs=1e-4)


def test_sampled_rows_are_the_rows_sampled_alone(policy):
    """Each row samples from its own seeded stream: a row's reply does not depend on what else
    shares its batch, siblings with different seeds differ, and a seed reproduces its reply."""
    a, b, _ = _prompts(policy)
    batch = policy.generate_batch([a, a, b, a], temperature=1.0, seeds=[3, 4, 3, 3], max_new_tokens=16)
    policy.clear_cache()
    alone = [policy.generate_ids(p, temperature=1.0, seed=s, max_new_tokens=16) for p, s in ((a, 3), (a, 4), (b, 3))]
    assert [o.completion_ids for o in batch[:3]] == [o.completion_ids for o in alone]
    assert batch[3].completion_ids == batch[0].completion_ids  # same prompt, same seed
    assert batch[0].completion_ids != batch[1].completion_ids
    other = policy.generate_batch([b, a], temperature=1.0, seeds=[3, 4], max_new_tokens=16)  # other company
    assert other[1].completion_ids == batch[1].completion_ids


def test_rows_without_room_go_one_at_a_time(policy):
    a, b, _ = _prompts(policy)
    long = (b * 10)[: policy.max_context - 4]  # 4 tokens of room: cannot join a 12-token batch
    outs = policy.generate_batch([a, long, a], max_new_tokens=12)
    assert outs[1].status in ("model_length", "max_tokens") and len(outs[1].completion_ids) <= 4
    assert outs[0].completion_ids == outs[2].completion_ids


class _CountingPolicy:
    """Records the size of every batched call; replies with a fixed text."""

    def __init__(self):
        self.calls: list[int] = []

    def generate_batch(self, prompts, temperature, top_p, seed, max_new_tokens, call_prefixes):
        self.calls.append(len(prompts))
        msg = Message(role="assistant", content="ok")
        return [PolicyOutput(msg, "ok", p, [1], [0.0]) for p in prompts]


def test_gate_batches_every_live_episode_and_respects_the_concurrency_cap():
    fake = _CountingPolicy()

    def job(turns: int):
        async def run(gate):
            for t in range(turns):
                await asyncio.sleep(0.001 * t)  # episodes reach the gate at different moments
                await gate.generate(fake, [t])
            return turns

        return run

    assert asyncio.run(run_together([job(n) for n in (3, 1, 2, 3)])) == [3, 1, 2, 3]
    assert fake.calls == [4, 3, 2]  # the batch shrinks as episodes end
    fake.calls.clear()
    asyncio.run(run_together([job(2) for _ in range(5)], max_concurrent=2))
    assert max(fake.calls) <= 2 and sum(fake.calls) == 10


def test_batched_episodes_match_episodes_run_alone(tiny_model_dir):
    """τ³ episodes (agent and simulated user both played by the Policy, sampled) run together
    through the gate give the same conversations as each run alone with the same seeds."""
    policy = Policy.load(tiny_model_dir, threads=2)
    bench = get_benchmark("tau3-airline")
    sampling, loop = Sampling(temperature=1.0, max_tokens=8), LoopConfig(max_steps=5)
    runs = [("8", 1), ("3", 2)]
    together = run_episodes(bench, runs, policy, sampling, loop)
    for (tid, seed), res in zip(runs, together, strict=True):
        alone = asyncio.run(run_episode(lambda t=tid: bench.episode(t), PolicyAgent(policy, sampling, seed),
                                        PolicyUser(policy, sampling, seed), loop))  # fmt: skip
        assert [(m.role, m.content) for m in res.messages] == [(m.role, m.content) for m in alone.messages]
        assert res.outcome.end_reason == alone.outcome.end_reason


def test_shared_prefix_forward_equals_the_plain_forward(policy, monkeypatch):
    """Siblings sharing a prompt: log-probs, entropies, logits and gradients of the pass that runs
    the prompt once equal those of the plain pass over every row."""
    import torch

    from sgcd import tokens

    model = policy.model
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(5, model.config.vocab_size, (40,), generator=gen).tolist()
    rows = [prompt + torch.randint(5, model.config.vocab_size, (n,), generator=gen).tolist() for n in (6, 15, 9)]
    width = max(map(len, rows))
    ids, att, mask = torch.zeros(3, width, dtype=torch.long), torch.zeros(3, width, dtype=torch.long), torch.zeros(3, width)
    for i, r in enumerate(rows):
        ids[i, : len(r)], att[i, : len(r)], mask[i, len(prompt) : len(r)] = torch.tensor(r), 1, 1
    assert tokens._shared_prefix(ids, att, torch.roll(mask.bool(), -1, 1)) == len(prompt) - 1

    def run(min_shared):
        monkeypatch.setattr(tokens, "MIN_SHARED_PREFIX", min_shared)
        model.zero_grad()
        logp, ent, logits = tokens.token_logprobs(model, ids, att, mask, with_entropy=True, return_logits=True)
        (logp.sum() + 0.1 * ent.sum()).backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        return logp.detach(), ent.detach(), logits.detach(), grads

    model.train()
    try:
        plain, shared = run(10**9), run(16)
    finally:
        model.zero_grad()
        model.eval()
    for a, b in zip(plain, shared, strict=True):
        assert a.shape == b.shape
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-3)
    assert (plain[0] != 0).sum() == mask.sum()


def test_request_batcher_batches_concurrent_calls_without_changing_replies(policy):
    """The inspect provider's batcher: calls that arrive together run as one batch, a call that
    arrives during it joins the next, and every reply is the one the row gets alone."""
    from harness.batching import RequestBatcher

    a, b, c = _prompts(policy)
    batcher = RequestBatcher(policy, max_batch=3)

    async def calls():
        first = [batcher.generate(p, temperature=1.0, seed=s, max_new_tokens=10) for p, s in ((a, 1), (b, 2), (c, 3), (a, 4))]
        return await asyncio.gather(*first)

    got = asyncio.run(calls())
    assert batcher.batches == [3, 1]  # capped at max_batch; the rest forms the next batch
    policy.clear_cache()
    for out, (p, s) in zip(got, ((a, 1), (b, 2), (c, 3), (a, 4)), strict=True):
        assert out.completion_ids == policy.generate_ids(p, temperature=1.0, seed=s, max_new_tokens=10).completion_ids
