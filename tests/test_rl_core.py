"""The RL core against hand-computed values: advantages, the clipped loss, masks, dynamic sampling."""

from __future__ import annotations

import math
import random

import pytest
import torch

from sgcd.advantages import compute_advantages
from sgcd.losses import PGConfig, aggregate, clipped_pg_loss
from sgcd.rollout import Group, collect_groups
from sgcd.tokens import collate, segments_from_turns


def test_grpo_drgrpo_rloo_by_hand():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    g = torch.tensor([0, 0, 0, 1, 1, 1])
    # group 0: mean 1/3, unbiased std = sqrt(((2/3)^2 + 2 (1/3)^2) / 2) = sqrt(1/3)
    std = math.sqrt(1 / 3)
    exp_grpo = [(2 / 3) / std, (-1 / 3) / std, (-1 / 3) / std, (1 / 3) / std, (1 / 3) / std, (-2 / 3) / std]
    assert compute_advantages("grpo", r, g, eps=0.0).tolist() == pytest.approx(exp_grpo, rel=1e-6)
    assert compute_advantages("drgrpo", r, g).tolist() == pytest.approx([2 / 3, -1 / 3, -1 / 3, 1 / 3, 1 / 3, -2 / 3], rel=1e-6)
    # leave-one-out: r_i - mean(others); group 0, i=0: 1 - 0 = 1; i=1: 0 - 1/2
    assert compute_advantages("rloo", r, g).tolist() == pytest.approx([1, -0.5, -0.5, 0.5, 0.5, -1], rel=1e-6)
    with pytest.raises(KeyError):
        compute_advantages("nope", r, g)


def test_clipped_loss_by_hand():
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[1.0, 1.5, 0.5, 1.1]]))  # ratios 1, 1.5, 0.5, 1.1
    adv = torch.tensor([[2.0, 1.0, -1.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # last token is not the policy's
    cfg = PGConfig(clip_low=0.2, clip_high=0.28)
    loss, st = clipped_pg_loss(logp, old, adv, mask, cfg)
    # token terms: -min(1*2, 1*2) = -2; -min(1.5, 1.28) = -1.28; -min(-0.5, -0.8) = 0.8
    assert float(loss) == pytest.approx((-2 - 1.28 + 0.8) / 3, rel=1e-5)
    assert st["clip_fraction"] == pytest.approx(2 / 3)


def test_aggregations_differ_as_defined():
    v = torch.tensor([[1.0, 1.0, 1.0, 0.0], [4.0, 0.0, 0.0, 0.0]])
    m = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    assert float(aggregate(v, m, "token-mean")) == pytest.approx(7 / 4)
    assert float(aggregate(v, m, "seq-mean-token-mean")) == pytest.approx((1 + 4) / 2)


def test_kl_term_k3():
    logp = torch.log(torch.tensor([[0.5]]))
    ref = torch.log(torch.tensor([[0.25]]))
    cfg = PGConfig(kl_coef=1.0)
    loss, st = clipped_pg_loss(logp, logp.detach(), torch.zeros(1, 1), torch.ones(1, 1), cfg, ref)
    d = math.log(0.25) - math.log(0.5)
    assert st["kl"] == pytest.approx(math.exp(d) - d - 1)


def test_segments_merge_growing_prompts_and_mask_only_generated_tokens():
    # turn 1: prompt [1,2,3], completion [4,5]; the tool result [6,7] and the next header [8]
    # extend it, then turn 2 generates [9]. A re-rendered turn 3 that does not extend starts anew.
    turns = [([1, 2, 3], [4, 5]), ([1, 2, 3, 4, 5, 6, 7, 8], [9]), ([1, 2, 99], [10])]
    rows = segments_from_turns(turns, traj=0)
    assert [r.ids for r in rows] == [[1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 99, 10]]
    assert [r.mask for r in rows] == [[0, 0, 0, 1, 1, 0, 0, 0, 1], [0, 0, 0, 1]]
    batch = collate(rows, [0], [1.0], [True], pad_id=0)
    assert batch.input_ids.shape == (2, 9) and batch.loss_mask.sum() == 4
    assert batch.attention_mask[1].tolist() == [1, 1, 1, 1, 0, 0, 0, 0, 0]


class _Outcome:
    def __init__(self, success):
        self.success, self.reward, self.end_reason = success, float(success), "agent_stop"


class _Res:
    def __init__(self, success):
        self.outcome = _Outcome(success)


def test_dynamic_sampling_keeps_only_mixed_groups(monkeypatch):
    import sgcd.rollout as rollout

    script = iter([[1, 1], [0, 0], [1, 0], [0, 1], [1, 1]])
    waves = []

    def run_groups(bench, tasks, *a, **k):
        waves.append(len(tasks))
        return [Group(tid, [_Res(s) for s in next(script)]) for tid, _ in tasks]

    monkeypatch.setattr(rollout, "run_groups", run_groups)
    got = collect_groups(None, ["a"], None, groups_per_update=2, group_size=2, max_groups_sampled=10,
                         dynamic_sampling=True, sampling=None, loop=None, rng=random.Random(0))  # fmt: skip
    assert len(got.kept) == 2 and got.sampled == 4
    assert waves == [2, 2]  # each wave samples together only the groups the update still lacks
    assert (got.dropped_all_success, got.dropped_all_fail) == (1, 1)


def test_dynamic_sampling_stops_at_the_cap(monkeypatch):
    import sgcd.rollout as rollout

    monkeypatch.setattr(rollout, "run_groups", lambda bench, tasks, *a, **k: [Group(t, [_Res(0), _Res(0)]) for t, _ in tasks])
    got = collect_groups(None, ["a"], None, groups_per_update=2, group_size=2, max_groups_sampled=3,
                         dynamic_sampling=True, sampling=None, loop=None, rng=random.Random(0))  # fmt: skip
    assert got.kept == [] and got.sampled == 3 and got.dropped_all_fail == 3


def test_loss_mask_covers_exactly_the_policys_own_tokens_in_a_real_conversation(tiny_model_dir, domain):
    """A τ³ episode (tool results and simulated-user turns included) played by a tiny Policy:
    mask = 1 exactly on the sampled completion tokens, never on tool or user text."""
    import asyncio

    from harness.benchmarks import get_benchmark
    from harness.loop import LoopConfig, run_episode
    from harness.policy import Policy
    from sgcd.rollout import PolicyAgent, PolicyUser, Sampling

    policy = Policy.load(tiny_model_dir, threads=2)
    bench = get_benchmark("tau3-airline")
    sampling = Sampling(temperature=1.0, max_tokens=8)
    res = asyncio.run(run_episode(lambda: bench.episode("8"), PolicyAgent(policy, sampling, 1),
                                  PolicyUser(policy, sampling, 1), LoopConfig(max_steps=7)))  # fmt: skip
    turns = [(t["prompt_ids"], t["completion_ids"]) for t in res.traces]
    assert len(turns) >= 2 and any(m.role == "user" for m in res.messages[1:])
    rows = segments_from_turns(turns, traj=0)
    masked = [i for r in rows for i, m in zip(r.ids, r.mask, strict=True) if m]
    assert masked == [i for _, c in turns for i in c]
    for r in rows:  # every unmasked token is prompt: the system prompt, tool results, user turns
        for (start, end), t in zip(r.turn_spans, r.turns, strict=True):
            assert r.ids[start:end] == turns[t][1] and all(r.mask[start:end])
        assert sum(r.mask) == sum(end - start for start, end in r.turn_spans)
