"""Oracle credit for τ³-airline: each agent turn judged against the task's gold actions (no LLM).

Per agent turn (credit only; scoring stays the DB replay of evaluator.py):
  +1  a write call that matches a gold write action not matched yet: same tool, and arguments
      equal as the gold trajectory writes them (SPEC.md: the gold actions' arguments as given),
      or arguments the SPEC's DB rules cannot tell apart from them: applied alone to a fresh DB,
      both succeed and leave the same DB (a payment amount 100.0 builds the same record as 100;
      total_baggages 2.0 assigned onto a reservation does not equal 2)
  -1  a write call no (remaining) gold action has; one such call makes the whole turn -1
  -1  the trajectory's last agent turn, when a required communicate_info string never occurs
      in any assistant message (the evaluator's own check)
   0  every other turn (reads, generic tools, text)
"""

from __future__ import annotations

import json
from typing import Any

from harness.airline.db import canonical
from harness.airline.domain import AirlineDomain, AirlineTask, GoldAction
from harness.airline.evaluator import communicate_checks
from harness.airline.tools import WRITE_TOOLS, call_tool
from harness.records import Message, ToolCall


def _effect(domain: AirlineDomain, name: str, arguments: Any):
    state = domain.db.new_state()
    _, error = call_tool(state, name, arguments)
    return None if error else state


def call_matches(domain: AirlineDomain, call: ToolCall, action: GoldAction) -> bool:
    """Same tool, and the same arguments (or the same DB change from a fresh DB)."""
    if call.name != action.name or not isinstance(call.arguments, dict):
        return False
    if canonical(call.arguments) == canonical(action.arguments):
        return True
    mine, gold = _effect(domain, call.name, call.arguments), _effect(domain, action.name, action.arguments)
    return mine is not None and gold is not None and not mine.diff(gold)


def _short(action: GoldAction) -> str:
    args = json.dumps(action.arguments, sort_keys=True)
    return f"{action.action_id or '?'} {action.name}({args[:160]}{'…' if len(args) > 160 else ''})"


def turn_credits(domain: AirlineDomain, task: AirlineTask, messages: list[Message], turn_index: list[int]) -> tuple[list[float], list[GoldAction], list[str]]:  # fmt: skip
    """Per agent turn its credit; also the gold write actions never matched and the
    communicate_info strings never said."""
    todo = [a for a in task.actions if a.name in WRITE_TOOLS]
    credits = []
    for i in turn_index:
        writes = [c for c in messages[i].tool_calls if c.name in WRITE_TOOLS]
        matched = extra = 0
        for c in writes:
            hit = next((a for a in todo if call_matches(domain, c, a)), None)
            if hit is None:
                extra += 1
            else:
                todo.remove(hit)
                matched += 1
        credits.append(-1.0 if extra else 1.0 if matched else 0.0)
    unsaid = [info for info, ok in communicate_checks(task, messages).items() if not ok]
    if unsaid and credits:
        credits[-1] = -1.0
    return credits, todo, unsaid


def oracle_credit(domain: AirlineDomain, task_id: str, trajectories: list[tuple[list[Message], list[int]]],
                  successes: list[bool]) -> dict[str, Any]:  # fmt: skip
    """A credit reference {"summary", "steps"} for a sibling group, from the gold actions."""
    task = domain.task(task_id)
    steps, missed = [], []
    for traj, (messages, turn_index) in enumerate(trajectories):
        credits, todo, unsaid = turn_credits(domain, task, messages, turn_index)
        for t, c in enumerate(credits):
            why = "matches a gold write action" if c > 0 else "a write no gold action has, or a required fact never said" if c < 0 else ""
            steps.append({"trajectory": traj, "turn": t, "credit": c, "why": why})
        if not successes[traj]:
            parts = [f"gold action {_short(a)}" for a in todo] + [f"never said {u!r}" for u in unsaid]
            missed.append(f"trajectory {traj} missed " + ("; ".join(parts) if parts else "nothing the gold actions require (an extra write or the ending failed it)"))
    writes = [a for a in task.actions if a.name in WRITE_TOOLS]
    summary = f"The gold solution makes {len(writes)} write call(s)" + (": " + "; ".join(_short(a) for a in writes) if writes else "")
    summary += "."
    if missed:
        summary += " " + ". ".join(missed) + "."
    return {"summary": summary, "steps": steps}
