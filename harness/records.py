"""The records every benchmark shares: messages, tool calls, the Episode protocol and its Outcome.

One conversation shape serves evaluation (inspect-ai) and training rollouts alike:

    start = episode.reset()            # system prompt, tool schemas, opening messages, user spec
    result = episode.step(call)        # one agent tool call -> one tool result (never raises)
    outcome = episode.finish(messages, end_reason)   # scored only by the benchmark's own rules

The agent loop owns the conversation (who speaks when, step caps, error counts); the episode
owns the world state and the scoring. Neither knows about the other's model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable


class EndReason(StrEnum):
    """Why a conversation ended: one list for every benchmark.

    user_stop / agent_stop are the only normal endings; on τ³ every other reason scores 0.
    infra_error (a crashed server, a lost connection) is the only reason left out of metrics;
    it is counted, never scored as the agent's failure. agent_timeout / agent_oom /
    agent_crash: the agent's own code hung, overran its memory or killed the environment
    server running it (AppWorld): scored 0 like every other abnormal ending.
    """

    USER_STOP = "user_stop"
    AGENT_STOP = "agent_stop"
    MAX_STEPS = "max_steps"
    TOO_MANY_ERRORS = "too_many_errors"
    CONTEXT_OVERFLOW = "context_overflow"
    AGENT_ERROR = "agent_error"
    AGENT_TIMEOUT = "agent_timeout"
    AGENT_OOM = "agent_oom"
    AGENT_CRASH = "agent_crash"
    INFRA_ERROR = "infra_error"


NORMAL_ENDINGS = frozenset({EndReason.USER_STOP, EndReason.AGENT_STOP})


class InfraError(RuntimeError):
    """The environment's infrastructure failed (a crashed or timed-out server, a lost
    connection): not the agent's fault. Raised by an Episode; the agent loop retries the
    episode once, then records end_reason infra_error, which metrics leave out and count."""


@dataclass
class ToolCall:
    """One tool call as the agent emitted it.

    `arguments` is the parsed JSON object; when the model's argument text was not a JSON
    object, `arguments` is None and `raw_arguments` keeps the text so the call can be
    answered with a tool error (and replayed as the no-op it was).
    """

    id: str
    name: str
    arguments: dict[str, Any] | None
    raw_arguments: str | None = None


@dataclass
class ToolResult:
    """The environment's answer to one ToolCall: text for the agent, and an error flag.

    ends_episode: the call completed the task by the benchmark's own signal (e.g. AppWorld's
    `apis.supervisor.complete_task`); the agent loop then ends with agent_stop.
    """

    call_id: str
    name: str
    content: str
    error: bool = False
    ends_episode: bool = False


Role = Literal["system", "assistant", "user", "tool"]


@dataclass
class Message:
    """One conversation message in the OpenAI-like shape used by trajectories on disk."""

    role: Role
    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    error: bool = False

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            d["tool_calls"] = [
                {"id": c.id, "name": c.name, "arguments": c.arguments if c.arguments is not None else c.raw_arguments}
                for c in self.tool_calls
            ]
        if self.role == "tool":
            d["tool_call_id"] = self.tool_call_id
            d["error"] = self.error
        return d


@dataclass
class UserSpec:
    """What a simulated user needs: its system prompt and the tokens that end the conversation.

    stop_tokens end it from the user's side (user_stop); agent_stop_tokens from the agent's
    (agent_stop). τ³-airline sets none for the agent: upstream's conversational agent cannot
    end a conversation, its ###STOP### is just text the user reads.
    """

    system_prompt: str
    stop_tokens: tuple[str, ...]
    agent_stop_tokens: tuple[str, ...] = ("###STOP###",)


@dataclass
class EpisodeStart:
    """What `Episode.reset` hands the agent loop.

    tools: OpenAI function schemas ({"type": "function", "function": {...}}).
    messages: opening messages already in the conversation (e.g. the agent's greeting).
    user: the simulated user's spec, or None where the benchmark has no user turn.
    """

    system_prompt: str
    tools: list[dict[str, Any]]
    messages: list[Message]
    user: UserSpec | None = None


@dataclass
class Outcome:
    """The benchmark's verdict on one finished episode.

    reward: in [0, 1]; success: reward == 1 (within 1e-6, as upstream τ² counts it).
    components: named parts of the reward (τ³: db_match, communicate_ok as 0/1 floats).
    feedback: a short text a trainer may show a teacher (training only; never shown to the
    deployed policy). info: diagnostics that are not part of the reward.
    """

    reward: float
    success: bool
    end_reason: EndReason
    components: dict[str, float] = field(default_factory=dict)
    feedback: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["end_reason"] = str(self.end_reason)
        return d


@dataclass
class Sampling:
    """How a model call samples: the one record for evaluation (sent to inspect models as their
    GenerateConfig), training rollouts (the Policy's generate arguments) and every row a sampler
    continues (harness.sampler.SampleRequest carries one).

    max_tokens: tokens per reply (None: the model's own default); seed: the eval epoch's seed
    (rollouts derive one per turn from their own)."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int | None = None
    seed: int | None = None


REWARD_RANGE = (0.0, 1.0)  # every benchmark's Outcome.reward; reports refuse rows outside it


def is_success(reward: float) -> bool:
    """Upstream τ² counts a trial as a success when its reward is 1 up to 1e-6."""
    return abs(reward - 1.0) <= 1e-6


@runtime_checkable
class Episode(Protocol):
    """One task instance with its own world state. Every benchmark implements this."""

    task_id: str
    # True when reset/step/finish block on I/O (AppWorld's HTTP servers): the loop then runs them
    # in a worker thread so other episodes keep going.
    blocking: bool

    def reset(self) -> EpisodeStart:
        """Start (or restart) the episode on a fresh world state."""
        ...

    def step(self, call: ToolCall) -> ToolResult:
        """Run one tool call. A bad call becomes an error result; this never raises."""
        ...

    def finish(self, messages: list[Message], end_reason: EndReason) -> Outcome:
        """Score the conversation by the benchmark's own rules."""
        ...
