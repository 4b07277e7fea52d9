"""Trajectories on disk (JSONL) and the reference trajectories the SPEC defines.

Input line: {"id", "task_id", "termination_reason", "messages": [{"role", "content",
"tool_calls": [{"id", "name", "arguments": {...}}], "tool_call_id", "error"}]}.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from harness.airline.domain import OPENING_LINE, AirlineDomain, AirlineTask
from harness.airline.tools import call_tool
from harness.records import EndReason, Message, ToolCall


class TrajectoryError(ValueError):
    """A trajectory line that cannot be scored; the message says what is wrong."""


@dataclass
class Trajectory:
    id: Any
    task_id: str
    termination_reason: str
    messages: list[Message]


def _parse_call(raw: Any, where: str) -> ToolCall:
    if not isinstance(raw, dict):
        raise TrajectoryError(f"{where}: a tool call must be an object")
    if "function" in raw and "name" not in raw:  # OpenAI wire shape
        fn = raw["function"] or {}
        if not isinstance(fn, dict):
            raise TrajectoryError(f"{where}: function must be an object with name and arguments; got {type(fn).__name__}")
        raw = {"id": raw.get("id"), "name": fn.get("name"), "arguments": fn.get("arguments")}
    name = raw.get("name")
    if not isinstance(name, str):
        raise TrajectoryError(f"{where}: tool call without a string name")
    args = raw.get("arguments")
    raw_args = None
    if isinstance(args, str):
        raw_args = args
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            args = None
    if args is not None and not isinstance(args, dict):
        raw_args, args = json.dumps(args), None
    return ToolCall(id=str(raw.get("id") or ""), name=name, arguments=args, raw_arguments=raw_args)


def parse_message(raw: Any, where: str = "message") -> Message:
    if not isinstance(raw, dict):
        raise TrajectoryError(f"{where}: must be an object")
    role = raw.get("role")
    if role not in ("assistant", "user", "tool", "system"):
        raise TrajectoryError(f"{where}: unknown role {role!r}")
    content = raw.get("content")
    if content is not None and not isinstance(content, str):
        raise TrajectoryError(f"{where}: content must be a string or null")
    calls = raw.get("tool_calls") or []
    if not isinstance(calls, list):
        raise TrajectoryError(f"{where}: tool_calls must be a list")
    return Message(
        role=role,
        content=content,
        tool_calls=[_parse_call(c, f"{where}.tool_calls[{i}]") for i, c in enumerate(calls)],
        tool_call_id=raw.get("tool_call_id"),
        error=bool(raw.get("error", False)),
    )


def parse_record(raw: Any) -> Trajectory:
    if not isinstance(raw, dict):
        raise TrajectoryError("a trajectory line must be a JSON object")
    for key in ("task_id", "termination_reason", "messages"):
        if key not in raw:
            raise TrajectoryError(f"missing field {key!r}")
    if not isinstance(raw["messages"], list):
        raise TrajectoryError("messages must be a list")
    if not isinstance(raw["termination_reason"], str):
        raise TrajectoryError("termination_reason must be a string")
    return Trajectory(
        id=raw.get("id"),
        task_id=str(raw["task_id"]),
        termination_reason=raw["termination_reason"],
        messages=[parse_message(m, f"messages[{i}]") for i, m in enumerate(raw["messages"])],
    )


def to_line(traj: Trajectory) -> str:
    return json.dumps(
        {
            "id": traj.id,
            "task_id": traj.task_id,
            "termination_reason": traj.termination_reason,
            "messages": [m.to_dict() for m in traj.messages],
        }
    )


def gold_trajectory(domain: AirlineDomain, task: AirlineTask) -> Trajectory:
    """The SPEC's gold trajectory: opening line; each gold action as an assistant tool call
    followed by its result; one assistant message per communicate_info; the user's ###STOP###."""
    state = domain.db.new_state()
    messages = [Message(role="assistant", content=OPENING_LINE)]
    for i, action in enumerate(task.actions):
        call = ToolCall(id=f"call_{i}", name=action.name, arguments=dict(action.arguments))
        text, error = call_tool(state, action.name, action.arguments)
        messages.append(Message(role="assistant", tool_calls=[call]))
        messages.append(Message(role="tool", content=text, tool_call_id=call.id, error=error))
    messages += [Message(role="assistant", content=info) for info in task.communicate_info]
    messages.append(Message(role="user", content="###STOP###"))
    return Trajectory(f"gold-{task.id}", task.id, str(EndReason.USER_STOP), messages)


def null_trajectory(task: AirlineTask) -> Trajectory:
    """A do-nothing trajectory: the agent greets, the user leaves, nothing is changed."""
    messages = [Message(role="assistant", content=OPENING_LINE), Message(role="user", content="###STOP###")]
    return Trajectory(f"null-{task.id}", task.id, str(EndReason.USER_STOP), messages)
