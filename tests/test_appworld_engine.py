"""AppWorld's real engine over HTTP on a fixture built at test time: scoring, metrics, failures.

Session set-up: the AppWorld venv (built once if missing: about a minute, see
harness.appworld.install), the fixture data folder (harness.appworld.fixture, about 15 s) and
one prewarmed server (about 8 s). The fixture's tasks have known answers; scripted agents run
their gold and wrong code through the real agent loop (harness.loop.run_episode).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from harness.appworld.benchmark import AppWorld
from harness.appworld.fixture import FIXTURE_TASKS, TASKS_BY_ID
from harness.appworld.install import appworld_env
from harness.appworld.metrics import metrics_by_seed, scenario_id
from harness.appworld.pool import PoolConfig, ServerPool
from harness.loop import LoopConfig, Reply, run_episode
from harness.records import EndReason, Message, ToolCall

LOOP = LoopConfig(max_steps=30)


@pytest.fixture(scope="session")
def pool(fixture_root):
    # Short execution limits so a hung server is detected in 3 + 2 s.
    with ServerPool(
        PoolConfig(size=1, root=fixture_root, execution_timeout_s=3, execution_grace_s=2)
    ) as p:
        yield p


@pytest.fixture(scope="session")
def bench(pool) -> AppWorld:
    return AppWorld(pool=pool)


def scripted(codes: list[str], before_turn=None):
    """An AgentModel that sends codes[i] on its i-th turn of an attempt, then says it is done."""

    async def agent(system_prompt, tools, messages):
        turn = sum(m.role == "assistant" for m in messages)
        if before_turn is not None:
            before_turn(turn)
        if turn < len(codes):
            call = ToolCall(f"call{turn}", "execute_code", {"code": codes[turn]})
            return Reply(Message(role="assistant", content=None, tool_calls=[call]))
        return Reply(Message(role="assistant", content="Done."))

    return agent


def run(bench: AppWorld, task_id: str, agent, holder: dict | None = None):
    def make():
        ep = bench.episode(task_id)
        if holder is not None:
            holder["ep"] = ep
            holder["attempt"] = holder.get("attempt", 0) + 1
        return ep

    return asyncio.run(run_episode(make, agent, None, LOOP))


@pytest.fixture(scope="session")
def gold_and_wrong(bench):
    """Every fixture task run once with its gold code and once with its wrong code."""
    return {(t.task_id, kind): run(bench, t.task_id, scripted([getattr(t, kind)]))
            for t in FIXTURE_TASKS for kind in ("solution", "wrong")}  # fmt: skip


def test_fixture_is_labelled_and_never_appworld(bench, fixture_root):
    assert bench.name == "appworld-fixture"
    assert bench.split_ids("train") == [t.task_id for t in FIXTURE_TASKS]
    assert bench.task_facts("5ca1ab2_3") == {"scenario_id": "5ca1ab2", "difficulty": 1}
    assert bench.manifest()["fixture"] is True


def test_success_and_failure_scored_right(gold_and_wrong, pool):
    for (task_id, kind), res in gold_and_wrong.items():
        o = res.outcome
        assert o.end_reason == EndReason.AGENT_STOP, (task_id, kind)  # complete_task ends it
        assert o.success is (kind == "solution") and o.reward == float(kind == "solution"), (
            task_id,
            kind,
            o.feedback,
        )
        assert o.info["task_completed"] and res.attempts == 1 and res.tool_calls == 1
        assert o.info["num_tests"] >= 1 and o.info["scenario_id"] == scenario_id(task_id)
        assert not pool.outputs_dir(o.info["experiment_name"]).exists()  # removed after scoring
    wrong_note = gold_and_wrong[("5ca1ab1_3", "wrong")].outcome
    assert wrong_note.components["tests_passed"] == pytest.approx(2 / 3)
    assert "requested title" in wrong_note.feedback
    names = {r.outcome.info["experiment_name"] for r in gold_and_wrong.values()}
    assert len(names) == len(gold_and_wrong)  # one experiment per rollout


def test_prompt_lists_supervisor_and_task(bench):
    ep = bench.episode("5ca1ab1_1")
    start = ep.reset()
    try:
        assert "Ada Quill" in start.system_prompt and "ada.quill@example.com" in start.system_prompt
        assert "2023-05-18 12:00:00" in start.system_prompt
        assert start.user is None and [t["function"]["name"] for t in start.tools] == [
            "execute_code"
        ]
        assert (
            start.messages[0].role == "user"
            and TASKS_BY_ID["5ca1ab1_1"].instruction in start.messages[0].content
        )
        first = ep.experiment_name
        # API docs are reachable from inside the REPL.
        code = 'doc = apis.api_docs.show_api_doc(app_name="simple_note", api_name="login")'
        r = ep.step(ToolCall("d", "execute_code", {"code": code + '\nprint(doc["method"])'}))
        assert r.content.strip().lower() == "post" and not r.ends_episode
        ep.reset()
        assert ep.experiment_name != first
    finally:
        ep.close()


def test_code_errors_are_tool_results_and_bad_calls_are_errors(bench):
    ep = bench.episode("5ca1ab1_1")
    ep.reset()
    try:
        r = ep.step(ToolCall("a", "execute_code", {"code": "1/0"}))
        assert (
            not r.error
            and r.content.startswith("Execution failed")
            and "ZeroDivisionError" in r.content
        )
        r = ep.step(ToolCall("b", "execute_code", {"code": "def f(:"}))
        assert not r.error and "Syntax error" in r.content
        assert ep.step(ToolCall("c", "execute_code", None, raw_arguments="{nope")).error
        assert ep.step(ToolCall("d", "execute_code", {"source": "1"})).error
        assert ep.step(ToolCall("e", "shell", {"code": "ls"})).error
        r = ep.step(
            ToolCall("f", "execute_code", {"code": "while True: pass"})
        )  # AppWorld's own limit
        assert not r.error and "timed out" in r.content
        r = ep.step(ToolCall("g", "execute_code", {"code": TASKS_BY_ID["5ca1ab1_1"].solution}))
        assert r.ends_episode and ep.done
        o = ep.finish([], EndReason.AGENT_STOP)
        assert o.success and o.info["code_errors"] == 3 and o.info["executions"] == 4
    finally:
        ep.close()


def test_agent_that_never_completes_fails(bench):
    res = run(bench, "5ca1ab1_3", scripted([]))
    o = res.outcome
    assert o.end_reason == EndReason.AGENT_STOP and not o.success and not o.info["task_completed"]
    assert "never marked complete" in o.feedback


def tidy_rows(results: dict[str, object], seed: int, bench: AppWorld) -> list[dict]:
    rows = []
    for t, r in results.items():
        o = r.outcome
        rows.append({"model": "scripted", "benchmark": bench.name, "split": "train", "task_id": t,
                     "seed": seed, "reward": o.reward, "success": o.success,
                     "end_reason": str(o.end_reason), **bench.task_facts(t)})  # fmt: skip
    return rows


UPSTREAM_METRIC = """
import json, sys
from appworld.evaluator import Metric
d = json.load(sys.stdin)
trackers = {t: {"success": s, "passes": [], "failures": []} for t, s in d.items()}
print(json.dumps(Metric._compute_metrics(trackers)["aggregate"]))
"""


def upstream_metrics(python: Path, root: Path, successes: dict[str, bool]) -> dict:
    """AppWorld's own TGC/SGC (appworld.evaluator.Metric, run in its venv; rounded to 0.1)."""
    cmd = [str(python), "-I", "-c", UPSTREAM_METRIC]
    env = appworld_env(root)
    proc = subprocess.run(cmd, input=json.dumps(successes), capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_tgc_sgc_on_fixture_against_hand_computed_and_appworld(
    gold_and_wrong, bench, appworld_python, fixture_root
):
    ids = bench.split_ids("train")
    # Seed 1: gold except 5ca1ab2_2 -> 5/6 tasks, scenario 5ca1ab1 only: TGC 83.33, SGC 50.
    seed1 = {t: gold_and_wrong[(t, "wrong" if t == "5ca1ab2_2" else "solution")] for t in ids}
    # Seed 2: wrong on 5ca1ab1_1, 5ca1ab2_1, 5ca1ab2_3 -> 3/6 tasks, no full scenario: 50, 0.
    bad2 = {"5ca1ab1_1", "5ca1ab2_1", "5ca1ab2_3"}
    seed2 = {t: gold_and_wrong[(t, "wrong" if t in bad2 else "solution")] for t in ids}
    rows = tidy_rows(seed1, 1, bench) + tidy_rows(seed2, 2, bench)
    summary = metrics_by_seed(rows)
    one, two = summary.per_seed[1], summary.per_seed[2]
    assert one.tgc == pytest.approx(100 * 5 / 6) and one.sgc == pytest.approx(50.0)
    assert two.tgc == pytest.approx(50.0) and two.sgc == pytest.approx(0.0)
    assert summary.tgc_mean == pytest.approx((100 * 5 / 6 + 50) / 2)
    assert summary.sgc_mean == pytest.approx(25.0)

    for seed, results in ((1, seed1), (2, seed2)):
        flags = {t: r.outcome.success for t, r in results.items()}
        upstream = upstream_metrics(appworld_python, fixture_root, flags)
        assert upstream["task_goal_completion"] == round(summary.per_seed[seed].tgc, 1)
        assert upstream["scenario_goal_completion"] == round(summary.per_seed[seed].sgc, 1)

    # The rows are a valid tidy table for the reports, with scenarios set.
    from reports.tidy import normalize

    df = normalize(pd.DataFrame(rows), Path("appworld-fixture.csv"))
    assert df["scenario"].tolist() == [scenario_id(t) for t in ids] * 2


def test_server_killed_mid_episode_is_recorded_as_infra_error(bench, pool):
    holder: dict = {}
    killed: list[int] = []

    def kill_after_first_execution(turn: int) -> None:
        if turn == 1:  # the world is up and one execution went through; now the server dies
            pid = holder["ep"].server.proc.pid
            os.killpg(pid, signal.SIGKILL)
            killed.append(pid)

    restarts = pool.restarts
    task = TASKS_BY_ID["5ca1ab1_3"]
    res = run(
        bench,
        task.task_id,
        scripted(["print('hi')", task.solution], kill_after_first_execution),
        holder,
    )
    o = res.outcome
    assert (
        o.end_reason == EndReason.INFRA_ERROR and not o.success and res.attempts == 2
    )  # retried once
    assert len(killed) == 2 and len(o.info["infra_failures"]) == 2
    assert all("failed on /execute" in f for f in o.info["infra_failures"])
    assert pool.restarts == restarts + 2
    # Left out of the metrics and counted.
    rows = tidy_rows({task.task_id: res}, 1, bench) + tidy_rows(
        {"5ca1ab1_1": run(bench, "5ca1ab1_1", scripted([TASKS_BY_ID["5ca1ab1_1"].solution]))},
        1,
        bench,
    )
    m = metrics_by_seed(rows).per_seed[1]
    assert (m.n_tasks, m.infra_errors, m.tgc) == (1, 1, 100.0) and m.scenarios_dropped == 1
    # The pool recovered: a fresh server answers.
    assert pool.wait_idle(60) and all(s.alive() for s in pool.servers)


def test_hung_server_times_out_then_the_retry_succeeds(bench, pool):
    holder: dict = {}

    def freeze_on_first_attempt(turn: int) -> None:
        if turn == 0 and holder["attempt"] == 1:
            # alive but silent: a hang (the slot's process group: zygote and episode child)
            os.killpg(holder["ep"].server.proc.pid, signal.SIGSTOP)

    task = TASKS_BY_ID["5ca1ab2_1"]
    res = run(bench, task.task_id, scripted([task.solution], freeze_on_first_attempt), holder)
    assert (
        res.outcome.success and res.outcome.end_reason == EndReason.AGENT_STOP and res.attempts == 2
    )
    assert "did not answer /execute within 5 s" in res.outcome.info["infra_failures"][0]
    assert pool.wait_idle(60)


def test_a_server_that_cannot_start_or_initialise_is_infrastructure(bench, pool, monkeypatch):
    """No model code ran yet: the infrastructure's failure (retried once, then infra_error);
    the slot's zygote is fine, so it is not restarted."""
    task = TASKS_BY_ID["5ca1ab1_1"]
    restarts = pool.restarts
    monkeypatch.setattr(pool, "init_payload", lambda t, n: {"task_id": t, "experiment_name": n,
                                                             "timeout_seconds": "never"})  # fmt: skip
    res = run(bench, task.task_id, scripted([task.solution]))
    assert res.outcome.end_reason == EndReason.INFRA_ERROR and res.attempts == 2
    assert all("/initialize" in f for f in res.outcome.info["infra_failures"])
    monkeypatch.undo()

    # 1 MiB of address space: the child answers its health check, then hangs initialising
    monkeypatch.setattr(pool.cfg, "memory_mb", 1)
    monkeypatch.setattr(pool.cfg, "request_timeout_s", 4)
    res = run(bench, task.task_id, scripted([task.solution]))
    assert res.outcome.end_reason == EndReason.INFRA_ERROR and res.attempts == 2
    assert all("did not answer /initialize within 4 s: hung" in f
               for f in res.outcome.info["infra_failures"])  # fmt: skip
    monkeypatch.undo()

    assert pool.restarts == restarts and pool.wait_idle(60)
    assert run(bench, task.task_id, scripted([task.solution])).outcome.success
