"""Rollout groups: G sibling episodes of one task, run by the shared loop with the trained Policy.

`collect_groups` implements dynamic sampling (on by default for every algorithm, so baselines
are matched): a group is kept only if 0 < successes < G; more groups are sampled until the
update has `groups_per_update` kept groups or `max_groups_sampled` were tried.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

from harness.loop import EpisodeResult, LoopConfig, Reply, run_episode
from harness.policy import Policy
from harness.records import Message


@dataclass
class Sampling:
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 128


class PolicyAgent:
    """The trained Policy as the loop's AgentModel; each reply's trace keeps its token ids."""

    def __init__(self, policy: Policy, sampling: Sampling, seed: int):
        self.policy, self.sampling, self.seed, self.turn = policy, sampling, seed, 0

    async def __call__(self, system_prompt: str, tools: list[dict[str, Any]], messages: list[Message]) -> Reply:
        self.turn += 1
        out = self.policy.generate(
            system_prompt, tools, messages, temperature=self.sampling.temperature, top_p=self.sampling.top_p,
            seed=self.seed * 1000 + self.turn, max_new_tokens=self.sampling.max_new_tokens,
            call_prefix=f"call_{self.turn}",
        )  # fmt: skip
        if out.status == "model_length" and not out.completion_ids:
            return Reply(message=out.message, status="context_overflow", error="prompt exceeds the context window")
        return Reply(
            message=out.message,
            input_tokens=len(out.prompt_ids),
            output_tokens=len(out.completion_ids),
            trace={"prompt_ids": out.prompt_ids, "completion_ids": out.completion_ids, "logprobs": out.logprobs},
        )


class PolicyUser:
    """A Policy playing the simulated user (for benchmarks with a user, when no other model is given)."""

    def __init__(self, policy: Policy, sampling: Sampling, seed: int):
        self.policy, self.sampling, self.seed, self.turn = policy, sampling, seed, 0

    async def __call__(self, system_prompt: str, messages: list[Message]) -> Reply:
        self.turn += 1
        out = self.policy.generate(system_prompt, [], messages, temperature=self.sampling.temperature,
                                   seed=self.seed * 1000 + 500 + self.turn, max_new_tokens=self.sampling.max_new_tokens)  # fmt: skip
        if out.status == "model_length" and not out.completion_ids:
            return Reply(message=out.message, status="context_overflow", error="user prompt exceeds the context window")
        return Reply(message=Message(role="assistant", content=out.text))


@dataclass
class Group:
    task_id: str
    results: list[EpisodeResult]

    @property
    def successes(self) -> int:
        return sum(r.outcome.success for r in self.results)

    @property
    def infra_errors(self) -> int:
        return sum(r.outcome.end_reason == "infra_error" for r in self.results)


def run_group(bench: Any, task_id: str, size: int, policy: Policy, sampling: Sampling, loop: LoopConfig,
              seed: int, user_policy: Policy | None = None) -> Group:  # fmt: skip
    """G siblings of one task, each with its own sampling seed."""
    results = []
    for i in range(size):
        s = seed * 100 + i
        agent = PolicyAgent(policy, sampling, s)
        user = PolicyUser(user_policy or policy, sampling, s) if bench.has_user else None
        results.append(asyncio.run(run_episode(lambda: bench.episode(task_id), agent, user, loop)))
    return Group(task_id, results)


@dataclass
class Collected:
    kept: list[Group]
    sampled: int = 0
    dropped_all_fail: int = 0
    dropped_all_success: int = 0
    dropped_infra: int = 0
    all_groups: list[Group] = field(default_factory=list)


def collect_groups(bench: Any, task_ids: list[str], policy: Policy, *, groups_per_update: int, group_size: int,
                   max_groups_sampled: int, dynamic_sampling: bool, sampling: Sampling, loop: LoopConfig,
                   rng: random.Random, user_policy: Policy | None = None, on_group=None) -> Collected:  # fmt: skip
    """Sample groups until the update is full (dynamic sampling) or the cap is reached."""
    out = Collected(kept=[])
    while len(out.kept) < groups_per_update and out.sampled < max_groups_sampled:
        task_id = rng.choice(task_ids)
        group = run_group(bench, task_id, group_size, policy, sampling, loop, rng.randrange(1 << 30), user_policy)
        out.sampled += 1
        out.all_groups.append(group)
        if on_group:
            on_group(group)
        if group.infra_errors:
            out.dropped_infra += 1
        elif dynamic_sampling and group.successes == 0:
            out.dropped_all_fail += 1
        elif dynamic_sampling and group.successes == group_size:
            out.dropped_all_success += 1
        else:
            out.kept.append(group)
    return out


def evaluate_policy(bench: Any, task_ids: list[str], policy: Policy, loop: LoopConfig, max_new_tokens: int = 64,
                    temperature: float = 0.0, seed: int = 0) -> float:  # fmt: skip
    """Success rate of the policy on the given tasks (greedy by default): a quick held-out check
    for training curves and learning tests; full evaluations go through `sgcd-bench eval`."""
    sampling = Sampling(temperature=temperature, max_new_tokens=max_new_tokens)
    wins = 0
    for i, task_id in enumerate(task_ids):
        agent = PolicyAgent(policy, sampling, seed * 100_000 + i)
        user = PolicyUser(policy, sampling, seed * 100_000 + i) if bench.has_user else None
        res = asyncio.run(run_episode(lambda t=task_id: bench.episode(t), agent, user, loop))
        wins += res.outcome.success
    return wins / max(len(task_ids), 1)
