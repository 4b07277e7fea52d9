"""One AppWorld task as an `Episode`: a contained server process, `execute_code`, AppWorld's tests.

    ep = AppWorldEpisode(pool, "50e1ac9_1")
    start = ep.reset()      # leases a pool slot, forks a contained child for this task and
                            # initialises its world (without ground truth) under a fresh name
    result = ep.step(call)  # runs the code in the child; result.ends_episode once the task is
                            # marked complete (apis.supervisor.complete_task)
    outcome = ep.finish(messages, end_reason)   # kills the child, then AppWorld's evaluation
                                                # in the pool's evaluator process

reward = success = 1 exactly when every test of the task passes (AppWorld's `TestTracker`);
the saved world state is evaluated whatever the end reason (AppWorld scores the final state),
after the child that ran the agent's code is dead. Errors in the model's code are ordinary
tool results (error=False, counted in info["code_errors"]); only a malformed call (unknown
tool, arguments that are not a JSON object with a string `code`) is an error result.

Failures (the rules are in harness.appworld.pool): an infrastructure failure raises
`InfraError` from reset/step/finish after handing the slot back for a restart (the agent loop
retries the episode once, then records infra_error). When the agent's own code hangs the
child, overruns its memory or kills it, `step` answers that as its last tool result and ends
the episode; `finish` scores it 0 with end reason agent_timeout / agent_oom / agent_crash,
without evaluating. Methods block on HTTP: run concurrent episodes in threads (e.g.
`asyncio.to_thread`), at most one per pool slot.
"""

from __future__ import annotations

from typing import Any

from harness.appworld.metrics import scenario_id
from harness.appworld.pool import AgentFault, EnvServer, ServerPool
from harness.appworld.prompt import (
    EXECUTE_CODE_TOOL,
    TOOL_NAME,
    Supervisor,
    system_prompt,
    task_message,
)
from harness.records import (
    EndReason,
    EpisodeStart,
    InfraError,
    Message,
    Outcome,
    ToolCall,
    ToolResult,
)

FAILED_PREFIX = "Execution failed."


class AppWorldEpisode:
    """Implements `harness.records.Episode` for one AppWorld task on a pool of servers."""

    blocking = True  # HTTP calls: the loop runs reset/step/finish in a worker thread

    def __init__(self, pool: ServerPool, task_id: str):
        task_dir = pool.root / "data" / "tasks" / task_id
        if not (task_dir / "specs.json").is_file():
            raise ValueError(
                f"unknown AppWorld task {task_id!r}: {task_dir / 'specs.json'} does not exist"
            )
        if not (task_dir / "ground_truth").is_dir():
            raise ValueError(
                f"AppWorld task {task_id!r} has no ground truth in {task_dir}; it cannot be scored"
            )
        self.pool = pool
        self.task_id = task_id
        self.scenario_id = scenario_id(task_id)
        self.server: EnvServer | None = None
        self.experiment_name: str | None = None
        self.done = False  # the task was marked complete (success or fail) by the agent's code
        self.executions = 0
        self.code_errors = 0
        self.task: dict[str, Any] = {}
        self.fault: AgentFault | None = None  # the agent's code broke its server

    # -- server calls: an InfraError hands the slot back for a restart -----------------------

    def _post(self, method: str, payload: dict[str, Any], timeout_s: float | None = None) -> Any:
        """The child's answer to /method (the whole JSON object)."""
        if self.server is None:
            raise RuntimeError("AppWorldEpisode: call reset() first")
        cfg = self.pool.cfg
        try:
            return self.server.post(
                method, {"task_id": self.task_id, **payload}, timeout_s or cfg.request_timeout_s
            )
        except InfraError as e:  # the slot restarts only when its zygote is gone or mute
            self._release(broken=not self.server.alive(), reason=str(e))
            raise

    def _release(self, broken: bool = False, reason: str = "") -> None:
        """Kill the episode's child and hand the slot back (the zygote is never the agent's)."""
        server, self.server = self.server, None
        if server is not None:
            self.pool.release(server, broken=broken, reason=reason)

    def close(self) -> None:
        """Kill the child, hand the slot back, drop the outputs (safe to call twice)."""
        self._release()
        if self.experiment_name:
            self.pool.remove_outputs(self.experiment_name)

    def __del__(self) -> None:
        # An episode dropped without finish() (a crashed caller) must not keep its server.
        server, self.server = getattr(self, "server", None), None
        if server is not None:
            self.pool.release(server)

    # -- Episode protocol ---------------------------------------------------------------------

    def reset(self) -> EpisodeStart:
        self.close()
        self.server = self.pool.acquire()
        self.experiment_name = self.pool.new_experiment_name(self.task_id)
        self.done, self.executions, self.code_errors, self.fault = False, 0, 0, None
        try:
            self.server.spawn(self.task_id, self.experiment_name, self.pool.cfg.memory_mb)
        except InfraError as e:
            self._release(broken=True, reason=str(e))
            raise
        self.task = self._post(
            "initialize", self.pool.init_payload(self.task_id, self.experiment_name)
        )["output"]
        sup = self.task["supervisor"]
        supervisor = Supervisor(
            sup["first_name"], sup["last_name"], sup["email"], sup["phone_number"]
        )
        return EpisodeStart(
            system_prompt=system_prompt(supervisor, str(self.task["datetime"])),
            tools=[EXECUTE_CODE_TOOL],
            messages=[Message(role="user", content=task_message(self.task["instruction"]))],
            user=None,
        )

    def step(self, call: ToolCall) -> ToolResult:
        if call.name != TOOL_NAME:
            return ToolResult(
                call.id,
                call.name,
                f"Error: unknown tool {call.name!r}; the only tool is {TOOL_NAME}.",
                error=True,
            )
        if call.arguments is None:
            text = f"Error: arguments of {call.name} are not a JSON object: {call.raw_arguments!r}"
            return ToolResult(call.id, call.name, text, error=True)
        code = call.arguments.get("code")
        if not isinstance(code, str):
            return ToolResult(
                call.id,
                call.name,
                'Error: execute_code needs {"code": "<python source>"}.',
                error=True,
            )
        if self.fault is not None:  # the server is gone; the loop ends the episode on this call
            return ToolResult(call.id, call.name, self.fault.detail, ends_episode=True)
        cfg = self.pool.cfg
        try:
            reply = self._post(
                "execute", {"code": code}, cfg.execution_timeout_s + cfg.execution_grace_s
            )
            self.executions += 1
            text = str(reply["output"])
            if reply.get("fault") == "memory":
                raise AgentFault(EndReason.AGENT_OOM, "the agent's code ran out of memory "
                                 f"(limit {cfg.memory_mb} MiB): {text[-300:]}")  # fmt: skip
            if text.startswith(FAILED_PREFIX):
                self.code_errors += 1
            if not self.done:
                self.done = bool(self._post("task_completed", {})["output"])
        except AgentFault as fault:
            self.fault = fault
            self._release()
            return ToolResult(call.id, call.name, f"{FAILED_PREFIX} {fault.detail}", ends_episode=True)
        return ToolResult(call.id, call.name, text, error=False, ends_episode=self.done)

    def finish(self, messages: list[Message], end_reason: EndReason) -> Outcome:
        if end_reason == EndReason.INFRA_ERROR:
            self.close()
            return Outcome(0.0, False, end_reason, feedback="The environment failed.")
        info: dict[str, Any] = {
            "experiment_name": self.experiment_name,
            "scenario_id": self.scenario_id,
            "task_completed": self.done,
            "executions": self.executions,
            "code_errors": self.code_errors,
        }
        if self.fault is not None:  # the agent's code broke its server: scored 0, not evaluated
            self.close()
            info["fault"] = self.fault.detail
            return Outcome(0.0, False, self.fault.reason, components={"tests_passed": 0.0},
                           feedback=f"The episode ended with {self.fault.reason}: "
                                    f"{self.fault.detail}", info=info)  # fmt: skip
        # The child dies before scoring: nothing of the agent's runs while its world is judged.
        self._release()
        assert self.experiment_name is not None
        try:
            answer = self.pool.evaluate(self.task_id, self.experiment_name)
        finally:
            self.pool.remove_outputs(self.experiment_name)
        if "output" not in answer:  # the agent deleted or forged its saved world state
            problem = str(answer.get("tampered") or answer.get("missing") or answer.get("unscorable"))
            info["state_problem"] = problem
            return Outcome(0.0, False, end_reason, components={"tests_passed": 0.0},
                           feedback=f"The world state could not be scored: {problem}", info=info)  # fmt: skip
        report = answer["output"]
        info |= {
            "difficulty": report.get("difficulty"),
            "num_tests": report.get("num_tests"),
            "passes": [p.get("requirement") for p in report.get("passes", [])],
            "failures": [
                {"requirement": f.get("requirement"), "trace": f.get("trace")}
                for f in report.get("failures", [])
            ],
        }
        if self.pool.cfg.keep_outputs:
            info["outputs_dir"] = str(self.pool.outputs_dir(self.experiment_name))
        success = bool(report["success"])
        n_tests = int(report.get("num_tests") or 0)
        passed = len(report.get("passes", []))
        return Outcome(
            reward=1.0 if success else 0.0,
            success=success,
            end_reason=end_reason,
            components={"tests_passed": passed / n_tests if n_tests else float(success)},
            feedback=_feedback(success, info["failures"], self.done),
            info=info,
        )


def _feedback(success: bool, failures: list[dict[str, Any]], completed: bool) -> str:
    if success:
        return "Every test of the task passed."
    lines = (
        [] if completed else ["The task was never marked complete (apis.supervisor.complete_task)."]
    )
    lines += [f"Failed requirement: {f['requirement']}" for f in failures]
    return "\n".join(lines) or "The task's tests did not all pass."
