"""The Episode protocol on τ³-airline: reset, step, finish; states independent and cheap."""

from __future__ import annotations

from harness.airline.episode import AirlineEpisode
from harness.airline.evaluator import gold_state
from harness.records import EndReason, Message, ToolCall

# The official toolkit's declaration order (tau2 AirlineTools): the order of the agent's tool list.
OFFICIAL_TOOL_ORDER = [
    "book_reservation", "calculate", "cancel_reservation", "get_reservation_details", "get_user_details",
    "list_all_airports", "search_direct_flight", "search_onestop_flight", "send_certificate",
    "transfer_to_human_agents", "update_reservation_baggages", "update_reservation_flights",
    "update_reservation_passengers", "get_flight_status",
]  # fmt: skip


def test_episode_protocol_end_to_end(domain):
    task = domain.task("8")
    ep = AirlineEpisode(domain, task)  # the protocol by use below: reset, step, finish
    start = ep.reset()
    assert "<policy>" in start.system_prompt and domain.policy in start.system_prompt
    assert [t["function"]["name"] for t in start.tools] == OFFICIAL_TOOL_ORDER
    assert len(start.tools) == 14 and domain.tool_descriptions == "official"
    assert start.messages[0].content == "Hi! How can I help you today?"
    assert "<scenario>" in start.user.system_prompt and "sophia_silva_7557" in start.user.system_prompt
    assert start.user.stop_tokens == ("###STOP###", "###TRANSFER###", "###OUT-OF-SCOPE###")

    messages = list(start.messages)
    for i, action in enumerate(task.actions):
        call = ToolCall(f"c{i}", action.name, dict(action.arguments))
        result = ep.step(call)
        assert not result.error, result.content
        messages += [Message(role="assistant", tool_calls=[call]),
                     Message(role="tool", content=result.content, tool_call_id=call.id)]  # fmt: skip
    messages.append(Message(role="user", content="###STOP###"))
    outcome = ep.finish(messages, EndReason.USER_STOP)
    assert outcome.success and outcome.reward == 1.0 and outcome.feedback == "The task was solved."
    # The live state is the gold end state.
    assert ep.state.touched() and ep.state.equals(gold_state(domain, task).state)


def test_episodes_do_not_share_state(domain):
    task = domain.task("8")
    a, b = AirlineEpisode(domain, task), AirlineEpisode(domain, task)
    a.reset(), b.reset()
    a.step(ToolCall("x", "send_certificate", {"user_id": "sophia_silva_7557", "amount": 10}))
    assert a.state.touched() and not b.state.touched()
    a.reset()
    assert not a.state.touched()


def test_bad_calls_become_tool_errors(domain):
    ep = AirlineEpisode(domain, domain.task("0"))
    ep.reset()
    r = ep.step(ToolCall("x", "book_reservation", None, raw_arguments="{not json"))
    assert r.error and "not a valid JSON object" in r.content
    r = ep.step(ToolCall("y", "fly_me_to_the_moon", {}))
    assert r.error and "not found" in r.content
    r = ep.step(ToolCall("z", "get_user_details", {}))
    assert r.error and "user_id" in r.content


def test_project_tool_descriptions_match_official_names_and_parameters(domain):
    from harness.airline.schemas import project_tool_schemas

    official = {t["function"]["name"]: t["function"]["parameters"] for t in domain.tool_schemas}
    ours = {t["function"]["name"]: t["function"]["parameters"] for t in project_tool_schemas()}
    assert set(ours) == set(official)
    for name, params in official.items():
        assert list(ours[name]["properties"]) == list(params["properties"]), name
        assert ours[name].get("required", []) == (params.get("required") or []), name
        for p, spec in params["properties"].items():
            assert ours[name]["properties"][p]["type"] == spec["type"], (name, p)
