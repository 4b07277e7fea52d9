"""Property-based fuzz: malformed tool calls never raise out of an episode and never change the DB."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from harness.airline.episode import AirlineEpisode
from harness.airline.schemas import project_tool_schemas
from harness.airline.tools import TOOLS, call_tool
from harness.records import ToolCall

PARAMS = {s["function"]["name"]: s["function"]["parameters"]["properties"] for s in project_tool_schemas()}

# Plausible values (real ids) so that calls get past the first lookups and fail deeper.
GOOD = {
    "string": st.sampled_from(["mei_hernandez_8984", "R9QDGB", "HAT271", "2024-05-26", "credit_card_6082923",
                               "gift_card_5309492", "certificate_7502997", "ORD", "PHL", "economy", "yes", "1+2"]),
    "integer": st.integers(min_value=-3, max_value=500),
    "array": st.lists(st.fixed_dictionaries({}, optional={
        "flight_number": st.sampled_from(["HAT271", "HAT001", "X"]), "date": st.sampled_from(["2024-05-26", "x"]),
        "first_name": st.just("A"), "last_name": st.just("B"), "dob": st.just("2000-01-01"),
        "payment_id": st.sampled_from(["credit_card_6082923", "gift_card_5309492", "nope"]),
        "amount": st.integers(0, 400)}), max_size=3),
}  # fmt: skip
json_scalars = st.one_of(st.none(), st.text(max_size=8), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
# A mistyped value: a JSON type the parameter does not take (no floats: a fractional number
# of bags or dollars is a well-typed call upstream, see the quirk tests).
MISTYPED = {
    "string": st.one_of(st.none(), st.integers(), st.lists(st.text(max_size=3), max_size=2), st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2)),
    "integer": st.one_of(st.none(), st.text(max_size=5), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)),
    "array": st.one_of(st.none(), st.text(max_size=5), st.integers(), st.lists(json_scalars, min_size=1, max_size=2)),
}  # fmt: skip


@st.composite
def malformed_call(draw):
    name = draw(st.sampled_from(sorted(TOOLS)) | st.text(max_size=12))
    props = PARAMS.get(name, {})
    args = {}
    for p, spec in props.items():
        kind = spec["type"]
        choice = draw(st.sampled_from(["good", "mistyped", "missing"]))
        if choice == "good":
            args[p] = draw(GOOD[kind])
        elif choice == "mistyped":
            args[p] = draw(MISTYPED[kind])
    if draw(st.booleans()):
        args[draw(st.text(min_size=1, max_size=6))] = draw(json_scalars)
    whole = draw(st.sampled_from(["object", "object", "object", "not-object", "bad-json"]))
    if whole == "not-object":
        return ToolCall("c", name, None, raw_arguments=draw(st.sampled_from(["[]", "3", '"x"', "null"])))
    if whole == "bad-json":
        return ToolCall("c", name, None, raw_arguments=draw(st.text(max_size=20)))
    return ToolCall("c", name, args)


@given(malformed_call())
def test_malformed_calls_never_raise_and_failed_calls_change_nothing(domain, call):
    episode = AirlineEpisode(domain, domain.task("8"))
    episode.reset()
    result = episode.step(call)  # must not raise
    assert isinstance(result.content, str) and isinstance(result.error, bool)
    if result.error:
        assert result.content.startswith("Error: ")
        assert episode.state.diff(domain.db.new_state()) == [], (call, result.content)


@given(st.sampled_from(sorted(TOOLS)), json_scalars.filter(lambda v: not isinstance(v, dict)))
def test_call_tool_with_non_object_arguments(domain, name, args):
    state = domain.db.new_state()
    text, error = call_tool(state, name, args)
    assert error and text.startswith("Error: ") and not state.touched()
