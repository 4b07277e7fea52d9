"""parse_reply and tool_call_from_text never raise: whatever a model writes is a message, and a
malformed call is the agent's error (arguments None), not a crash of the run."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.loop import tool_call_from_text
from harness.toolcalls import MAX_ARGUMENT_DEPTH, parse_reply

DEEP = "[" * 100_000 + "]" * 100_000  # deeper than Python's recursion limit: json.loads raises RecursionError


def test_deep_nesting_is_a_malformed_call_not_a_crash():
    for body in (DEEP, '{"name": "f", "arguments": ' + DEEP + "}",
                 json.dumps({"name": "f", "arguments": DEEP}),
                 '{"name": "f", "arguments": ' + '{"a": ' * 50_000 + "1" + "}" * 50_000 + "}"):  # fmt: skip
        msg = parse_reply(f"hello <tool_call>{body}</tool_call>")
        assert msg.content == "hello" and len(msg.tool_calls) == 1
        assert msg.tool_calls[0].arguments is None and msg.tool_calls[0].raw_arguments
    assert tool_call_from_text("c", "f", DEEP).arguments is None


def test_arguments_nested_past_the_limit_are_refused_and_shallow_ones_kept():
    deep = {"a": 1}
    for _ in range(MAX_ARGUMENT_DEPTH):
        deep = {"a": deep}
    call = parse_reply("<tool_call>" + json.dumps({"name": "f", "arguments": deep}) + "</tool_call>").tool_calls[0]
    assert call.name == "f" and call.arguments is None
    ok = parse_reply('<tool_call>{"name": "f", "arguments": {"a": [1, {"b": 2}]}}</tool_call>').tool_calls[0]
    assert ok.arguments == {"a": [1, {"b": 2}]}


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from('<>/tool_cal{}[]":, \\na\ud83d1'), max_size=200))
def test_parse_reply_never_raises(text):
    msg = parse_reply(text)
    assert msg.role == "assistant"
    parse_reply(f"<tool_call>{text}</tool_call>")
    tool_call_from_text("c", "f", text)
