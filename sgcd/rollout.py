"""Rollout groups: G sibling episodes of one task, run by the shared loop with the trained Policy.

All episodes of a round (a group's siblings, the groups of one sampling wave, a chunk of
held-out tasks) run together and their model calls are answered in batches (harness/batching.py):
on a 2-core CPU a decoding step for 8 rows costs about twice one row's.

`collect_groups` implements dynamic sampling (on by default for every algorithm, so baselines
are matched): a group is kept only if 0 < successes < G; more groups are sampled until the
update has `groups_per_update` kept groups or `max_groups_sampled` were tried.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from harness.batching import BatchGate, run_batched
from harness.loop import EpisodeResult, LoopConfig, Reply, run_episode
from harness.policy import Policy, PolicyOutput
from harness.records import Message, Sampling


def _limit(sampling: Sampling) -> dict[str, int]:
    """The Policy's max_new_tokens from the shared Sampling record (its own default when unset)."""
    return {} if sampling.max_tokens is None else {"max_new_tokens": sampling.max_tokens}


async def _reply(policy: Policy, gate: BatchGate | None, system_prompt: str, tools: list[dict[str, Any]],
                 messages: list[Message], **opts: Any) -> PolicyOutput:  # fmt: skip
    """One reply: parked at the gate for a batched call, or generated alone without one."""
    if gate is None:
        return policy.generate(system_prompt, tools, messages, **opts)
    return await gate.generate(policy, policy.render(system_prompt, tools, messages), **opts)


class PolicyAgent:
    """The trained Policy as the loop's AgentModel; each reply's trace keeps its token ids."""

    def __init__(self, policy: Policy, sampling: Sampling, seed: int, gate: BatchGate | None = None):
        self.policy, self.sampling, self.seed, self.gate, self.turn = policy, sampling, seed, gate, 0

    async def __call__(self, system_prompt: str, tools: list[dict[str, Any]], messages: list[Message]) -> Reply:
        self.turn += 1
        out = await _reply(
            self.policy, self.gate, system_prompt, tools, messages, temperature=self.sampling.temperature,
            top_p=self.sampling.top_p, seed=self.seed * 1000 + self.turn, **_limit(self.sampling),
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

    def __init__(self, policy: Policy, sampling: Sampling, seed: int, gate: BatchGate | None = None):
        self.policy, self.sampling, self.seed, self.gate, self.turn = policy, sampling, seed, gate, 0

    async def __call__(self, system_prompt: str, messages: list[Message]) -> Reply:
        self.turn += 1
        out = await _reply(self.policy, self.gate, system_prompt, [], messages, temperature=self.sampling.temperature,
                           seed=self.seed * 1000 + 500 + self.turn, **_limit(self.sampling))  # fmt: skip
        if out.status == "model_length" and not out.completion_ids:
            return Reply(message=out.message, status="context_overflow", error="user prompt exceeds the context window")
        return Reply(message=Message(role="assistant", content=out.text))


def run_episodes(bench: Any, runs: list[tuple[str, int]], policy: Policy, sampling: Sampling, loop: LoopConfig,
                 user_policy: Policy | None = None) -> list[EpisodeResult]:  # fmt: skip
    """One episode per (task id, sampling seed), run together with batched generation."""

    def job(task_id: str, seed: int) -> Callable[[BatchGate], Awaitable[EpisodeResult]]:
        async def run(gate: BatchGate) -> EpisodeResult:
            agent = PolicyAgent(policy, sampling, seed, gate)
            user = PolicyUser(user_policy or policy, sampling, seed, gate) if bench.has_user else None
            return await run_episode(lambda: bench.episode(task_id), agent, user, loop)

        return run

    return run_batched([job(t, s) for t, s in runs], bench.max_concurrent)


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


def run_groups(bench: Any, tasks: list[tuple[str, int]], size: int, policy: Policy, sampling: Sampling,
               loop: LoopConfig, user_policy: Policy | None = None) -> list[Group]:  # fmt: skip
    """One group per (task id, group seed): `size` siblings each, sibling i sampled with seed
    group_seed * 100 + i; every episode of every group runs together."""
    runs = [(task_id, seed * 100 + i) for task_id, seed in tasks for i in range(size)]
    results = run_episodes(bench, runs, policy, sampling, loop, user_policy)
    return [Group(task_id, results[k * size : (k + 1) * size]) for k, (task_id, _) in enumerate(tasks)]


@dataclass
class Collected:
    """One update's groups. Counters and means are over every process's groups; `kept` and
    `all_groups` are this process's. `replica`: this process got a copy of another's kept group
    only to keep its collectives in step (fewer kept groups than processes): its rows do not count."""

    kept: list[Group]
    sampled: int = 0
    dropped_all_fail: int = 0
    dropped_all_success: int = 0
    dropped_infra: int = 0
    all_groups: list[Group] = field(default_factory=list)
    kept_total: int = 0
    episodes: int = 0
    reward_sum: float = 0.0
    success_sum: int = 0
    replica: bool = False

    @property
    def reward_mean(self) -> float:
        return self.reward_sum / max(self.episodes, 1)

    @property
    def success_rate(self) -> float:
        return self.success_sum / max(self.episodes, 1)


def collect_groups(bench: Any, task_ids: list[str], policy: Policy, *, groups_per_update: int, group_size: int,
                   max_groups_sampled: int, dynamic_sampling: bool, sampling: Sampling, loop: LoopConfig,
                   rng: random.Random, user_policy: Policy | None = None,
                   on_group: Callable[[Group], object] | None = None,
                   dist: Any = None) -> Collected:  # fmt: skip
    """Sample groups until the update is full (dynamic sampling) or the cap is reached.

    With several processes (`dist`, sgcd/distributed.py) every process draws the same tasks and
    seeds; process r samples groups r, r + N, ... of each wave; the keep decisions are taken on
    the gathered outcomes in the wave's order, so they are those of one process; the kept groups
    are then dealt out (kept[r::N])."""
    rank, world = (0, 1) if dist is None else (dist.rank, dist.world)
    out = Collected(kept=[])
    kept_all: list[tuple[int, Group | None]] = []  # (wave order, the group where this process sampled it)
    while out.kept_total < groups_per_update and out.sampled < max_groups_sampled:
        # A wave: as many groups as the update still lacks (within the cap), sampled together.
        wave = min(groups_per_update - out.kept_total, max_groups_sampled - out.sampled)
        tasks = []
        for _ in range(wave):
            task_id = rng.choice(task_ids)
            tasks.append((task_id, rng.randrange(1 << 30)))
        mine = list(range(rank, wave, world))
        groups = dict(zip(mine, run_groups(bench, [tasks[i] for i in mine], group_size, policy, sampling, loop,
                                           user_policy), strict=True))  # fmt: skip
        summary = {i: (g.successes, g.infra_errors, sum(r.outcome.reward for r in g.results)) for i, g in groups.items()}
        if world > 1:
            summary = {i: v for part in dist.gather(summary) for i, v in part.items()}
        for i in range(wave):
            successes, infra, reward = summary[i]
            group = groups.get(i)
            out.sampled += 1
            out.episodes += group_size
            out.reward_sum += reward
            out.success_sum += successes
            if group is not None:
                out.all_groups.append(group)
                if on_group:
                    on_group(group)
            if infra:
                out.dropped_infra += 1
            elif dynamic_sampling and successes == 0:
                out.dropped_all_fail += 1
            elif dynamic_sampling and successes == group_size:
                out.dropped_all_success += 1
            else:
                out.kept_total += 1
                kept_all.append((len(kept_all), group))
    if world == 1:
        out.kept = [g for _, g in kept_all if g is not None]
        return out
    # Deal the kept groups out again: process r trains on kept[r::N] (sent by whoever sampled them).
    pool: dict[int, Group] = {}
    for part in dist.gather({k: g for k, g in kept_all if g is not None}):
        pool.update(part)
    order = [pool[k] for k in range(len(kept_all))]
    out.kept = order[rank::world]
    if not out.kept and order:  # fewer kept groups than processes: a copy that does not count
        out.kept, out.replica = [order[rank % len(order)]], True
    return out


def evaluate_policy(bench: Any, task_ids: list[str], policy: Policy, loop: LoopConfig, max_new_tokens: int = 64,
                    temperature: float = 0.0, seed: int = 0, batch: int = 16) -> float:  # fmt: skip
    """Success rate of the policy on the given tasks (greedy by default), `batch` episodes at a
    time: a quick held-out check for training curves and learning tests; full evaluations go
    through `sgcd-bench eval`."""
    sampling = Sampling(temperature=temperature, max_tokens=max_new_tokens)
    wins = 0
    for start in range(0, len(task_ids), batch):
        chunk = [(t, seed * 100_000 + start + i) for i, t in enumerate(task_ids[start : start + batch])]
        wins += sum(r.outcome.success for r in run_episodes(bench, chunk, policy, sampling, loop))
    return wins / max(len(task_ids), 1)
