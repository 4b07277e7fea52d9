"""Adapters between the conversation loop's records and inspect-ai's models and messages.

`InspectAgent` / `InspectUser` turn any inspect `Model` (openai-api/…, vllm/…, local/…) into the
loop's `AgentModel` / `UserModel`, sending the epoch's seed and the configured temperature on
every call. A transport failure or a reply without any choice becomes an `InfraError` (retried,
then recorded), never a crash.

What a model returns can hold text that inspect cannot write to its log (a lone UTF-16 surrogate
such as "\\ud83d" makes the whole log write fail). `guard_model` scrubs every reply as the
provider returns it, before inspect records it: such characters become U+FFFD.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

from inspect_ai.model import (
    ChatMessage,
    ChatMessageAssistant,
    ChatMessageSystem,
    ChatMessageTool,
    ChatMessageUser,
    GenerateConfig,
    Model,
)
from inspect_ai.tool import ToolCall as InspectToolCall
from inspect_ai.tool import ToolInfo, ToolParams
from inspect_ai.util import JSONSchema
from pydantic import BaseModel

from harness.loop import Reply, tool_call_from_text
from harness.records import InfraError, Message, Sampling, ToolCall

_GUARDED = "_sgcd_scrubbed"


def scrub_text(text: str) -> str:
    """`text` with each lone surrogate (not valid Unicode, not writable as UTF-8) as U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def scrub(obj: Any) -> Any:
    """`obj` with every string scrubbed (scrub_text): dicts, lists and tuples are copied where
    something changed; pydantic models and dataclasses (inspect's records, the loop's messages)
    are fixed in place. The common case, nothing to scrub, is one C-speed JSON pass."""
    if isinstance(obj, str):
        return scrub_text(obj)
    try:
        json.dumps(obj, ensure_ascii=False, default=_fields).encode("utf-8")
        return obj
    except (UnicodeEncodeError, TypeError, ValueError, RecursionError):
        return _scrub(obj)


def _fields(obj: Any) -> Any:
    if isinstance(obj, BaseModel) or dataclasses.is_dataclass(obj):
        return vars(obj)
    return str(obj)


def _scrub(obj: Any) -> Any:
    if isinstance(obj, str):
        return scrub_text(obj)
    if isinstance(obj, dict):
        items = [(_scrub(k), _scrub(v)) for k, v in obj.items()]
        if all(k is k0 and v is v0 for (k, v), (k0, v0) in zip(items, obj.items(), strict=True)):
            return obj
        return dict(items)
    if isinstance(obj, list | tuple):
        vals = [_scrub(v) for v in obj]
        if all(v is v0 for v, v0 in zip(vals, obj, strict=True)):
            return obj
        return type(obj)(vals) if isinstance(obj, list) else tuple(vals)
    names = list(type(obj).model_fields) if isinstance(obj, BaseModel) else []
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        names = [f.name for f in dataclasses.fields(obj)]
    for name in names:
        value = getattr(obj, name, None)
        new = _scrub(value)
        if new is not value:
            obj.__dict__[name] = new  # no re-validation: the same type, cleaner text
    return obj


def guard_model(model: Model) -> Model:
    """Scrub every reply of `model`'s provider before inspect records it (see the module doc)."""
    api = model.api
    if getattr(api, _GUARDED, False):
        return model
    inner = api.generate

    async def generate(*args: Any, **kwargs: Any) -> Any:
        try:
            return scrub(await inner(*args, **kwargs))
        except Exception as e:  # its message (an error body) is logged too; its type decides retries
            e.args = scrub(e.args)
            for name, value in list(vars(e).items()):
                if isinstance(value, str | dict | list):
                    setattr(e, name, scrub(value))
            raise

    api.generate = generate  # type: ignore[method-assign]
    setattr(api, _GUARDED, True)
    return model


def inline_refs(schema: Any, defs: dict[str, Any] | None = None) -> Any:
    """Replace JSON-schema `$ref`s into `$defs` by the definitions (inspect's schema has no $ref)."""
    if isinstance(schema, dict):
        defs = {**(defs or {}), **schema.get("$defs", {})}
        if "$ref" in schema:
            target = schema["$ref"].rsplit("/", 1)[-1]
            return inline_refs(copy.deepcopy(defs[target]), defs)
        return {k: inline_refs(v, defs) for k, v in schema.items() if k not in ("$defs", "title")}
    if isinstance(schema, list):
        return [inline_refs(v, defs) for v in schema]
    return schema


def tool_infos(schemas: list[dict[str, Any]]) -> list[ToolInfo]:
    """OpenAI function schemas -> inspect ToolInfo."""
    out = []
    for s in schemas:
        fn = s.get("function", s)
        params = inline_refs(fn.get("parameters") or {"type": "object", "properties": {}})
        out.append(
            ToolInfo(
                name=fn["name"],
                description=fn.get("description", ""),
                parameters=ToolParams(
                    properties={k: JSONSchema.model_validate(v) for k, v in (params.get("properties") or {}).items()},
                    required=list(params.get("required") or []),
                ),
            )
        )
    return out


def to_chat(system_prompt: str | None, messages: list[Message]) -> list[ChatMessage]:
    """The loop's messages as inspect's, with text inspect could not log scrubbed (see `scrub`)."""
    system_prompt, messages = scrub(system_prompt), scrub(messages)
    out: list[ChatMessage] = [ChatMessageSystem(content=system_prompt)] if system_prompt else []
    names = {c.id: c.name for m in messages for c in m.tool_calls}
    for m in messages:
        if m.role == "system":
            out.append(ChatMessageSystem(content=m.content or ""))
        elif m.role == "user":
            out.append(ChatMessageUser(content=m.content or ""))
        elif m.role == "assistant":
            calls = [
                InspectToolCall(
                    id=c.id,
                    function=c.name,
                    arguments=c.arguments if c.arguments is not None else {},
                    parse_error=None if c.arguments is not None else f"invalid arguments: {c.raw_arguments}",
                )
                for c in m.tool_calls
            ]
            out.append(ChatMessageAssistant(content=m.content or "", tool_calls=calls or None))
        elif m.role == "tool":
            out.append(
                ChatMessageTool(content=m.content or "", tool_call_id=m.tool_call_id, function=names.get(m.tool_call_id or ""))
            )
    return out


def from_inspect_call(c: InspectToolCall) -> ToolCall:
    if c.parse_error:
        raw = c.arguments.get("raw") if isinstance(c.arguments, dict) else None
        return ToolCall(c.id, c.function, None, raw_arguments=str(raw or c.parse_error))
    return tool_call_from_text(c.id, c.function, c.arguments)


def generate_config(sampling: Sampling) -> GenerateConfig:
    """What every model call of one episode sends: the epoch's seed, the temperature, the reply
    limit (and top_p when it is not 1)."""
    top_p = None if sampling.top_p == 1.0 else sampling.top_p
    return GenerateConfig(seed=sampling.seed, temperature=sampling.temperature, max_tokens=sampling.max_tokens,
                          top_p=top_p)  # fmt: skip


async def _generate(model: Model, chat: list[ChatMessage], tools: list[ToolInfo], sampling: Sampling, who: str):
    try:
        output = await model.generate(chat, tools=tools, config=generate_config(sampling))
    except Exception as e:  # a crashed or unreachable model server is not the agent's doing
        raise InfraError(f"{who} model {model.name} failed: {type(e).__name__}: {e}") from e
    if not output.choices:  # a malformed reply, like a body that is not JSON
        raise InfraError(f"{who} model {model.name} replied with no choices" + (f": {output.error}" if output.error else ""))
    return output


def _reply(output: Any, message: Message) -> Reply:
    usage = output.usage
    status = "context_overflow" if output.stop_reason == "model_length" and not message.content and not message.tool_calls else "ok"
    return Reply(
        message=message,
        status=status,
        error=output.error if status != "ok" else None,
        input_tokens=int(usage.input_tokens) if usage else 0,
        output_tokens=int(usage.output_tokens) if usage else 0,
        trace=getattr(output, "metadata", None),
    )


class InspectAgent:
    """The model under test, as the loop's AgentModel."""

    def __init__(self, model: Model, sampling: Sampling):
        self.model, self.sampling = model, sampling
        self._tools_cache: tuple[int, list[ToolInfo]] | None = None

    def _tools(self, schemas: list[dict[str, Any]]) -> list[ToolInfo]:
        if self._tools_cache is None or self._tools_cache[0] != id(schemas):
            self._tools_cache = (id(schemas), tool_infos(schemas))
        return self._tools_cache[1]

    async def __call__(self, system_prompt: str, tools: list[dict[str, Any]], messages: list[Message]) -> Reply:
        output = await _generate(self.model, to_chat(system_prompt, messages), self._tools(tools), self.sampling, "agent")
        msg = output.message
        calls = [from_inspect_call(c) for c in (msg.tool_calls or [])]
        return _reply(output, Message(role="assistant", content=msg.text or None, tool_calls=calls))


class InspectUser:
    """The simulated user, played by an inspect model (role `user`), seeing the flipped view."""

    def __init__(self, model: Model, sampling: Sampling):
        self.model, self.sampling = model, sampling

    async def __call__(self, system_prompt: str, messages: list[Message]) -> Reply:
        output = await _generate(self.model, to_chat(system_prompt, messages), [], self.sampling, "user")
        return _reply(output, Message(role="assistant", content=output.message.text or ""))
