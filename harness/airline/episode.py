"""One τ³-airline task as an `Episode`: its own cheap DB state, the 14 tools, the official scorer."""

from __future__ import annotations

from harness.airline.domain import OPENING_LINE, USER_STOP_TOKENS, AirlineDomain, AirlineTask
from harness.airline.evaluator import score
from harness.airline.tools import call_tool
from harness.records import (
    EndReason,
    EpisodeStart,
    Message,
    Outcome,
    ToolCall,
    ToolResult,
    UserSpec,
)


class AirlineEpisode:
    """Implements `harness.records.Episode` for one τ³-airline task."""

    blocking = False  # in-process tools

    def __init__(self, domain: AirlineDomain, task: AirlineTask, opening_line: str = OPENING_LINE):
        self.domain = domain
        self.task = task
        self.task_id = task.id
        self.opening_line = opening_line
        self.state = domain.db.new_state()

    def reset(self) -> EpisodeStart:
        self.state = self.domain.db.new_state()
        return EpisodeStart(
            system_prompt=self.domain.agent_system_prompt(),
            tools=self.domain.tool_schemas,
            messages=[Message(role="assistant", content=self.opening_line)] if self.opening_line else [],
            # No agent stop token: upstream's agent cannot end the conversation (see README).
            user=UserSpec(self.domain.user_system_prompt(self.task), USER_STOP_TOKENS, agent_stop_tokens=()),
        )

    def step(self, call: ToolCall) -> ToolResult:
        if call.arguments is None:
            text = f"Error: arguments of {call.name} are not a valid JSON object: {call.raw_arguments!r}"
            return ToolResult(call.id, call.name, text, error=True)
        text, error = call_tool(self.state, call.name, call.arguments)
        return ToolResult(call.id, call.name, text, error)

    def finish(self, messages: list[Message], end_reason: EndReason) -> Outcome:
        # Scored by replay on a fresh DB, exactly as the official evaluator does, so that a
        # live episode and `sgcd-bench score` on its saved trajectory always agree.
        return score(self.domain, self.task, messages, end_reason)
