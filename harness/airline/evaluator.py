"""The τ³-airline evaluator, as the official tau2-bench evaluator scores airline tasks.

1. Termination gate: only user_stop and agent_stop can score; anything else gets reward 0.
2. DB: the trajectory's write-tool calls (successful and failed, in order; reads, generic and
   unknown tools skipped) are replayed on a fresh DB; the task's gold actions on another;
   db_match iff the two are equal under the official canonical JSON (see db.py).
   Replay is lenient: a recorded tool output that differs from today's is not a failure.
3. COMMUNICATE: each communicate_info string, lower-cased, must occur in some assistant message's
   text, lower-cased with commas removed (upstream removes commas from the message only).
4. reward = product over reward_basis; success iff reward == 1 (within 1e-6).

Gold end states are computed once per task and reused.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

from harness.airline.db import AirlineState
from harness.airline.domain import AirlineDomain, AirlineTask
from harness.airline.tools import WRITE_TOOLS, call_tool
from harness.records import NORMAL_ENDINGS, EndReason, Message, Outcome, ToolCall, is_success


@dataclass
class GoldState:
    state: AirlineState
    failed_writes: list[str]  # gold write actions that raised: the gold end state is incomplete


_GOLD: weakref.WeakKeyDictionary[AirlineDomain, dict[str, GoldState]] = weakref.WeakKeyDictionary()
_GOLD_LOCK = threading.Lock()


def gold_state(domain: AirlineDomain, task: AirlineTask) -> GoldState:
    """The DB after the task's gold actions, computed once per task per process."""
    with _GOLD_LOCK:
        per_domain = _GOLD.setdefault(domain, {})
        cached = per_domain.get(task.id)
        if cached is None:
            state = domain.db.new_state()
            failed = []
            for action in task.actions:
                text, error = call_tool(state, action.name, action.arguments)
                if error and action.name in WRITE_TOOLS:
                    failed.append(f"{action.action_id or action.name}: {text}")
            cached = per_domain[task.id] = GoldState(state, failed)
        return cached


def replay(domain: AirlineDomain, calls: Iterable[ToolCall]) -> AirlineState:
    """A fresh DB with the given agent calls' write tools applied in order."""
    state = domain.db.new_state()
    for call in calls:
        if call.name in WRITE_TOOLS:
            call_tool(state, call.name, call.arguments)
    return state


def agent_tool_calls(messages: Iterable[Message]) -> list[ToolCall]:
    return [c for m in messages if m.role == "assistant" for c in m.tool_calls]


def communicate_checks(task: AirlineTask, messages: list[Message]) -> dict[str, bool]:
    texts = [
        m.content.lower().replace(",", "")
        for m in messages
        if m.role == "assistant" and isinstance(m.content, str) and m.content.strip()
    ]
    return {info: any(info.lower() in t for t in texts) for info in task.communicate_info}


def score(domain: AirlineDomain, task: AirlineTask, messages: list[Message], end_reason: EndReason | str) -> Outcome:
    """Score one conversation by the official rules. Components are computed even when the
    termination gate sets the reward to 0, so a trainer can see what the agent got right."""
    try:
        end = EndReason(end_reason)
    except ValueError:
        end = None  # an upstream reason we do not produce (e.g. "user_error"): scores 0
    gold = gold_state(domain, task)
    predicted = replay(domain, agent_tool_calls(messages))
    differing = predicted.diff(gold.state)
    db_match = not differing
    checks = communicate_checks(task, messages)
    communicate_ok = all(checks.values())

    reward = 1.0
    if "DB" in task.reward_basis and not (db_match and gold.failed_writes):
        # Upstream does not certify a match against an incomplete gold state: the DB factor
        # is then left out (a mismatch still scores 0).
        reward *= 1.0 if db_match else 0.0
    if "COMMUNICATE" in task.reward_basis:
        reward *= 1.0 if communicate_ok else 0.0
    gated = end not in NORMAL_ENDINGS
    if gated:
        reward = 0.0

    feedback = []
    if gated:
        feedback.append(f"The conversation ended with {end_reason}, which scores 0 whatever was done.")
    if not db_match:
        where = ", ".join(f"{table[:-1]} {key}" for table, key in differing[:8])
        more = f" and {len(differing) - 8} more" if len(differing) > 8 else ""
        feedback.append(f"The database end state is wrong: {where}{more} should have ended differently.")
    missing = [info for info, ok in checks.items() if not ok]
    if missing:
        feedback.append("The agent never told the user: " + "; ".join(repr(m) for m in missing) + ".")
    if not feedback:
        feedback.append("The task was solved.")

    info = {"termination_reason": str(end_reason), "gated": gated, "differing_records": [f"{t}/{k}" for t, k in differing]}
    if gold.failed_writes:
        info["gold_replay_incomplete"] = gold.failed_writes
    return Outcome(
        reward=reward,
        success=is_success(reward),
        end_reason=end if end is not None else EndReason.AGENT_ERROR,
        components={"db_match": float(db_match), "communicate_ok": float(communicate_ok)},
        feedback=" ".join(feedback),
        info=info,
    )

