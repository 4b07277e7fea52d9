"""One toy task as an `Episode`: the `lookup` and `submit` tools, a replayed verifiable score."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from harness.records import (
    EndReason,
    EpisodeStart,
    Message,
    Outcome,
    ToolCall,
    ToolResult,
    is_success,
)
from harness.toy.tasks import ToyTask

SYSTEM_PROMPT = (
    "You solve lookup puzzles with tools. Call lookup to read the value of a key. "
    "When you know the answer, call submit with it as an integer."
)

# additionalProperties is spelled out because inspect's ToolInfo adds it: the local provider
# (evaluation) and the Policy called directly (training) then render byte-identical prompts.
TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": "lookup", "description": "Read the value stored under a key.",
        "parameters": {"type": "object", "properties": {"key": {"type": "string"}},
                       "required": ["key"], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "submit", "description": "Submit the final answer. Ends the task.",
        "parameters": {"type": "object", "properties": {"answer": {"type": "integer"}},
                       "required": ["answer"], "additionalProperties": False}}},
]  # fmt: skip

_ARGS = {"lookup": ("key", str, "a string"), "submit": ("answer", int, "an integer")}


@dataclass
class ToyWorld:
    """The state one episode's tool calls change: successful lookups and the submitted answer."""

    task: ToyTask
    looked_up: list[str] = field(default_factory=list)
    submitted: int | None = None

    def call(
        self, name: str, arguments: dict[str, Any] | None, raw: str | None = None
    ) -> tuple[str, bool, bool]:
        """One tool call -> (text, error, ends_episode). A bad call is an error; never raises."""
        if not isinstance(name, str) or name not in _ARGS:
            return f"Error: unknown tool {name!r}; the tools are lookup and submit.", True, False
        if not isinstance(arguments, dict):
            return f"Error: arguments of {name} are not a valid JSON object: {raw!r}", True, False
        if self.submitted is not None:
            return "Error: the answer was already submitted.", True, False
        arg, typ, typ_name = _ARGS[name]
        extra = sorted(str(k) for k in arguments if k != arg)
        if extra:
            return f"Error: {name} got unexpected argument(s) {', '.join(extra)}.", True, False
        if arg not in arguments:
            return f"Error: {name} needs the argument {arg}.", True, False
        value = arguments[arg]
        if not isinstance(value, typ) or isinstance(value, bool):
            return f"Error: {arg} must be {typ_name}, got {value!r}.", True, False
        if name == "submit":
            self.submitted = value
            return f"Submitted {value}.", False, True
        if value not in self.task.table:
            return f"Error: no key {value!r}.", True, False
        self.looked_up.append(value)
        return f"{value} = {self.task.table[value]}", False, False


class ToyEpisode:
    """Implements `harness.records.Episode` for one toy task (no simulated user)."""

    blocking = False  # in-process tools

    def __init__(self, task: ToyTask):
        self.task = task
        self.task_id = task.id
        self.world = ToyWorld(task)

    def reset(self) -> EpisodeStart:
        self.world = ToyWorld(self.task)
        return EpisodeStart(
            system_prompt=SYSTEM_PROMPT,
            tools=copy.deepcopy(TOOLS),
            messages=[Message(role="user", content=self.task.question)],
            user=None,
        )

    def step(self, call: ToolCall) -> ToolResult:
        text, error, ends = self.world.call(call.name, call.arguments, call.raw_arguments)
        return ToolResult(call.id, call.name, text, error=error, ends_episode=ends)

    def finish(self, messages: list[Message], end_reason: EndReason) -> Outcome:
        return score(self.task, messages, end_reason)


def replay(task: ToyTask, messages: list[Message]) -> ToyWorld:
    """The world after the conversation's tool calls, replayed in order on a fresh state."""
    world = ToyWorld(task)
    for m in messages:
        if m.role == "assistant":
            for c in m.tool_calls:
                world.call(c.name, c.arguments, c.raw_arguments)
    return world


def score(task: ToyTask, messages: list[Message], end_reason: EndReason) -> Outcome:
    """Reward 1 iff the episode ended by a submit (agent_stop) with the right answer.

    components: lookups_ok (fraction of the ideal lookups made), submitted (a valid submit
    call), answer_ok (the reward). Scored by replay, so a saved trajectory scores the same.
    """
    world = replay(task, messages)
    missing = [k for k in task.lookups if k not in world.looked_up]
    submitted = world.submitted is not None
    right = end_reason == EndReason.AGENT_STOP and world.submitted == task.answer
    reward = 1.0 if right else 0.0
    if right:
        feedback = f"Correct: {task.explanation}."
    elif not submitted:
        feedback = (
            f"The episode ended ({end_reason}) without a valid submit call; "
            f"the answer was {task.explanation}."
        )
    elif world.submitted != task.answer:
        hint = f"; never looked up {', '.join(missing)}" if missing else ""
        feedback = f"Submitted {world.submitted} but the answer was {task.explanation}{hint}."
    else:
        feedback = f"Submitted the right answer, but the episode ended with {end_reason}."
    return Outcome(
        reward=reward,
        success=is_success(reward),
        end_reason=end_reason,
        components={
            "lookups_ok": (len(task.lookups) - len(missing)) / len(task.lookups),
            "submitted": float(submitted),
            "answer_ok": reward,
        },
        feedback=feedback,
        info={
            "level": task.level,
            "answer": task.answer,
            "submitted_answer": world.submitted,
            "missing_lookups": missing,
        },
    )
