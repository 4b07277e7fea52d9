"""inspect-ai tasks: one generic `@task` builds any registered benchmark (harness/benchmarks.py),
and each benchmark is also a task of its own name; the solver is the conversation loop.

`inspect eval harness/tasks.py@tau3_airline --model M` (or `harness/tasks.py@benchmark -T
name=tau3-airline`) and `sgcd-bench eval --benchmark tau3-airline` run the same task, under the
same protocol.
The agent is the model under test (`--model`); the simulated user is the model in role `user`
(`--model-role user=...`, defaulting to the agent's model). Each epoch is one eval seed: epoch e
sends seed = base_seed + e - 1 to agent and user, and the score records both.
"""

from __future__ import annotations

import asyncio
from typing import Any

from inspect_ai import Epochs, Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageUser, get_model
from inspect_ai.scorer import (
    Metric,
    SampleScore,
    Score,
    Scorer,
    ScoreReducer,
    Target,
    mean,
    metric,
    score_reducer,
    scorer,
)
from inspect_ai.solver import Generate, Solver, TaskState, solver

from harness.benchmarks import ResolvedProtocol, discover, resolve_protocol
from harness.floors import null_floor
from harness.inspect_bridge import InspectAgent, InspectUser, guard_model, scrub, to_chat
from harness.loop import LoopConfig, run_episode
from harness.metrics import check_pass_k, clustered_se, pass_hat_k
from harness.provenance import generation_columns
from harness.records import Sampling, is_success

OUTCOME_KEY = "sgcd_outcome"


def epoch_seed(base_seed: int, epoch: int) -> int:
    """The seed of epoch `epoch` (1-based, as inspect counts)."""
    return base_seed + epoch - 1


@score_reducer(name="pass_hat")
def pass_hat(k: int) -> ScoreReducer:
    """pass^k over a sample's epochs (success = reward 1), via harness.metrics.pass_hat_k."""

    def reduce(scores: list[Score]) -> Score:
        flags = [is_success(float(s.value)) for s in scores]
        meta = scores[0].metadata if scores else None
        if len(flags) < k:  # inspect also reduces partial epochs for its live display
            return Score(value=float("nan"), metadata=meta)
        return Score(value=pass_hat_k(sum(flags), len(flags), k), metadata=meta)

    return reduce


def cluster_of(meta: dict[str, Any] | None, fallback: Any) -> str:
    """The cluster a task's score belongs to: its scenario where it has one, else the task."""
    meta = meta or {}
    return str(meta.get("scenario_id") or meta.get("task_id") or fallback)


@metric(name="stderr")
def clustered_stderr() -> Metric:
    """pass@1's standard error over the per-task means, clustered by scenario where there is one
    (else by task): harness.metrics.clustered_se, the one the summary and the reports use."""

    def compute(scores: list[SampleScore]) -> float:
        values = [float(s.score.value) for s in scores]
        return clustered_se(values, [cluster_of(s.score.metadata, s.sample_id) for s in scores])

    return compute


@metric(name="null_floor")
def null_floor_metric() -> Metric:
    """Mean success of the do-nothing agent over the evaluated tasks (harness.floors.null_floor)."""

    def compute(scores: list[SampleScore]) -> float:
        flags = {str(s.sample_id): (s.score.metadata or {}).get("null_success") for s in scores}
        floor = null_floor(flags)
        return float("nan") if floor is None else floor

    return compute


@metric
def write_required_mean() -> Metric:
    """Mean score over the tasks whose gold actions change the database."""

    def compute(scores: list[SampleScore]) -> float:
        vals = [float(s.score.value) for s in scores if (s.score.metadata or {}).get("write_required")]
        return sum(vals) / len(vals) if vals else float("nan")

    return compute


@scorer(metrics=[mean(), clustered_stderr(), null_floor_metric(), write_required_mean()])
def outcome_scorer() -> Scorer:
    """Reports the Outcome the benchmark's own evaluator gave at the end of the episode."""

    async def score(state: TaskState, target: Target) -> Score:
        out = state.store.get(OUTCOME_KEY)
        if out is None:
            raise RuntimeError("the conversation solver left no outcome in the store")
        return Score(value=out["reward"], answer=out["end_reason"], explanation=out.get("feedback", ""), metadata=out)

    return score


@solver
def conversation(
    benchmark: str,
    temperature: float = 0.0,
    seed: int = 0,
    protocol: ResolvedProtocol | None = None,
    benchmark_args: dict[str, Any] | None = None,
) -> Solver:
    """Run the whole episode (agent, tools, user) with the shared loop and store its Outcome,
    with the protocol it ran under (the benchmark's, unless overridden)."""
    from harness.benchmarks import get_benchmark

    bench = get_benchmark(benchmark, **(benchmark_args or {}))
    protocol = protocol or resolve_protocol(benchmark)
    limits = protocol.protocol
    cfg = LoopConfig(max_steps=limits.max_steps, max_errors=limits.max_errors)
    # A benchmark with a fixed number of environment servers (AppWorld's pool) runs at most that
    # many episodes at once; more would hold worker threads waiting for a server (a deadlock).
    limit = bench.max_concurrent
    gates: dict[int, asyncio.Semaphore] = {}

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        if limit is None:
            return await _solve(state)
        gate = gates.setdefault(id(asyncio.get_running_loop()), asyncio.Semaphore(limit))
        async with gate:
            return await _solve(state)

    async def _solve(state: TaskState) -> TaskState:
        task_id = str(state.metadata["task_id"])
        sampling = Sampling(seed=epoch_seed(seed, state.epoch), temperature=temperature, max_tokens=limits.max_tokens)
        agent_model = guard_model(get_model())
        agent = InspectAgent(agent_model, sampling)
        user = InspectUser(guard_model(get_model(role="user", default=agent_model)), sampling) if bench.has_user else None
        result = await run_episode(lambda: bench.episode(task_id), agent, user, cfg)
        state.messages = to_chat(result.system_prompt, result.messages) or [ChatMessageUser(content="")]
        out = result.outcome.to_dict()
        out.update(
            task_id=task_id,
            epoch=state.epoch,
            seed=sampling.seed,
            temperature=temperature,
            infra_error=out["end_reason"] == "infra_error",
            turns=result.turns,
            tool_calls=result.tool_calls,
            tool_errors=result.tool_errors,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            user_input_tokens=result.user_input_tokens,
            user_output_tokens=result.user_output_tokens,
            seconds=round(result.seconds, 3),
            attempts=result.attempts,
            **protocol.row_columns(),
            **bench.task_facts(task_id),
            **generation_columns(agent_model),
        )
        state.store.set(OUTCOME_KEY, scrub(out))
        state.completed = True
        return state

    return solve


def benchmark_task(
    benchmark: str,
    split: str | None = None,
    seeds: int = 1,
    temperature: float = 0.0,
    seed: int = 0,
    max_steps: int | None = None,
    max_errors: int | None = None,
    max_tokens: int | None = None,
    limit: int | None = None,
    pass_k: list[int] | None = None,
    benchmark_args: dict[str, Any] | None = None,
) -> Task:
    """The inspect Task of `benchmark`; a limit left None is the benchmark's own (its protocol),
    a split left None its default split; `benchmark_args` are its options (unknown keys refused)."""
    from harness.benchmarks import benchmark_class, check_args, get_benchmark

    pass_k = sorted(set(pass_k or range(1, seeds + 1)))
    check_pass_k(pass_k, seeds)
    split = split or benchmark_class(benchmark).default_split
    check_args(benchmark, benchmark_args or {}, "-T")
    protocol = resolve_protocol(benchmark, max_steps, max_errors, max_tokens)
    bench = get_benchmark(benchmark, **(benchmark_args or {}))
    ids = bench.split_ids(split)
    if limit is not None:
        ids = ids[:limit]
    samples = [
        Sample(id=tid, input=f"{benchmark} task {tid}", metadata={"task_id": tid, "benchmark": benchmark, "split": split})
        for tid in ids
    ]
    return Task(
        dataset=MemoryDataset(samples, name=f"{benchmark}-{split}"),
        solver=conversation(benchmark, temperature, seed, protocol, benchmark_args),
        scorer=outcome_scorer(),
        epochs=Epochs(seeds, ["mean", *[pass_hat(k) for k in pass_k]]),
        name=task_name(benchmark),
        metadata={"benchmark": benchmark, "split": split, "seeds": seeds, "base_seed": seed, "temperature": temperature,
                  **protocol.protocol.to_dict(), "protocol": protocol.to_dict()},  # fmt: skip
    )


def task_name(benchmark: str) -> str:
    """The inspect task name of a benchmark ("tau3-airline" -> "tau3_airline")."""
    return benchmark.replace("-", "_")


# benchmark_task's own arguments; every other task argument is one of the benchmark's options
LOOP_ARGS = ("split", "seeds", "temperature", "seed", "max_steps", "max_errors", "max_tokens", "limit", "pass_k")


def _from_task_args(name: str, args: dict[str, Any]) -> Task:
    options = {k: v for k, v in args.items() if k not in LOOP_ARGS}
    return benchmark_task(name, **{k: v for k, v in args.items() if k in LOOP_ARGS}, benchmark_args=options)


@task
def benchmark(name: str, **args: Any) -> Task:
    """Any registered benchmark: `inspect eval harness/tasks.py@benchmark -T name=NAME`. Each
    benchmark is also its own task (`harness/tasks.py@tau3_airline`, `@toy`, ...), the same one.
    -T keys: split, seeds, temperature, seed, max_steps, max_errors, max_tokens, limit, pass_k
    (limits left out are the benchmark's protocol), and the benchmark's own options."""
    return _from_task_args(name, args)


def _named(name: str) -> Any:
    """`benchmark` with the benchmark fixed: the task `harness/tasks.py@<task_name(name)>`."""

    def make(**args: Any) -> Task:
        return _from_task_args(name, args)

    make.__name__ = make.__qualname__ = task_name(name)
    make.__doc__ = f"The {name} benchmark (harness.tasks.benchmark with name={name!r})."
    return task(name=task_name(name))(make)


# One task per registered benchmark, built from the registry (no benchmark is named here).
for _cls in discover().values():
    globals()[task_name(_cls.name)] = _named(_cls.name)
