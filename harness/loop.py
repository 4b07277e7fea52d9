"""The one conversation loop: agent ⇄ tools ⇄ simulated user, for evaluation and training alike.

Turn-taking follows the tau2-bench orchestrator: the episode's opening messages (τ³: the
agent's greeting) come first; then the user speaks; an agent message with tool calls goes to
the environment and the agent speaks again; an agent text message goes to the user (or, where
the benchmark has no user, ends the episode). Every message counts as a step. The episode ends
with user_stop (a stop token in the user's text), agent_stop (an agent stop token, none on τ³,
or a tool result that completes the task), max_steps, too_many_errors (tool errors), or
context_overflow / agent_error from the agent's model. An `InfraError` from the environment or
a model transport failure is retried once, then recorded as infra_error.

The models are plain async callables (`AgentModel`, `UserModel`): inspect-ai models in
evaluation, the trained `Policy` in rollouts. The loop never scores; `Episode.finish` does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from harness.records import (
    EndReason,
    Episode,
    EpisodeStart,
    InfraError,
    Message,
    Outcome,
    ToolCall,
    ToolResult,
)


@dataclass
class LoopConfig:
    """Upstream τ² defaults: 200 steps (every message counts), 10 tool errors."""

    max_steps: int = 200
    max_errors: int = 10
    infra_retries: int = 1


@dataclass
class Reply:
    """One model turn. `status` says whether the model produced a message at all:
    ok | context_overflow (prompt no longer fits) | error (the model failed; `error` says why).
    `trace` carries what a trainer needs (token ids, logprobs); evaluation ignores it."""

    message: Message
    status: Literal["ok", "context_overflow", "error"] = "ok"
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    trace: Any = None


class AgentModel(Protocol):
    async def __call__(self, system_prompt: str, tools: list[dict[str, Any]], messages: list[Message]) -> Reply: ...


class UserModel(Protocol):
    async def __call__(self, system_prompt: str, messages: list[Message]) -> Reply: ...


@dataclass
class EpisodeResult:
    """A finished conversation with its outcome and counters (one tidy-results row's worth)."""

    messages: list[Message]
    outcome: Outcome
    system_prompt: str = ""
    tools: list[dict[str, Any]] = field(default_factory=list)
    turns: int = 0
    tool_calls: int = 0
    tool_errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    user_input_tokens: int = 0  # the simulated user's model (0 where the benchmark has no user)
    user_output_tokens: int = 0
    seconds: float = 0.0
    attempts: int = 1
    traces: list[Any] = field(default_factory=list)  # one per agent turn, in order
    turn_message_index: list[int] = field(default_factory=list)  # messages[i] of each agent turn


def flip_for_user(messages: list[Message]) -> list[Message]:
    """The user simulator's view: agent text becomes 'user', the user's own text 'assistant';
    tool calls and tool results are hidden, as upstream."""
    out = []
    for m in messages:
        if m.role == "assistant" and m.content and not m.tool_calls:
            out.append(Message(role="user", content=m.content))
        elif m.role == "user" and m.content is not None:
            out.append(Message(role="assistant", content=m.content))
    return out


class _End(Exception):
    def __init__(self, reason: EndReason, detail: str = ""):
        self.reason, self.detail = reason, detail


async def _call(episode: Episode, method: str, *args: Any) -> Any:
    """Episodes that block on I/O (AppWorld's HTTP servers) run in a worker thread, so one
    episode waiting on its server never stalls the others sharing the event loop."""
    fn = getattr(episode, method)
    if episode.blocking:
        return await asyncio.to_thread(fn, *args)
    return fn(*args)


async def _run_once(episode: Episode, agent: AgentModel, user: UserModel | None, cfg: LoopConfig) -> EpisodeResult:
    start: EpisodeStart = await _call(episode, "reset")
    msgs = list(start.messages)
    res = EpisodeResult(messages=msgs, outcome=None, system_prompt=start.system_prompt, tools=start.tools)  # type: ignore[arg-type]  # finish sets it below
    has_user = start.user is not None and user is not None
    speaker = "user" if has_user and (not msgs or msgs[-1].role == "assistant") else "agent"
    errors = 0
    detail = ""
    try:
        while True:
            if len(msgs) >= cfg.max_steps:
                raise _End(EndReason.MAX_STEPS)
            if speaker == "user":
                assert start.user is not None and user is not None
                reply = await user(start.user.system_prompt, flip_for_user(msgs))
                res.user_input_tokens += reply.input_tokens
                res.user_output_tokens += reply.output_tokens
                if reply.status == "context_overflow":
                    raise _End(EndReason.CONTEXT_OVERFLOW, "user model: " + (reply.error or ""))
                if reply.status == "error":
                    raise InfraError(f"user model failed: {reply.error}")
                text = reply.message.content or ""
                msgs.append(Message(role="user", content=text))
                if any(tok in text for tok in start.user.stop_tokens):
                    raise _End(EndReason.USER_STOP)
                speaker = "agent"
                continue

            reply = await agent(start.system_prompt, start.tools, msgs)
            res.input_tokens += reply.input_tokens
            res.output_tokens += reply.output_tokens
            if reply.status == "context_overflow":
                raise _End(EndReason.CONTEXT_OVERFLOW, reply.error or "")
            if reply.status == "error":
                raise _End(EndReason.AGENT_ERROR, reply.error or "")
            m = reply.message
            res.traces.append(reply.trace)
            res.turn_message_index.append(len(msgs))
            msgs.append(m)
            res.turns += 1
            if m.tool_calls:
                done = False
                for call in m.tool_calls:
                    result: ToolResult = await _call(episode, "step", call)
                    msgs.append(Message(role="tool", content=result.content, tool_call_id=call.id, error=result.error))
                    res.tool_calls += 1
                    errors += result.error
                    done = done or result.ends_episode
                res.tool_errors = errors
                if done:
                    raise _End(EndReason.AGENT_STOP)
                if errors >= cfg.max_errors:
                    raise _End(EndReason.TOO_MANY_ERRORS)
                continue
            content = m.content or ""
            if not content.strip():
                raise _End(EndReason.AGENT_ERROR, "empty agent message")
            if start.user is None or user is None or any(tok in content for tok in start.user.agent_stop_tokens):
                raise _End(EndReason.AGENT_STOP)
            speaker = "user"
    except _End as end:
        reason, detail = end.reason, end.detail
    res.outcome = await _call(episode, "finish", msgs, reason)
    if detail:
        res.outcome.info["end_detail"] = detail
    return res


async def run_episode(
    make_episode: Callable[[], Episode],
    agent: AgentModel,
    user: UserModel | None,
    cfg: LoopConfig | None = None,
) -> EpisodeResult:
    """Run one episode to its end; an infrastructure failure is retried, then recorded."""
    cfg = cfg or LoopConfig()
    t0 = time.perf_counter()
    failures: list[str] = []
    for attempt in range(1, cfg.infra_retries + 2):
        try:
            res = await _run_once(make_episode(), agent, user, cfg)
            res.attempts = attempt
            res.seconds = time.perf_counter() - t0
            if failures:
                res.outcome.info["infra_failures"] = failures
            return res
        except InfraError as e:
            failures.append(str(e))
    outcome = Outcome(
        reward=0.0,
        success=False,
        end_reason=EndReason.INFRA_ERROR,
        feedback="The environment failed; this episode says nothing about the agent.",
        info={"infra_failures": failures},
    )
    return EpisodeResult(messages=[], outcome=outcome, attempts=len(failures), seconds=time.perf_counter() - t0)


def tool_call_from_text(call_id: str, name: str, arguments: Any) -> ToolCall:
    """A ToolCall from a model's (name, arguments) where arguments may be a JSON string."""
    import json

    if isinstance(arguments, dict):
        return ToolCall(call_id, name, arguments)
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments) if arguments.strip() else {}
        except (ValueError, RecursionError):  # never raises: deep nesting is the agent's error too
            return ToolCall(call_id, name, None, raw_arguments=arguments)
        if isinstance(parsed, dict):
            return ToolCall(call_id, name, parsed)
        return ToolCall(call_id, name, None, raw_arguments=arguments)
    return ToolCall(call_id, name, None, raw_arguments=repr(arguments))
