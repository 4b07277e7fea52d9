"""The toy benchmark: fixed tasks and splits, scripted solutions, scoring, bad calls, prompts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.loop import LoopConfig, Reply, run_episode
from harness.records import EndReason, Message, ToolCall, ToolResult
from harness.toolcalls import parse_reply, render_call, to_template_messages
from harness.toy import Toy, ToyEpisode, make_task, scripted_messages, split_ids
from harness.toy.tasks import LEVELS, parse_task_id, task_id

SMOLLM2 = Path("~/.cache/sgcd-bench/models/smollm2-135m-instruct-q4_1-dequantized").expanduser()
BENCH = Toy()
TEST_IDS = BENCH.split_ids("test")


class ScriptedAgent:
    """An AgentModel that replays fixed assistant turns, then says it is done."""

    def __init__(self, turns: list[Message]):
        self.turns = list(turns)

    async def __call__(self, system_prompt, tools, messages) -> Reply:
        if self.turns:
            return Reply(message=self.turns.pop(0))
        return Reply(message=Message(role="assistant", content="Done."))


def play(tid: str, turns: list[Message], cfg: LoopConfig | None = None):
    return asyncio.run(run_episode(lambda: BENCH.episode(tid), ScriptedAgent(turns), None, cfg))


def assistant_turns(tid: str) -> list[Message]:
    return [m for m in scripted_messages(tid) if m.role == "assistant"]


def call_turn(name: str, arguments, turn: int = 9, raw: str | None = None) -> Message:
    return Message(role="assistant", tool_calls=[ToolCall(f"call_{turn}_0", name, arguments, raw)])


# ---------------------------------------------------------------- ids, generator, splits


def test_ids_rebuild_the_same_task():
    assert task_id(1, 42) == "L1-0042" and parse_task_id("L3-9001") == (3, 9001)
    for tid in ("L1-0000", "L2-0123", "L3-9039"):
        assert make_task(tid) == make_task(tid)
    # Pinned so that a change to the generator is noticed (then bump GENERATOR_VERSION).
    t = make_task("L1-0000")
    assert (t.question, t.lookups, t.answer) == (
        "What is the value of rat? Submit it.",
        ("rat",),
        29,
    )
    t = make_task("L3-0000")
    assert (t.lookups, t.answer, t.table["yak"]) == (("yak", "rat", "gnu"), 30, "rat")


@pytest.mark.parametrize("bad", ["L4-0001", "L1-42", "l1-0001", "L1-00001", "", "x", "L9-0000"])
def test_malformed_ids_are_clear_errors(bad):
    with pytest.raises(ValueError, match="toy task id"):
        make_task(bad)


def test_splits_are_fixed_disjoint_and_balanced():
    train, test = split_ids("train"), split_ids("test")
    assert len(train) == 6000 and len(test) == 288
    assert train == split_ids("train") and test == BENCH.split_ids("test")
    assert not set(train) & set(test)
    assert len(set(train)) == len(train) and len(set(test)) == len(test)
    for lv in (1, 2, 3):  # level 0 only on request
        assert sum(t.startswith(f"L{lv}-") for t in test) == 96
    assert not any(t.startswith("L0-") for t in test) and len(split_ids("test", LEVELS)) == 4 * 96
    assert test[:3] == ["L1-9000", "L2-9000", "L3-9000"]  # interleaved: a prefix stays balanced
    assert Toy(levels="1,2").split_ids("test") == [t for t in test if not t.startswith("L3")]
    assert Toy(levels=3).split_ids("train") == [t for t in train if t.startswith("L3")]
    with pytest.raises(ValueError, match="unknown toy split"):
        split_ids("dev")
    with pytest.raises(ValueError, match="level"):
        Toy(levels="4")


def test_tasks_have_the_promised_shape():
    for tid in TEST_IDS + BENCH.split_ids("train")[:300]:
        t = make_task(tid)
        assert len(t.lookups) == t.level and len(set(t.lookups)) == t.level
        assert all(k in t.table for k in t.lookups)
        nums = [t.table[k] for k in t.lookups if isinstance(t.table[k], int)]
        assert all(10 <= v <= 99 for v in nums) and 10 <= t.answer <= 99
        assert t.answer == (nums[0] if t.level == 1 else sum(nums))
        if t.level == 3:
            assert t.table[t.lookups[0]] == t.lookups[1]


def test_benchmark_protocol_facts_and_manifest():
    ep = BENCH.episode("L2-9000")
    assert ep.task_id == "L2-9000"
    # the protocol by use, not by isinstance on a runtime-checkable Protocol (which checks names only)
    start = ep.reset()
    assert start.system_prompt and start.tools and start.messages[-1].role == "user"
    result = ep.step(ToolCall(id="c1", name="no_such_tool", arguments={}))
    assert isinstance(result, ToolResult) and result.error and not result.ends_episode
    outcome = ep.finish(list(start.messages), EndReason.AGENT_STOP)
    assert outcome.reward == 0.0 and outcome.success is False
    assert BENCH.name == "toy" and BENCH.has_user is False
    facts = BENCH.task_facts("L2-9000")
    assert facts == {"scenario_id": "", "level": 2, "null_success": False}
    man = BENCH.manifest()
    assert man["generator_version"] and man["split_sizes"] == {"train": 6000, "test": 288}


# ---------------------------------------------------------------- playing through the loop


def test_scripted_solution_scores_one_on_every_test_task():
    for tid in TEST_IDS:
        res = play(tid, assistant_turns(tid))
        out = res.outcome
        assert out.end_reason == EndReason.AGENT_STOP
        assert (out.reward, out.success) == (1.0, True), (tid, out.feedback)
        assert out.components == {"lookups_ok": 1.0, "submitted": 1.0, "answer_ok": 1.0}
        assert out.feedback.startswith("Correct")
        assert res.tool_errors == 0 and res.turns == make_task(tid).level + 1
        # scripted_messages is exactly what the loop records
        assert [m.to_dict() for m in res.messages] == [m.to_dict() for m in scripted_messages(tid)]


def test_saved_trajectory_scores_the_same_by_replay():
    for tid in TEST_IDS[:9]:
        ep = BENCH.episode(tid)
        ep.reset()  # no live steps: finish replays the messages
        assert ep.finish(scripted_messages(tid), EndReason.AGENT_STOP).reward == 1.0
        assert ep.finish(scripted_messages(tid), EndReason.MAX_STEPS).reward == 0.0


def test_wrong_answers_score_zero_with_feedback():
    for tid in TEST_IDS[:12]:
        task = make_task(tid)
        turns = assistant_turns(tid)[:-1] + [call_turn("submit", {"answer": task.answer + 1})]
        out = play(tid, turns).outcome
        assert out.end_reason == EndReason.AGENT_STOP and out.reward == 0.0 and not out.success
        assert out.components == {"lookups_ok": 1.0, "submitted": 1.0, "answer_ok": 0.0}
        assert f"Submitted {task.answer + 1}" in out.feedback and str(task.answer) in out.feedback


def test_guessing_without_lookups_and_stopping_without_submit():
    tid = "L2-9001"
    task = make_task(tid)
    out = play(tid, [call_turn("submit", {"answer": 0})]).outcome
    assert out.components["lookups_ok"] == 0.0 and "never looked up" in out.feedback
    out = play(tid, assistant_turns(tid)[:1]).outcome  # one lookup, then plain text
    assert out.end_reason == EndReason.AGENT_STOP and out.reward == 0.0
    assert out.components == {"lookups_ok": 0.5, "submitted": 0.0, "answer_ok": 0.0}
    assert "without a valid submit" in out.feedback and str(task.answer) in out.feedback


def test_too_many_errors_ends_with_zero():
    res = play(
        "L1-9000",
        [call_turn("lookup", {"key": "zzz"}, i) for i in range(5)],
        LoopConfig(max_errors=3),
    )
    assert res.outcome.end_reason == EndReason.TOO_MANY_ERRORS and res.outcome.reward == 0.0
    assert res.tool_errors == 3


# ---------------------------------------------------------------- bad calls


@pytest.mark.parametrize(
    ("name", "arguments", "needle"),
    [
        ("search", {"key": "fox"}, "unknown tool"),
        ("lookup", None, "not a valid JSON object"),
        ("lookup", {}, "needs the argument key"),
        ("lookup", {"key": 5}, "must be a string"),
        ("lookup", {"key": "fox", "x": 1}, "unexpected argument"),
        ("lookup", {"key": "zzz"}, "no key"),
        ("submit", {"answer": "37"}, "must be an integer"),
        ("submit", {"answer": 37.0}, "must be an integer"),
        ("submit", {"answer": True}, "must be an integer"),
        ("submit", None, "not a valid JSON object"),
    ],
)
def test_bad_calls_are_tool_errors(name, arguments, needle):
    ep = BENCH.episode("L1-9000")
    ep.reset()
    res = ep.step(
        ToolCall("c1", name, arguments, raw_arguments="{bad" if arguments is None else None)
    )
    assert res.error and not res.ends_episode and needle in res.content
    assert res.call_id == "c1" and res.name == name


def test_calls_after_submit_are_errors_and_do_not_change_the_answer():
    tid = "L1-9000"
    answer = make_task(tid).answer
    ep = BENCH.episode(tid)
    ep.reset()
    assert ep.step(ToolCall("a", "submit", {"answer": answer})).ends_episode
    again = ep.step(ToolCall("b", "submit", {"answer": answer + 1}))
    assert again.error and not again.ends_episode
    msgs = [
        call_turn("submit", {"answer": answer}, 1),
        call_turn("submit", {"answer": answer + 1}, 2),
    ]
    assert ep.finish(msgs, EndReason.AGENT_STOP).reward == 1.0


def test_reset_starts_fresh_and_the_prompt_is_short():
    ep = BENCH.episode("L3-9000")
    start = ep.reset()
    ep.step(ToolCall("a", "submit", {"answer": 1}))
    assert ep.reset() == start and not ep.world.looked_up and ep.world.submitted is None
    assert start.user is None and [m.role for m in start.messages] == ["user"]
    assert {t["function"]["name"] for t in start.tools} == {"lookup", "submit"}
    for tid in TEST_IDS:
        s = BENCH.episode(tid).reset()
        chat = to_template_messages(s.system_prompt, s.tools, s.messages)
        assert sum(len(m["content"]) for m in chat) < 1000  # whole rendered prompt, tools included
        full = to_template_messages(s.system_prompt, s.tools, scripted_messages(tid))
        assert sum(len(m["content"]) for m in full) < 1500


def chatml(chat: list[dict[str, str]], generation_prompt: bool) -> str:
    """SmolLM2's chat template (ChatML; our chats always open with a system message)."""
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in chat)
    return text + ("<|im_start|>assistant\n" if generation_prompt else "")


def test_prompt_tokens_with_smollm2():
    if not (SMOLLM2 / "tokenizer.json").is_file():
        pytest.skip(f"SmolLM2 tokenizer not at {SMOLLM2} (the character budget above still holds)")
    from tokenizers import Tokenizer  # the bare tokenizer: transformers' import alone takes seconds

    tok = Tokenizer.from_file(str(SMOLLM2 / "tokenizer.json"))
    for tid in TEST_IDS:
        s = BENCH.episode(tid).reset()
        prompt = to_template_messages(s.system_prompt, s.tools, s.messages)
        full = to_template_messages(s.system_prompt, s.tools, scripted_messages(tid))
        n_prompt = len(tok.encode(chatml(prompt, True), add_special_tokens=False).ids)
        n_full = len(tok.encode(chatml(full, False), add_special_tokens=False).ids)
        assert n_prompt < 300 and n_full < 500, (tid, n_prompt, n_full)


def test_scripted_turns_round_trip_through_the_policy_syntax():
    for tid in TEST_IDS[:6]:
        for m in assistant_turns(tid):
            parsed = parse_reply(render_call(m.tool_calls[0]))
            assert [(c.name, c.arguments) for c in parsed.tool_calls] == [
                (c.name, c.arguments) for c in m.tool_calls
            ]


# ---------------------------------------------------------------- fuzz

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-1000, 1000)
    | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_names = st.sampled_from(["lookup", "submit", "Lookup", ""]) | st.text(max_size=8)
_keys = st.sampled_from(["key", "answer", "x"]) | st.text(max_size=5)
_args = st.none() | st.dictionaries(
    _keys, _json | st.sampled_from(["fox", "rat", "yak"]), max_size=3
)
_calls = st.lists(st.tuples(_names, _args), max_size=6)


@settings(deadline=None, max_examples=60)
@given(tid=st.sampled_from(TEST_IDS), calls=_calls)
def test_episode_never_raises_on_fuzzed_calls(tid, calls):
    ep = BENCH.episode(tid)
    ep.reset()
    msgs: list[Message] = []
    for i, (name, args) in enumerate(calls):
        call = ToolCall(f"c{i}", name, args, raw_arguments=None if args is not None else "??")
        res = ep.step(call)
        assert isinstance(res, ToolResult) and isinstance(res.content, str)
        msgs += [
            Message(role="assistant", tool_calls=[call]),
            Message(role="tool", content=res.content),
        ]
    for reason in EndReason:
        out = ep.finish(msgs, reason)
        assert 0.0 <= out.reward <= 1.0 and out.feedback
        assert set(out.components) == {"lookups_ok", "submitted", "answer_ok"}


def test_toy_episode_is_built_from_a_task():
    assert ToyEpisode(make_task("L1-0007")).task_id == "L1-0007"


def test_level_zero_is_a_four_way_code_solved_by_its_script():
    import asyncio

    from harness.loop import LoopConfig, Reply, run_episode
    from harness.toy import Toy
    from harness.toy.tasks import COLOURS

    bench = Toy(levels="0")
    ids = bench.split_ids("test")
    assert len(ids) == 96 and all(i.startswith("L0-") for i in ids)
    answers = {make_task(i).answer for i in ids}
    assert answers == set(COLOURS.values())
    for tid in ids[:8]:
        turns = iter([m for m in bench.scripted_messages(tid) if m.role == "assistant"])

        async def agent(system, tools, messages, turns=turns):
            return Reply(message=next(turns))

        res = asyncio.run(run_episode(lambda t=tid: bench.episode(t), agent, None, LoopConfig()))
        assert res.outcome.success, res.outcome.feedback
