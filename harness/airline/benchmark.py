"""τ³-airline as a registered benchmark: the 14 tools and the policy, a simulated user, the
official scorer, the do-nothing floor and the gold actions as oracle credit."""

from __future__ import annotations

from typing import Any

from harness.airline.data import TAU3_AIRLINE
from harness.benchmarks import Benchmark, EvalProtocol, register
from harness.records import Episode, Message


@register
class Tau3Airline(Benchmark):
    name = "tau3-airline"
    # upstream τ² (tau2-bench run defaults): 200 messages, 10 tool errors, the provider's reply limit
    protocol = EvalProtocol(max_steps=200, max_errors=10, max_tokens=None, user=True)
    components = ("db_match", "communicate_ok")
    has_floor = True
    has_oracle = True
    data = TAU3_AIRLINE
    default_split = "test"

    def __init__(self, opening_line: str | None = None, data_dir: str | None = None):
        from harness.airline.domain import OPENING_LINE, load_domain

        self.domain = load_domain(data_dir)
        self.opening_line = OPENING_LINE if opening_line is None else opening_line
        self._null: dict[str, bool] = {}

    def split_ids(self, split: str) -> list[str]:
        return [t.id for t in self.domain.split(split)]

    def episode(self, task_id: str) -> Episode:
        from harness.airline.episode import AirlineEpisode

        return AirlineEpisode(self.domain, self.domain.task(task_id), self.opening_line)

    def null_success(self, task_id: str) -> bool:
        """The do-nothing trajectory (greeting, the user leaves) scored by the official rules;
        23 of the 50 tasks pass it."""
        if task_id not in self._null:
            from harness.airline.evaluator import score
            from harness.airline.trajectories import null_trajectory

            task = self.domain.task(task_id)
            traj = null_trajectory(task)
            self._null[task_id] = score(self.domain, task, traj.messages, traj.termination_reason).success
        return self._null[task_id]

    def task_facts(self, task_id: str) -> dict[str, Any]:
        from harness.airline.evaluator import gold_state

        task = self.domain.task(task_id)
        return {
            "scenario_id": "",
            "null_success": self.null_success(task_id),
            "write_required": bool(gold_state(self.domain, task).state.touched()),
        }

    def oracle_credit(self, task_id: str, trajectories: list[tuple[list[Message], list[int]]],
                      successes: list[bool]) -> dict[str, Any]:  # fmt: skip
        """Credit from the task's gold actions (harness/airline/oracle.py), for the `oracle` provider."""
        from harness.airline.oracle import oracle_credit

        return oracle_credit(self.domain, task_id, trajectories, successes)

    def manifest(self) -> dict[str, Any]:
        return {"data_dir": str(self.domain.data_dir), "data_hashes": self.domain.file_hashes(),
                "data_version": f"{TAU3_AIRLINE.upstream_repo}@{TAU3_AIRLINE.upstream_commit}",
                "tool_descriptions": self.domain.tool_descriptions, "opening_line": self.opening_line}  # fmt: skip
