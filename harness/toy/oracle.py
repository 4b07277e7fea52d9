"""Oracle credit for toy: each agent turn judged against the task's scripted solution (no LLM).

The scripted solution is one lookup per needed key, then `submit` with the answer. A turn earns
+1 when every call in it is a step of that solution not yet taken (a needed key looked up for the
first time, or the right answer submitted); any other turn deviates and earns -1 (a wrong or
repeated lookup, a wrong or malformed submit, a text-only turn). Credit only: scoring is the
episode's own replay.
"""

from __future__ import annotations

from typing import Any

from harness.records import Message
from harness.toy.tasks import make_task


def _turn_matches(calls: list[Any], todo: set[str], answer: int) -> bool:
    if not calls:
        return False  # the solution's every turn is a tool call
    for c in calls:
        args = c.arguments if isinstance(c.arguments, dict) else None
        if args is None or len(args) != 1:
            return False
        if c.name == "lookup" and args.get("key") in todo:
            todo.discard(args["key"])
        elif c.name == "submit" and type(args.get("answer")) is int and args["answer"] == answer:
            continue
        else:
            return False
    return True


def turn_credits(task_id: str, messages: list[Message], turn_index: list[int]) -> list[float]:
    """+1 / -1 per agent turn (turn_index[t] = position of turn t in messages)."""
    task = make_task(task_id)
    todo = set(task.lookups)
    return [1.0 if _turn_matches(messages[i].tool_calls, todo, task.answer) else -1.0 for i in turn_index]


def oracle_credit(task_id: str, trajectories: list[tuple[list[Message], list[int]]], successes: list[bool]) -> dict[str, Any]:
    """A credit reference {"summary", "steps"} for a sibling group, from the scripted solution."""
    task = make_task(task_id)
    steps = []
    deviated = []
    for traj, (messages, turn_index) in enumerate(trajectories):
        credits = turn_credits(task_id, messages, turn_index)
        steps += [{"trajectory": traj, "turn": t, "credit": c, "why": "as the scripted solution" if c > 0
                   else "deviates from the scripted solution"} for t, c in enumerate(credits)]  # fmt: skip
        if not successes[traj]:
            deviated.append(f"{traj} (turns {', '.join(str(t) for t, c in enumerate(credits) if c < 0) or 'none'})")
    plan = ", ".join([f"lookup {k}" for k in task.lookups] + [f"submit {task.answer}"])
    summary = f"The scripted solution: {plan} ({task.explanation})."
    if deviated:
        summary += " Failed trajectories deviate at: " + "; ".join(deviated) + "."
    return {"summary": summary, "steps": steps}
