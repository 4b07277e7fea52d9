"""The evaluator against the SPEC's facts: official hash, gold and do-nothing trajectories."""

from __future__ import annotations

import pytest

from harness.airline.db import load_db
from harness.airline.evaluator import gold_state, score
from harness.airline.trajectories import gold_trajectory, null_trajectory
from harness.records import EndReason, Message, ToolCall

NULL_PASS = {
    "train": {0, 1, 4, 5, 9, 10, 27, 28, 34, 36, 38, 41, 43, 46, 47, 49},
    "test": {2, 6, 13, 26, 31, 45, 48},
}
WRITE_REQUIRED = {
    "train": {7, 11, 12, 14, 15, 17, 20, 21, 23, 33, 39, 40, 42},
    "test": {8, 16, 18, 19, 22, 24, 25, 29, 30, 32, 35, 37, 44},
}


def test_official_initial_hash(domain):
    assert domain.db.full_hash() == "124e39a664b56402bcd09cb8a6a9cece6acb8462337c969799d5658e3250f263"
    assert domain.db.new_state().full_hash() == domain.db.full_hash()


def test_db_is_parsed_once_per_process(domain):
    assert load_db(domain.data_dir / "db.json") is domain.db


def test_gold_trajectories_score_one_on_all_50_tasks(domain):
    assert len(domain.tasks) == 50
    for task in domain.tasks.values():
        traj = gold_trajectory(domain, task)
        out = score(domain, task, traj.messages, traj.termination_reason)
        assert (out.reward, out.success, out.components) == (1.0, True, {"db_match": 1.0, "communicate_ok": 1.0}), task.id


def test_do_nothing_passes_exactly_the_spec_tasks(domain):
    for split, expected in NULL_PASS.items():
        passed = set()
        for task in domain.split(split):
            traj = null_trajectory(task)
            if score(domain, task, traj.messages, traj.termination_reason).success:
                passed.add(int(task.id))
        assert passed == expected, split
    assert len(domain.split("train")) == 30 and len(domain.split("test")) == 20 and len(domain.split("base")) == 50


def test_write_required_subset(domain):
    for split, expected in WRITE_REQUIRED.items():
        got = {int(t.id) for t in domain.split(split) if gold_state(domain, t).state.diff(domain.db.new_state())}
        assert got == expected, split


def test_record_equality_agrees_with_the_official_full_hash(domain):
    """Touched-record comparison must say 'equal' exactly when the full-DB hashes are equal."""
    states = [domain.db.new_state()] + [gold_state(domain, t).state for t in list(domain.tasks.values())[:12]]
    hashes = [s.full_hash() for s in states]
    for a, ha in zip(states, hashes, strict=True):
        for b, hb in zip(states, hashes, strict=True):
            assert a.equals(b) == (ha == hb)


def _with_calls(*calls: ToolCall, content: str | None = None) -> list[Message]:
    msgs = [Message(role="assistant", content="Hi! How can I help you today?")]
    for c in calls:
        msgs.append(Message(role="assistant", tool_calls=[c]))
        msgs.append(Message(role="tool", content="whatever was recorded", tool_call_id=c.id))
    if content:
        msgs.append(Message(role="assistant", content=content))
    msgs.append(Message(role="user", content="###STOP###"))
    return msgs


def test_termination_gate(domain):
    task = domain.task("8")
    traj = gold_trajectory(domain, task)
    for reason in ("max_steps", "too_many_errors", "agent_error", "context_overflow", "user_error"):
        out = score(domain, task, traj.messages, reason)
        assert out.reward == 0.0 and not out.success
        assert out.components["db_match"] == 1.0  # computed, though gated
    assert score(domain, task, traj.messages, EndReason.AGENT_STOP).reward == 1.0


def test_replay_is_lenient_and_skips_reads_and_unknown_tools(domain):
    task = domain.task("8")
    gold = task.actions[3]
    calls = [
        ToolCall("a", "no_such_tool", {"x": 1}),
        ToolCall("b", "get_user_details", {"user_id": "nobody"}),
        ToolCall("c", gold.name, dict(gold.arguments)),
    ]
    # The recorded tool outputs are nonsense: replay ignores them.
    assert score(domain, task, _with_calls(*calls), "user_stop").reward == 1.0


def test_failed_write_calls_are_replayed(domain):
    """A write that failed live is replayed too; here it fails again and changes nothing."""
    task = domain.task("8")
    gold = task.actions[3]
    bad = dict(gold.arguments, payment_methods=[{"payment_id": "certificate_8045380", "amount": 1}])
    out = score(domain, task, _with_calls(ToolCall("x", gold.name, bad), ToolCall("y", gold.name, dict(gold.arguments))), "user_stop")
    assert out.reward == 1.0


def test_extra_write_breaks_the_db_match(domain):
    task = domain.task("8")
    gold = task.actions[3]
    extra = ToolCall("z", "send_certificate", {"user_id": "sophia_silva_7557", "amount": 50})
    out = score(domain, task, _with_calls(ToolCall("y", gold.name, dict(gold.arguments)), extra), "user_stop")
    assert out.reward == 0.0 and out.components == {"db_match": 0.0, "communicate_ok": 1.0}
    assert "user sophia_silva_7557" in out.feedback


@pytest.mark.parametrize(
    ("said", "ok"),
    [("The total is 1,628 dollars.", True), ("TOTAL: 1628", True), ("The total is 1 628.", False), (None, False)],
)
def test_communicate_is_case_insensitive_and_ignores_commas_in_the_message(domain, said, ok):
    task = domain.task("7")  # communicate_info: ["1628"]
    calls = [ToolCall(f"c{i}", a.name, dict(a.arguments)) for i, a in enumerate(task.actions)]
    out = score(domain, task, _with_calls(*calls, content=said), "user_stop")
    assert out.components["communicate_ok"] == float(ok)
    assert out.components["db_match"] == 1.0


def test_communicate_only_counts_assistant_text(domain):
    task = domain.task("3")  # communicate_info: ["4"]
    msgs = [Message(role="assistant", content="Hello"), Message(role="user", content="I have 4 bags ###STOP###")]
    assert score(domain, task, msgs, "user_stop").components["communicate_ok"] == 0.0
