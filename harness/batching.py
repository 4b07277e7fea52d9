"""Answer concurrent model calls to a local Policy in batches.

`BatchGate` (training rollouts, learning checks) knows how many episodes are running. Every
episode runs in one event loop; when a Policy-backed agent or user wants a reply it parks its request at the `BatchGate` and waits. Once every live episode is parked (or has
ended), the gate runs the parked requests as batched `Policy.generate_batch` calls, one per
(policy, sampling settings), and wakes the episodes. Each row samples from its own seeded
stream, so an episode's rollout is the one it would have had alone with the same seed.
Episodes that block on I/O (AppWorld's servers) keep running in their worker threads meanwhile
(loop.py's `_call`).

`RequestBatcher` (the inspect provider `local/PATH`, whose samples run as concurrent tasks it does
not count) batches whatever has arrived: requests that come while a batch is generating form
the next one. Per-row streams make the replies independent of that grouping too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from harness.policy import Policy, PolicyOutput

T = TypeVar("T")


@dataclass
class _Request:
    policy: Policy
    prompt: list[int]
    temperature: float
    top_p: float
    seed: int | None
    max_new_tokens: int
    call_prefix: str
    future: asyncio.Future

    @property
    def key(self) -> tuple:
        """Requests with the same key can share one batched call."""
        return (id(self.policy), self.temperature, self.top_p, self.max_new_tokens)


def _call(rows: list[_Request]) -> list[PolicyOutput]:
    """One batched call for requests that share a key."""
    first = rows[0]
    return first.policy.generate_batch([r.prompt for r in rows], first.temperature, first.top_p, [r.seed for r in rows],
                                       first.max_new_tokens, [r.call_prefix for r in rows])  # fmt: skip


def _resolve(rows: list[_Request], outs: list[PolicyOutput] | Exception) -> None:
    """Wake each caller with its reply, or with the call's failure (as it would have failed alone)."""
    for i, r in enumerate(rows):
        if isinstance(outs, Exception):
            r.future.set_exception(outs)
        else:
            r.future.set_result(outs[i])


class BatchGate:
    def __init__(self) -> None:
        self.live = 0  # episodes (workers) that may still ask for a reply
        self.pending: list[_Request] = []
        self.batches: list[int] = []  # the size of each batched call, for tests and benchmarks

    async def generate(self, policy: Policy, prompt: list[int], *, temperature: float = 0.0, top_p: float = 1.0,
                       seed: int | None = None, max_new_tokens: int = 256, call_prefix: str = "call") -> PolicyOutput:  # fmt: skip
        future = asyncio.get_running_loop().create_future()
        self.pending.append(_Request(policy, prompt, temperature, top_p, seed, max_new_tokens, call_prefix, future))
        self._flush_if_all_parked()
        return await future

    def leave(self) -> None:
        """A worker has no episode left to run: the others no longer wait for it."""
        self.live -= 1
        self._flush_if_all_parked()

    def _flush_if_all_parked(self) -> None:
        if not self.pending or len(self.pending) < self.live:
            return
        pending, self.pending = self.pending, []
        batches: dict[tuple, list[_Request]] = {}
        for r in pending:
            batches.setdefault(r.key, []).append(r)
        for rows in batches.values():
            self.batches.append(len(rows))
            try:
                outs: list[PolicyOutput] | Exception = _call(rows)
            except Exception as e:
                outs = e
            _resolve(rows, outs)


async def run_together(jobs: list[Callable[[BatchGate], Awaitable[T]]], max_concurrent: int | None = None) -> list[T]:
    """Run the jobs (each an episode given the shared gate), at most `max_concurrent` at a time
    (AppWorld: one per pool server, so no episode waits for a server while the others wait for
    it at the gate); results in job order. Each of the workers counts as one live episode until
    the job list is empty."""
    gate = BatchGate()
    todo = list(enumerate(jobs))
    results: list[T | None] = [None] * len(jobs)
    workers = min(max_concurrent or len(jobs), len(jobs))
    gate.live = workers

    async def worker() -> None:
        try:
            while todo:
                i, job = todo.pop(0)
                results[i] = await job(gate)
        finally:
            gate.leave()

    await asyncio.gather(*(worker() for _ in range(workers)))
    return results  # type: ignore[return-value]


def run_batched(jobs: list[Callable[[BatchGate], Awaitable[T]]], max_concurrent: int | None = None) -> list[T]:
    """`run_together` from synchronous code."""
    return asyncio.run(run_together(jobs, max_concurrent))


class RequestBatcher:
    def __init__(self, policy: Policy, max_batch: int = 8, window_s: float = 0.01):
        self.policy, self.max_batch, self.window_s = policy, max_batch, window_s
        self.queue: list[_Request] = []
        self.batches: list[int] = []
        self._worker: asyncio.Task | None = None

    async def generate(self, prompt: list[int], *, temperature: float = 0.0, top_p: float = 1.0,
                       seed: int | None = None, max_new_tokens: int = 256, call_prefix: str = "call") -> PolicyOutput:  # fmt: skip
        future = asyncio.get_running_loop().create_future()
        self.queue.append(_Request(self.policy, prompt, temperature, top_p, seed, max_new_tokens, call_prefix, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        await asyncio.sleep(self.window_s)  # requests issued together (samples starting) join the first batch
        while self.queue:
            key = self.queue[0].key
            rows = [r for r in self.queue if r.key == key][: self.max_batch]
            taken = {id(r) for r in rows}
            self.queue = [r for r in self.queue if id(r) not in taken]
            self.batches.append(len(rows))
            try:  # in a worker thread; the futures are resolved back on the event loop
                outs: list[PolicyOutput] | Exception = await asyncio.to_thread(_call, rows)
            except Exception as e:
                outs = e
            _resolve(rows, outs)
