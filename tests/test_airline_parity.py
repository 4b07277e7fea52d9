"""What the agent reads is what the official environment (tau2-bench a2c024725189) returns.

One test per difference a differential replay against upstream found (issue 18), with the
official text as the expected value, and the two runner decisions (malformed arguments,
the agent's ###STOP###). README "τ³ scoring" lists the differences kept on purpose.
"""

from __future__ import annotations

import asyncio
import json
import time
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.airline import calculator
from harness.airline.episode import AirlineEpisode
from harness.airline.tools import TOOLS, call_tool
from harness.loop import LoopConfig, Reply, run_episode
from harness.records import (
    EndReason,
    EpisodeStart,
    Message,
    Outcome,
    ToolCall,
    ToolResult,
    UserSpec,
)
from harness.toolcalls import tools_section

RESERVATION_KEYS = ["reservation_id", "user_id", "origin", "destination", "flight_type", "cabin", "flights",
                    "passengers", "payment_history", "created_at", "total_baggages", "nonfree_baggages",
                    "insurance", "status"]  # fmt: skip
FLIGHT_KEYS = ["flight_number", "origin", "destination", "date", "price"]
USER_KEYS = ["user_id", "name", "address", "email", "dob", "payment_methods", "saved_passengers", "membership",
             "reservations"]  # fmt: skip
ADDRESS_KEYS = ["address1", "address2", "city", "country", "state", "zip"]


def tool(state, name, **args):
    return call_tool(state, name, args)


def as_upstream_dumps(text: str) -> str:
    """json.dumps with its defaults (", " and ": ", ASCII escapes), as upstream serializes."""
    return json.dumps(json.loads(text))


# ---------------------------------------------------------------- 1. key order of records


def test_reservation_flights_in_upstream_key_order(state):
    text, err = tool(state, "get_reservation_details", reservation_id="4WQ150")
    assert not err and text == as_upstream_dumps(text)
    res = json.loads(text)
    assert list(res) == RESERVATION_KEYS
    assert [list(f) for f in res["flights"]] == [FLIGHT_KEYS, FLIGHT_KEYS]
    assert text.count('{"flight_number": "HAT170", "origin": "DFW", "destination": "LAX", "date": "2024-05-22"') == 1


def test_every_record_the_agent_can_read_is_in_model_order(domain, state):
    for rid in domain.db.tables["reservations"]:
        res = json.loads(tool(state, "get_reservation_details", reservation_id=rid)[0])
        assert list(res) == RESERVATION_KEYS and all(list(f) == FLIGHT_KEYS for f in res["flights"]), rid
    for uid in domain.db.tables["users"]:
        user = json.loads(tool(state, "get_user_details", user_id=uid)[0])
        assert list(user) == USER_KEYS and list(user["address"]) == ADDRESS_KEYS, uid


def test_written_records_in_model_order(state):
    text, err = tool(
        state, "book_reservation", user_id="mei_hernandez_8984", origin="ORD", destination="PHL",
        flight_type="one_way", cabin="economy", flights=[{"flight_number": "HAT271", "date": "2024-05-26"}],
        passengers=[{"first_name": "Mei", "last_name": "Hernandez", "dob": "1981-01-11"}],
        payment_methods=[{"payment_id": "credit_card_6082923", "amount": 174}], total_baggages=0,
        nonfree_baggages=0, insurance="no",
    )  # fmt: skip
    assert not err
    assert '"flights": [{"flight_number": "HAT271", "origin": "ORD", "destination": "PHL", "date": "2024-05-26", "price": 174}]' in text
    for name, args in [
        ("update_reservation_flights", {"reservation_id": "HATHAT", "cabin": "business", "payment_id": "credit_card_6082923",
                                        "flights": [{"flight_number": "HAT271", "date": "2024-05-26"}]}),
        ("cancel_reservation", {"reservation_id": "HATHAT"}),
    ]:  # fmt: skip
        text, err = call_tool(state, name, args)
        res = json.loads(text)
        assert not err and list(res) == RESERVATION_KEYS and list(res["flights"][0]) == FLIGHT_KEYS


# ---------------------------------------------------------------- 2-3. argument errors


@pytest.mark.parametrize(
    ("name", "args", "official"),
    [
        ("transfer_to_human_agents", {},
         "Error: AirlineTools.transfer_to_human_agents() missing 1 required positional argument: 'summary'"),
        ("update_reservation_baggages", {"reservation_id": "4WQ150", "payment_id": "x"},
         "Error: AirlineTools.update_reservation_baggages() missing 2 required positional arguments: "
         "'total_baggages' and 'nonfree_baggages'"),
        ("get_user_details", {"user_id": "x", "summary": "y"},
         "Error: AirlineTools.get_user_details() got an unexpected keyword argument 'summary'"),
        ("list_all_airports", {"kwargs": 1},
         "Error: AirlineTools.list_all_airports() got an unexpected keyword argument 'kwargs'"),
        # Names the official runner binds itself.
        ("get_user_details", {"user_id": "x", "self": 1},
         "Error: Environment.make_tool_call() got multiple values for argument 'self'"),
        ("calculate", {"tool_name": "calculate", "expression": "1"},
         "Error: Environment.make_tool_call() got multiple values for argument 'tool_name'"),
        ("calculate", {"expression": "1", "requestor": "user"},
         "Error: tau2.environment.environment.Environment.make_tool_call() got multiple values for keyword "
         "argument 'requestor'"),
        ("book_reservation", {"db": {}},
         "Error: AirlineTools.book_reservation() got an unexpected keyword argument 'db'"),
        # The runner binds before it looks the tool up.
        ("fly_me_to_the_moon", {"self": 1}, "Error: Environment.make_tool_call() got multiple values for argument 'self'"),
        ("fly_me_to_the_moon", {}, "Error: Tool 'fly_me_to_the_moon' not found."),
        ("_get_user", {"user_id": "mei_hernandez_8984"}, "Error: Tool '_get_user' not found."),
    ],
)  # fmt: skip
def test_argument_errors_read_as_upstream(state, name, args, official):
    assert call_tool(state, name, args) == (official, True)
    assert not state.touched()


# ---------------------------------------------------------------- 4. passengers stored as given


@pytest.mark.parametrize("given_value", ["X", {"first_name": "A"}])
def test_update_passengers_stores_a_string_or_object_as_given(state, given_value):
    rid = "VAAOXJ"  # one passenger
    assert len(state.get("reservations", rid)["passengers"]) == 1
    text, err = tool(state, "update_reservation_passengers", reservation_id=rid, passengers=given_value)
    assert not err and json.loads(text)["passengers"] == given_value
    assert state.get("reservations", rid)["passengers"] == given_value
    listed = state.base.new_state()
    tool(listed, "update_reservation_passengers", reservation_id=rid, passengers=[given_value])
    assert state.diff(listed) == [("reservations", rid)]  # "X" and ["X"] are different end states


def test_update_passengers_object_keyed_by_count_and_later_tools(state):
    rid = "V5XFMY"  # two passengers
    text, err = tool(state, "update_reservation_passengers", reservation_id=rid, passengers={"a": 1, "b": 2})
    assert not err and json.loads(text)["passengers"] == {"a": 1, "b": 2}
    text, err = tool(state, "update_reservation_passengers", reservation_id=rid, passengers="AB")
    assert not err and state.get("reservations", rid)["passengers"] == "AB"
    # The stored string's length stands for the passenger count afterwards, as upstream.
    text, err = tool(state, "update_reservation_passengers", reservation_id=rid, passengers="ABC")
    assert (text, err) == ("Error: Number of passengers does not match", True)


# ---------------------------------------------------------------- 5. calculate


def test_calculate_computes_what_upstream_computes(state):
    assert tool(state, "calculate", expression="2 ** 400") == ("2.5822498780869086e+120", False)
    assert tool(state, "calculate", expression="2**(1+1)") == ("4.0", False)
    assert tool(state, "calculate", expression="  1 + 2") == ("3.0", False)  # eval drops leading spaces
    assert tool(state, "calculate", expression="2**100000/2**99990") == ("1024.0", False)
    assert tool(state, "calculate", expression="(-8)**9") == ("-134217728.0", False)
    assert tool(state, "calculate", expression="1 +") == ("Error: invalid syntax (<string>, line 1)", True)
    assert tool(state, "calculate", expression="1/0") == ("Error: division by zero", True)
    assert tool(state, "calculate", expression="2**5000") == ("Error: int too large to convert to float", True)
    assert tool(state, "calculate", expression="()") == (
        "Error: float() argument must be a string or a real number, not 'tuple'", True)  # fmt: skip
    assert tool(state, "calculate", expression=["12"]) == (
        "Error: eval() arg 1 must be a string, bytes or code object", True)  # fmt: skip


def test_calculate_guard_refuses_huge_integers_quickly_with_upstreams_text(state):
    t0 = time.perf_counter()
    for expression in ("9**9**9", "9**9**9**9", "(10**200000)*(10**200000)", "2**262145"):
        assert tool(state, "calculate", expression=expression) == ("Error: int too large to convert to float", True)
    # The one documented difference: upstream computes this one (to 7.0) after building a
    # 1.1-million-bit integer; the guard refuses it.
    assert tool(state, "calculate", expression="7**400000//7**399999")[1]
    assert time.perf_counter() - t0 < 5  # a generous bound: each refusal is immediate


def _upstream_calculate(expression: str) -> str:
    """The official tool's body (the reference this test compares against)."""
    try:
        if not all(char in calculator.ALLOWED for char in expression):
            raise ValueError("Invalid characters in expression")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return str(round(float(eval(expression, {"__builtins__": None}, {})), 2))  # noqa: S307
    except Exception as e:
        return f"Error: {e}"


def _ours(expression: str) -> str:
    try:
        return calculator.calculate(expression)
    except Exception as e:
        return f"Error: {e}"


_atom = st.sampled_from(["0", "1", "2", "7", "10", "99", "0.5", "2.", ".5", "()", "...", " "])
_op = st.sampled_from(["+", "-", "*", "/", "//", "**", "(", ")", " ", "(*", "(**"])
_structured = st.lists(st.tuples(_atom, _op), max_size=6).map(lambda xs: "".join(a + o for a, o in xs)) | st.text(
    alphabet=calculator.ALLOWED, max_size=14
)


@given(_structured.filter(lambda e: e.count("**") <= 1 or len(e) <= 8))
def test_calculate_matches_eval_on_expressions_eval_finishes(expression):
    # At most one power, or a short expression: every one of these finishes fast under eval.
    assert _ours(expression) == _upstream_calculate(expression)


# ---------------------------------------------------------------- 6-7. tool list and tools section


def test_tool_list_in_upstream_order(domain):
    names = [t["function"]["name"] for t in domain.tool_schemas]
    assert names == list(TOOLS) and names[-1] == "get_flight_status" and len(names) == 14
    from harness.airline.schemas import in_official_order, project_tool_schemas

    assert [t["function"]["name"] for t in in_official_order(project_tool_schemas())] == names


def test_tools_section_keeps_declared_parameter_order(domain):
    from harness.inspect_bridge import tool_infos
    from harness.providers import _schemas  # how the local/ provider hands schemas back

    schemas = domain.tool_schemas
    section = tools_section(schemas)
    lines = [json.loads(line) for line in section.splitlines() if line.startswith('{"name"')]
    assert [fn["name"] for fn in lines] == list(TOOLS)
    unsorted = 0
    for fn, schema in zip(lines, schemas, strict=True):
        declared = list(schema["function"]["parameters"]["properties"])
        assert list(fn["parameters"]["properties"]) == declared, fn["name"]
        unsorted += declared != sorted(declared)
    assert unsorted == 8  # tools whose declared order is not alphabetical: sorting would show
    # Byte-identical whether rendered in training or from inspect's ToolInfo in evaluation.
    assert tools_section(_schemas(tool_infos(schemas))) == section


# ---------------------------------------------------------------- runner decisions


class _Script:
    """A scripted agent or user: returns the given messages in turn."""

    def __init__(self, *messages: Message):
        self.messages = list(messages)

    async def __call__(self, *args) -> Reply:
        return Reply(self.messages.pop(0))


def test_malformed_arguments_are_a_tool_error_and_the_episode_goes_on(domain):
    bad = ToolCall("c0", "get_user_details", None, raw_arguments='{"user_id": ')
    agent = _Script(Message(role="assistant", tool_calls=[bad]), Message(role="assistant", content="Sorry, try again?"))
    user = _Script(Message(role="user", content="Hi"), Message(role="user", content="Bye ###STOP###"))
    res = asyncio.run(run_episode(lambda: AirlineEpisode(domain, domain.task("0")), agent, user, LoopConfig()))
    tool_msgs = [m for m in res.messages if m.role == "tool"]
    assert len(tool_msgs) == 1 and tool_msgs[0].error and "not a valid JSON object" in tool_msgs[0].content
    assert res.outcome.end_reason == EndReason.USER_STOP and res.tool_errors == 1


def test_agent_stop_token_does_not_end_a_tau3_conversation(domain):
    agent = _Script(Message(role="assistant", content="All done. ###STOP###"), Message(role="assistant", content="Bye"))
    user = _Script(Message(role="user", content="Hi"), Message(role="user", content="Thanks"),
                   Message(role="user", content="###STOP###"))  # fmt: skip
    res = asyncio.run(run_episode(lambda: AirlineEpisode(domain, domain.task("0")), agent, user, LoopConfig()))
    assert [m.role for m in res.messages] == ["assistant", "user", "assistant", "user", "assistant", "user"]
    assert res.outcome.end_reason == EndReason.USER_STOP


class _TalkEpisode:
    """A minimal episode with a user whose spec keeps the default agent stop token."""

    task_id = "talk"
    blocking = False

    def reset(self) -> EpisodeStart:
        return EpisodeStart("sys", [], [], UserSpec("user sys", ("###STOP###",)))

    def step(self, call: ToolCall) -> ToolResult:
        return ToolResult(call.id, call.name, "ok")

    def finish(self, messages: list[Message], end_reason: EndReason) -> Outcome:
        return Outcome(reward=0.0, success=False, end_reason=end_reason)


def test_agent_stop_token_still_ends_where_the_user_spec_has_one():
    agent = _Script(Message(role="assistant", content="Done ###STOP###"))
    user = _Script(Message(role="user", content="Hi"))
    res = asyncio.run(run_episode(_TalkEpisode, agent, user, LoopConfig()))
    assert res.outcome.end_reason == EndReason.AGENT_STOP and len(res.messages) == 2
