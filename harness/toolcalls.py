"""The one tool-call syntax local checkpoints use, in evaluation and training alike.

Small models' chat templates often drop `tools`, so the tools are written into the system
prompt and every conversation is rendered with the three roles every template knows:
  - the system prompt gets a "# Tools" section with one JSON schema per line;
  - an assistant tool call is the text `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`;
  - a tool result is a user turn `<tool_response>...</tool_response>`.
This is the Hermes/Qwen convention, so models trained on it need no new habits.

`parse_reply` never raises: a block that is not a JSON object with a string name (or whose
arguments nest deeper than MAX_ARGUMENT_DEPTH) becomes a call whose arguments are None
(answered with a tool error), so a malformed call is the agent's error, not a crash.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from harness.records import Message, ToolCall

OPEN, CLOSE = "<tool_call>", "</tool_call>"
MAX_ARGUMENT_DEPTH = 64  # deeper arguments are a malformed call: later serializers recurse on them
_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)


def canonical_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Keyed on the JSON as given (not sorted): parameters keep their declared order.
    return _canonical_tools(json.dumps(tools))


@functools.lru_cache(maxsize=32)
def _canonical_tools(key: str) -> list[dict[str, Any]]:
    """Tool schemas as inspect-ai normalizes them (refs inlined, defaults filled), so a prompt
    rendered in training is byte-identical to the one the `local/` provider renders in eval,
    where the schemas have passed through inspect's ToolInfo. Idempotent."""
    from harness.inspect_bridge import tool_infos

    tools = json.loads(key)
    return [
        {"type": "function", "function": {"name": t.name, "description": t.description,
                                          "parameters": t.parameters.model_dump(exclude_none=True)}}  # fmt: skip
        for t in tool_infos(tools)
    ]


def tools_section(tools: list[dict[str, Any]]) -> str:
    if not tools:
        return ""
    lines = [json.dumps(t.get("function", t), separators=(",", ":")) for t in canonical_tools(tools)]
    return (
        "\n\n# Tools\n\nYou may call one or more functions. Their signatures, one per line:\n"
        + "\n".join(lines)
        + f'\n\nTo call a function, write {OPEN}{{"name": "<function name>", "arguments": {{<JSON arguments>}}}}{CLOSE}'
        + " — nothing else on that line. Each result comes back as <tool_response>...</tool_response>."
    )


def render_call(call: ToolCall) -> str:
    args: Any = call.arguments if call.arguments is not None else call.raw_arguments
    return f"{OPEN}{json.dumps({'name': call.name, 'arguments': args})}{CLOSE}"


def to_template_messages(system_prompt: str, tools: list[dict[str, Any]], messages: list[Message]) -> list[dict[str, str]]:
    """Our conversation as plain system/user/assistant chat-template messages."""
    out = [{"role": "system", "content": system_prompt + tools_section(tools)}]
    for m in messages:
        if m.role == "assistant":
            parts = [m.content] if m.content else []
            parts += [render_call(c) for c in m.tool_calls]
            out.append({"role": "assistant", "content": "\n".join(parts)})
        elif m.role == "tool":
            out.append({"role": "user", "content": f"<tool_response>\n{m.content or ''}\n</tool_response>"})
        elif m.role == "user":
            out.append({"role": "user", "content": m.content or ""})
        elif m.role == "system":
            out[0]["content"] += "\n\n" + (m.content or "")
    # Consecutive user turns (several tool results) are merged: some templates require alternation.
    merged: list[dict[str, str]] = []
    for msg in out:
        if merged and msg["role"] == "user" and merged[-1]["role"] == "user":
            merged[-1]["content"] += "\n" + msg["content"]
        else:
            merged.append(dict(msg))
    return merged


def parse_reply(text: str, id_prefix: str = "call") -> Message:
    """Split a generated reply into visible text and tool calls."""
    calls: list[ToolCall] = []
    for i, body in enumerate(_BLOCK.findall(text)):
        call_id = f"{id_prefix}_{i}"
        body = body.strip()
        try:
            obj = json.loads(body)
        except (ValueError, RecursionError):  # not JSON, or nested deeper than Python's recursion limit
            calls.append(ToolCall(call_id, _guess_name(body), None, raw_arguments=body))
            continue
        name = obj.get("name") if isinstance(obj, dict) else None
        args = obj.get("arguments", {}) if isinstance(obj, dict) else None
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except (ValueError, RecursionError):
                pass
        if not isinstance(name, str) or not isinstance(args, dict) or _depth(args) > MAX_ARGUMENT_DEPTH:
            calls.append(ToolCall(call_id, name if isinstance(name, str) else "invalid_tool_call", None, raw_arguments=body))
        else:
            calls.append(ToolCall(call_id, name, args))
    visible = _BLOCK.sub("", text).strip()
    return Message(role="assistant", content=visible or None, tool_calls=calls)


def _depth(obj: Any) -> int:
    """Nesting depth of parsed JSON, without recursion (deep input must not raise)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > MAX_ARGUMENT_DEPTH:
            break
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((c, d + 1) for c in children)
    return deepest


def _guess_name(body: str) -> str:
    m = re.search(r'"name"\s*:\s*"([^"]+)"', body)
    return m.group(1) if m else "invalid_tool_call"


CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def render_ids(tokenizer: Any, system_prompt: str, tools: list[dict[str, Any]], messages: list[Message]) -> list[int]:
    """The prompt's token ids: a function of the tokenizer alone (its chat template, ChatML when
    it has none), the same for training, evaluation and every sampler backend."""
    chat = to_template_messages(system_prompt, tools, messages)
    template = None if tokenizer.chat_template is not None else CHATML_TEMPLATE
    ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, chat_template=template)
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):
        ids = ids["input_ids"]
    return list(ids)


def end_ids(tokenizer: Any) -> list[int]:
    """The ids that end a reply: `<|im_end|>` and the tokenizer's end-of-sequence token."""
    ids = set()
    for tok in ("<|im_end|>", tokenizer.eos_token):
        if tok is not None:
            tid = tokenizer.convert_tokens_to_ids(tok)
            if isinstance(tid, int) and tid != tokenizer.unk_token_id:
                ids.add(tid)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return sorted(ids)
