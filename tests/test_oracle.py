"""The `oracle` credit provider: credit from the benchmark's own ground truth, no LLM."""

from __future__ import annotations

import json

import pytest

from harness.airline.evaluator import score
from harness.airline.trajectories import gold_trajectory
from harness.records import EndReason, Message, ToolCall
from harness.toy.episode import ToyEpisode
from harness.toy.oracle import turn_credits as toy_credits
from harness.toy.tasks import make_task
from sgcd.credit import OracleProvider, OracleUnavailable, SiblingGroup, make_provider


def _toy_conversation(task_id: str, turns: list) -> tuple[list[Message], list[int]]:
    """turns: (name, args) tool calls or plain strings (a text-only turn)."""
    ep = ToyEpisode(make_task(task_id))
    msgs = list(ep.reset().messages)
    index = []
    for k, t in enumerate(turns):
        index.append(len(msgs))
        if isinstance(t, str):
            msgs.append(Message(role="assistant", content=t))
            continue
        call = ToolCall(f"call_{k}", t[0], t[1])
        msgs.append(Message(role="assistant", tool_calls=[call]))
        res = ep.step(call)
        msgs.append(Message(role="tool", content=res.content, tool_call_id=call.id, error=res.error))
    return msgs, index


def _solution(task_id: str) -> list:
    task = make_task(task_id)
    return [("lookup", {"key": k}) for k in task.lookups] + [("submit", {"answer": task.answer})]


def _perturb(task_id: str, kind: str, at: int) -> tuple[list, set[int]]:
    """The scripted solution with one deviation; returns (turns, the deviating turn numbers)."""
    task = make_task(task_id)
    sol = _solution(task_id)
    at = at % len(sol)
    unused = next((k for k in task.table if k not in task.lookups), None)
    if kind == "wrong_key" and unused is not None:  # a key of the table the solution never reads
        return sol[:at] + [("lookup", {"key": unused})] + sol[at:], {at}
    if kind in ("missing_key", "wrong_key"):  # (level 0's table holds only the needed key)
        return sol[:at] + [("lookup", {"key": "zzz"})] + sol[at:], {at}
    if kind == "repeat":  # a needed key looked up a second time
        i = min(at, len(sol) - 2)
        return sol[: i + 1] + [sol[i]] + sol[i + 1 :], {i + 1}
    if kind == "text":
        return sol[:at] + ["Let me think."] + sol[at:], {at}
    if kind == "wrong_answer":
        return sol[:-1] + [("submit", {"answer": task.answer + 1})], {len(sol) - 1}
    if kind == "bad_args":
        return sol[:-1] + [("submit", {"answer": str(task.answer)})], {len(sol) - 1}
    raise AssertionError(kind)


TOY_TASKS = ["L0-0003", "L1-0010", "L2-0007", "L3-0001", "L3-0042"]


@pytest.mark.parametrize("task_id", TOY_TASKS)
def test_toy_oracle_credits_every_turn_of_the_scripted_solution(task_id):
    msgs, index = _toy_conversation(task_id, _solution(task_id))
    assert toy_credits(task_id, msgs, index) == [1.0] * len(index)


@pytest.mark.parametrize("task_id", TOY_TASKS)
@pytest.mark.parametrize("kind", ["wrong_key", "missing_key", "repeat", "text", "wrong_answer", "bad_args"])
@pytest.mark.parametrize("at", [0, 1, 2])
def test_toy_oracle_marks_exactly_the_deviating_turns(task_id, kind, at):
    turns, deviating = _perturb(task_id, kind, at)
    msgs, index = _toy_conversation(task_id, turns)
    credits = toy_credits(task_id, msgs, index)
    assert {t for t, c in enumerate(credits) if c < 0} == deviating
    assert all(c == 1.0 for t, c in enumerate(credits) if t not in deviating)


def test_toy_oracle_provider_builds_a_valid_reference_naming_the_solution():
    from harness.toy.benchmark import Toy

    tid = "L2-0007"
    good = _toy_conversation(tid, _solution(tid))
    bad = _toy_conversation(tid, _perturb(tid, "wrong_answer", 0)[0])
    prov = make_provider("oracle", bench=Toy("0,1,2,3"))
    ans = prov.reference("ignored", 2, [len(good[1]), len(bad[1])], group=SiblingGroup(tid, [good, bad], [True, False]))
    assert ans.error is None and ans.provider == "oracle"
    task = make_task(tid)
    assert f"submit {task.answer}" in ans.reference.summary and "1 (turns 2)" in ans.reference.summary
    assert [s["credit"] for s in ans.reference.for_trajectory(1)] == [1.0, 1.0, -1.0]
    # without the group the oracle has nothing to read: a recorded error, not an exception
    assert prov.reference("p", 2, [3, 3]).reference is None


def test_oracle_is_refused_for_a_benchmark_without_per_step_ground_truth():
    from harness.benchmarks import Benchmark

    class NoTruth(Benchmark):  # declares no oracle credit (has_oracle False), like AppWorld
        name = "appworld"

    with pytest.raises(OracleUnavailable, match="unavailable for benchmark 'appworld'"):
        make_provider("oracle", bench=NoTruth())
    with pytest.raises(OracleUnavailable, match="needs the benchmark"):
        OracleProvider(None)
    # the random control over the oracle needs the benchmark too, and shuffles the oracle's credit
    with pytest.raises(OracleUnavailable):
        make_provider("random", random_base="oracle", bench=NoTruth())


# ---------------------------------------------------------------- τ³-airline


@pytest.fixture(scope="module")
def airline():
    from harness.benchmarks import get_benchmark

    return get_benchmark("tau3-airline")


def _agent_turns(messages: list[Message]) -> list[int]:
    return [i for i, m in enumerate(messages) if m.role == "assistant"][1:]  # the opening line is no turn


WRITE_TASKS = ["7", "8", "11", "12", "14", "20", "33", "44"]


@pytest.mark.parametrize("task_id", WRITE_TASKS)
def test_airline_oracle_credits_exactly_the_gold_write_calls_of_the_gold_trajectory(airline, task_id):
    from harness.airline.oracle import turn_credits
    from harness.airline.tools import WRITE_TOOLS

    task = airline.domain.task(task_id)
    gold = gold_trajectory(airline.domain, task)
    index = _agent_turns(gold.messages)
    credits, missed, unsaid = turn_credits(airline.domain, task, gold.messages, index)
    want = [1.0 if any(c.name in WRITE_TOOLS for c in gold.messages[i].tool_calls) else 0.0 for i in index]
    assert credits == want and 1.0 in credits
    assert missed == [] and unsaid == []


def test_airline_oracle_gives_minus_one_to_an_extra_write_and_names_the_missed_action(airline):
    task = airline.domain.task("7")  # gold: update_reservation_flights, then two cancellations
    gold = gold_trajectory(airline.domain, task)
    extra = ToolCall("x", "cancel_reservation", {"reservation_id": "HXDUBJ"})
    msgs = list(gold.messages)
    msgs.insert(-1, Message(role="assistant", tool_calls=[extra]))
    msgs.insert(-1, Message(role="tool", content="ok", tool_call_id="x"))
    # a sibling that skips the first gold write
    skip = [m for m in gold.messages if not (m.tool_calls and m.tool_calls[0].name == "update_reservation_flights")]
    skip = [m for m in skip if m.tool_call_id != next(c.id for m2 in gold.messages for c in m2.tool_calls
                                                      if c.name == "update_reservation_flights")]  # fmt: skip
    trajs = [(gold.messages, _agent_turns(gold.messages)), (msgs, _agent_turns(msgs)), (skip, _agent_turns(skip))]
    ok = [score(airline.domain, task, m, EndReason.USER_STOP).success for m, _ in trajs]
    assert ok == [True, False, False]
    prov = make_provider("oracle", bench=airline)
    ans = prov.reference("p", 3, [len(i) for _, i in trajs], group=SiblingGroup("7", trajs, ok))
    assert ans.error is None
    by = {t: [s["credit"] for s in ans.reference.for_trajectory(t)] for t in range(3)}
    k = _agent_turns(msgs).index(len(msgs) - 3)  # the extra cancel's turn
    assert by[1][k] == -1.0 and by[1].count(-1.0) == 1
    assert by[1][:k] == by[0][:k]
    assert by[2].count(1.0) == by[0].count(1.0) - 1 and -1.0 not in by[2]
    assert "trajectory 2 missed gold action 7_2 update_reservation_flights" in ans.reference.summary


def test_airline_oracle_matches_arguments_by_the_specs_db_rules(airline):
    from harness.airline.oracle import call_matches

    task = airline.domain.task("8")
    book = next(a for a in task.actions if a.name == "book_reservation")
    same = json.loads(json.dumps(book.arguments))
    reordered = ToolCall("a", book.name, dict(reversed(list(same.items()))))
    assert call_matches(airline.domain, reordered, book)
    floats = dict(same, payment_methods=[dict(p, amount=float(p["amount"])) for p in same["payment_methods"]])
    assert call_matches(airline.domain, ToolCall("b", book.name, floats), book)  # a new record takes declared types
    other = dict(same, insurance="yes" if same["insurance"] == "no" else "no")
    assert not call_matches(airline.domain, ToolCall("c", book.name, other), book)
    assert not call_matches(airline.domain, ToolCall("d", "cancel_reservation", same), book)


def test_airline_oracle_marks_the_last_turn_when_a_required_fact_is_never_said(airline):
    from harness.airline.oracle import turn_credits

    task = next(t for t in airline.domain.split("base") if t.communicate_info)
    gold = gold_trajectory(airline.domain, task)
    silent = [m for m in gold.messages if not (m.role == "assistant" and m.content in task.communicate_info)]
    credits, _, unsaid = turn_credits(airline.domain, task, silent, _agent_turns(silent))
    assert unsaid == list(task.communicate_info) and credits[-1] == -1.0


# ---------------------------------------------------------------- the audit: LLM credit against the oracle


@pytest.mark.parametrize("llm", ["guided", "openai"])
def test_sgcd_audit_reports_agreement_of_an_llm_provider_with_the_oracle(tmp_path, toy_tiny_dir, monkeypatch, llm):
    """An SGCD update on toy with an LLM provider (guided/tiny, or an OpenAI-compatible scripted
    server) and the oracle as audit provider: the audit's agreement is Spearman between the two
    providers' credits on the same steps, recomputed here from the credit file."""
    import torch
    from credit_server import CreditServer
    from scipy import stats

    from reports.credit_audit import audit_markdown, summarize_audit
    from sgcd.trainer import TrainConfig, Trainer

    provider = f"guided/{toy_tiny_dir}" if llm == "guided" else "openai"
    cfg = TrainConfig(algo="sgcd", benchmark="toy", benchmark_args={"levels": "1"}, model=f"local/{toy_tiny_dir}",
                      updates=1, groups_per_update=2, group_size=3, dynamic_sampling=False, max_new_tokens=16,
                      max_steps=6, max_errors=3,
                      algo_config={"provider": provider, "audit_provider": "oracle", "provider_max_tokens": 4})  # fmt: skip
    with CreditServer("good") as srv:
        monkeypatch.setenv("SGCD_CREDIT_BASE_URL", srv.base_url)
        monkeypatch.setenv("SGCD_CREDIT_MODEL", "credit")
        tr = Trainer(cfg, tmp_path / "run")
        batch, _ = tr.rollout_batch(1)
        # The random tiny model never solves a task. Rewrite each trajectory's agent turns (same
        # count) so the oracle has right and wrong turns to tell apart (a lookup of the needed
        # key, or a wrong submit), and mark one sibling per group a success, as the scorer
        # would for a solved task (the LLM provider sees SUCCESS / FAILURE).
        succ = [i % 3 == 0 for i in range(len(batch.rewards))]
        batch.success, batch.rewards = torch.tensor(succ), torch.tensor(succ).float()
        for t, meta in enumerate(batch.meta):
            res, task = meta["result"], make_task(meta["task_id"])
            res.outcome.success = succ[t]
            for k, i in enumerate(res.turn_message_index):
                right = (t + k) % 2 == 0 or succ[t]
                call = ("lookup", {"key": task.lookups[0]}) if right else ("submit", {"answer": task.answer + 1})
                res.messages[i] = Message(role="assistant", tool_calls=[ToolCall(f"c{k}", *call)])
        tr.update(batch)
    audit = summarize_audit(tr.dir)
    assert audit["provider"] == tr.algo.provider.name != "oracle" and audit["audit_provider"] == "oracle"
    rec = json.loads((tr.dir / "credit" / "step-0.json").read_text())
    main, oracle = [], []
    for g in rec["groups"]:
        m = {(s["trajectory"], s["turn"]): s["credit"] for s in g["reference"]["steps"]}
        o = {(s["trajectory"], s["turn"]): s["credit"] for s in g["audit"]["reference"]["steps"]}
        assert g["audit"]["provider"] == "oracle" and set(o.values()) <= {-1.0, 1.0}
        for key in sorted(m.keys() & o.keys()):
            main.append(m[key])
            oracle.append(o[key])
    assert audit["agreement_steps"] == len(main) > 0
    assert len(set(oracle)) == 2  # the oracle told right turns from wrong ones
    if llm == "openai":  # the scripted server's credit follows success: a real number
        assert len(set(main)) == 2
    if len(set(main)) > 1:
        assert audit["provider_rank_agreement"] == pytest.approx(stats.spearmanr(main, oracle)[0])
    else:  # a constant credit (the random tiny model's guided choice) has no ranks: said, not zero
        assert audit["provider_rank_agreement"] is None
    table = audit_markdown({"sgcd": audit})
    assert "| oracle |" in table and f"({len(main)})" in table


def test_an_audit_provider_equal_to_the_provider_is_refused(tmp_path, toy_tiny_dir):
    from sgcd.trainer import TrainConfig, Trainer

    cfg = TrainConfig(algo="sgcd", benchmark="toy", model=f"local/{toy_tiny_dir}", updates=1,
                      algo_config={"provider": "oracle", "audit_provider": "oracle"})  # fmt: skip
    with pytest.raises(ValueError, match="audit compares two different providers"):
        Trainer(cfg, tmp_path / "run")
