"""AppWorld through the real harness: inspect eval set -> loop -> AppWorldEpisode -> engine servers.

`run_eval` runs the registered `appworld` benchmark (its own one-server pool, started on first
use) on a fixture data folder built at test time (harness.appworld.fixture; the AppWorld venv
is built once per machine if missing). A scripted OpenAI-compatible server on 127.0.0.1 plays
the agent through inspect's `openai-api/scripted/NAME` provider: it reads the task instruction
from the first user message and sends the fixture task's gold (or wrong) code in two
`execute_code` calls, the second one completing the task. About 80 s in all on 2 cores: the
fixture build (~20 s), the pool's first start (~10 s) and two server restarts (~20 s) dominate.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from scripted_server import message_text

from harness.appworld.benchmark import AppWorld
from harness.appworld.fixture import FIXTURE_SPLITS, FIXTURE_TASKS
from harness.appworld.metrics import scenario_id
from harness.appworld.prompt import TOOL_NAME
from harness.eval_run import EvalConfig, run_eval

TRAIN = FIXTURE_SPLITS["train"]  # two scenarios of three tasks: 5ca1ab1_{1,2,3}, 5ca1ab2_{1,2,3}
TASK_PREFIX = "My task for you:\n"  # harness.appworld.prompt.task_message


# -- set-up: the AppWorld venv and fixture folder are the session fixtures of conftest.py --------


@pytest.fixture(scope="module")
def harness_appworld(fixture_root) -> Iterator[AppWorld]:
    """The harness's own cached `appworld` benchmark (what run_eval uses), on the fixture root."""
    from harness import benchmarks

    key = ("appworld", ())
    previous = benchmarks._CACHE.pop(key, None)
    with pytest.MonkeyPatch.context() as mp:  # only while it is made: the root stays with it
        mp.setenv("SGCD_APPWORLD_ROOT", str(fixture_root))
        bench = benchmarks.get_benchmark("appworld")
    assert isinstance(bench, AppWorld) and bench.root == fixture_root.resolve()
    try:
        yield bench
    finally:
        bench.close()
        benchmarks._CACHE.pop(key, None)
        if previous is not None:
            benchmarks._CACHE[key] = previous


# -- the scripted agent ---------------------------------------------------------------------------


def _code_by_instruction(kind: str) -> dict[str, str]:
    """instruction -> the fixture's `solution` or `wrong` code (tasks sharing an instruction
    share their code: the count and pinned-note tasks of both scenarios)."""
    out: dict[str, str] = {}
    for t in FIXTURE_TASKS:
        code = getattr(t, kind)
        assert out.setdefault(t.instruction, code) == code, t.task_id
    return out


def _parts(code: str) -> list[str]:
    """The code as two execute_code calls: everything but the last line, then the last line
    (apis.supervisor.complete_task(...)); variables persist between calls in AppWorld's REPL."""
    lines = code.rstrip("\n").splitlines()
    assert "complete_task" in lines[-1] and "complete_task" not in "\n".join(lines[:-1])
    return ["\n".join(lines[:-1]), lines[-1]]


class AppWorldAgentServer:
    """An OpenAI-compatible chat server on 127.0.0.1 that plays AppWorld fixture tasks.

    `wrong_on(instruction)` says where to send the task's wrong code instead of its gold code;
    `before_reply(instruction, turn)` runs before each answer (a test's hook to break things).
    Every request's instruction, turn, seed and temperature, and every tool result, are kept."""

    def __init__(self, wrong_on: Callable[[str], bool] = lambda _: False,
                 before_reply: Callable[[str, int], None] | None = None):  # fmt: skip
        self.solution, self.wrong = _code_by_instruction("solution"), _code_by_instruction("wrong")
        self.wrong_on, self.before_reply = wrong_on, before_reply
        self.requests: list[dict[str, Any]] = []
        self.tool_results: list[str] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                data = json.dumps(server.respond(json.loads(raw))).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> AppWorldAgentServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def respond(self, body: dict[str, Any]) -> dict[str, Any]:
        msgs = body["messages"]
        first_user = next(message_text(m) for m in msgs if m["role"] == "user")
        assert first_user.startswith(TASK_PREFIX), first_user
        instruction = first_user[len(TASK_PREFIX) :]
        assert any(t.get("function", {}).get("name") == TOOL_NAME for t in body.get("tools", []))
        turn = sum(len(m.get("tool_calls") or []) for m in msgs if m["role"] == "assistant")
        with self.lock:
            self.requests.append({"instruction": instruction, "turn": turn, "seed": body.get("seed"),
                                  "temperature": body.get("temperature")})  # fmt: skip
            self.tool_results += [message_text(m) for m in msgs[-1:] if m["role"] == "tool"]
        if self.before_reply is not None:
            self.before_reply(instruction, turn)
        code = (self.wrong if self.wrong_on(instruction) else self.solution)[instruction]
        parts = _parts(code)
        if turn >= len(parts):  # the last part completes the task: the episode ends before this
            return _completion(len(self.requests), "Done.", None)
        args = json.dumps({"code": parts[turn]})
        call = {"id": f"call_{turn}", "type": "function",
                "function": {"name": TOOL_NAME, "arguments": args}}  # fmt: skip
        return _completion(len(self.requests), None, call)


def _completion(n: int, content: str | None, call: dict[str, Any] | None) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": content}
    if call is not None:
        msg["tool_calls"] = [call]
    return {
        "id": f"chatcmpl-{n}", "object": "chat.completion", "created": 0, "model": "scripted",
        "choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls" if call else "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }  # fmt: skip


@pytest.fixture()
def agent_server(monkeypatch) -> Iterator[Callable[..., AppWorldAgentServer]]:
    started: list[AppWorldAgentServer] = []

    def start(**kwargs: Any) -> AppWorldAgentServer:
        srv = AppWorldAgentServer(**kwargs).__enter__()
        started.append(srv)
        monkeypatch.setenv("SCRIPTED_BASE_URL", srv.base_url)
        monkeypatch.setenv("SCRIPTED_API_KEY", "test-key")
        return srv

    yield start
    for srv in started:
        srv.__exit__(None, None, None)


def _eval(out: Path, name: str, **kwargs: Any) -> tuple[dict[str, Any], pd.DataFrame]:
    # max_samples = the pool's size (1), as the appworld task asks: with more samples than the
    # event loop's default thread pool has workers (cpu_count + 4), every worker can end up
    # blocked in ServerPool.acquire while the episode holding the server waits for a worker.
    cfg = EvalConfig(benchmark="appworld", split="train", model=f"openai-api/scripted/{name}", max_samples=1,
                     **kwargs)  # fmt: skip
    summary = run_eval(cfg, out, display="none")
    return summary, pd.read_parquet(out / "results.parquet")


# -- the tests ------------------------------------------------------------------------------------


def test_gold_agent_over_two_seeds_scores_every_task(harness_appworld, agent_server, tmp_path):
    srv = agent_server()
    out = tmp_path / "run"
    summary, df = _eval(out, "gold", seeds=2, temperature=0.7, base_seed=11)

    assert len(df) == 12 and sorted(set(df.task_id)) == sorted(TRAIN)
    assert df.benchmark.eq("appworld-fixture").all()  # never labelled as the real AppWorld
    assert df.scenario_id.tolist() == [scenario_id(t) for t in df.task_id]
    assert set(df.scenario_id) == {"5ca1ab1", "5ca1ab2"}
    assert df.reward.eq(1.0).all() and df.success.all() and df.tests_passed.eq(1.0).all()
    assert df.end_reason.eq("agent_stop").all() and not df.infra_error.any()
    assert df.tool_calls.eq(2).all() and df.tool_errors.eq(0).all()
    # Epoch e is seed base + e - 1, sent to the model on every call.
    assert sorted(zip(df.epoch, df.seed, strict=True)) == [(1, 11)] * 6 + [(2, 12)] * 6
    assert df.temperature.eq(0.7).all()
    assert {r["seed"] for r in srv.requests} == {11, 12}
    assert {r["temperature"] for r in srv.requests} == {0.7}
    assert len(srv.requests) == 24 and len(srv.tool_results) == 12  # 2 calls per episode

    assert summary["tgc_mean"] == 100.0 and summary["sgc_mean"] == 100.0
    assert summary["tgc_sd"] == 0.0 and summary["sgc_sd"] == 0.0
    assert summary["pass@1"] == 1.0 and summary["pass^2"] == 1.0 and summary["infra_errors"] == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["benchmark"] == "appworld-fixture" and manifest["fixture"] is True
    assert manifest["seeds"] == [11, 12] and manifest["status"] == "complete"
    assert manifest["data_root"] == str(harness_appworld.root)
    csv = pd.read_csv(out / "results.csv", dtype={"task_id": str})
    assert csv.shape == df.shape and csv.benchmark.eq("appworld-fixture").all()


def test_wrong_agent_scores_zero(harness_appworld, agent_server, tmp_path):
    agent_server(wrong_on=lambda _: True)
    summary, df = _eval(tmp_path / "run", "wrong")

    assert len(df) == 6 and df.benchmark.eq("appworld-fixture").all()
    assert df.reward.eq(0.0).all() and not df.success.any()
    assert df.end_reason.eq("agent_stop").all() and not df.infra_error.any()  # it did complete
    # The wrong note (content "... (draft)") still passes 2 of its 3 tests; answers pass none.
    passed = df.set_index("task_id").tests_passed
    assert passed[["5ca1ab1_3", "5ca1ab2_3"]].tolist() == pytest.approx([2 / 3, 2 / 3])
    assert summary["tgc_mean"] == 0.0 and summary["sgc_mean"] == 0.0 and summary["pass@1"] == 0.0


def test_server_killed_twice_is_an_infra_error_left_out_of_tgc_and_sgc(
    harness_appworld, agent_server, tmp_path
):
    """The engine server dies under 5ca1ab1_3 on both attempts: the sample is retried once, then
    recorded as infra_error and left out (its scenario leaves SGC). 5ca1ab2_3 is done wrongly.
    Hand-computed: TGC = 4 of the 5 scored tasks = 80; SGC over 5ca1ab2 only = 0 (counting the
    infra error as a failure would give TGC 66.7; judging 5ca1ab1 on its two tasks, SGC 50)."""
    pool = harness_appworld.pool
    packing = next(t for t in FIXTURE_TASKS if t.task_id == "5ca1ab1_3").instruction
    chores = next(t for t in FIXTURE_TASKS if t.task_id == "5ca1ab2_3").instruction
    kills: list[int] = []

    def kill_server(instruction: str, turn: int) -> None:
        if instruction == packing and turn == 1:  # the world is up and its first call ran
            (server,) = pool.servers  # one server, held by this episode (max_samples 1)
            os.killpg(server.proc.pid, signal.SIGKILL)
            kills.append(server.proc.pid)

    restarts = pool.restarts
    srv = agent_server(wrong_on=lambda i: i == chores, before_reply=kill_server)
    out = tmp_path / "run"
    summary, df = _eval(out, "killer")

    rows = df.set_index("task_id")
    lost = rows.loc["5ca1ab1_3"]
    assert len(df) == 6 and lost.end_reason == "infra_error" and lost.infra_error
    assert not lost.success and lost.reward == 0.0 and lost.scenario_id == "5ca1ab1"
    others = rows.drop(index="5ca1ab1_3")
    assert not others.infra_error.any() and others.end_reason.eq("agent_stop").all()
    assert others.success.tolist() == [t != "5ca1ab2_3" for t in others.index]
    # Retried exactly once: two attempts, two kills, two restarts.
    assert len(kills) == 2 and pool.restarts == restarts + 2
    assert sum(r["instruction"] == packing and r["turn"] == 0 for r in srv.requests) == 2
    meta = _score_metadata(out, "5ca1ab1_3")
    assert meta["attempts"] == 2 and len(meta["info"]["infra_failures"]) == 2

    assert summary["infra_errors"] == 1
    assert summary["end_reasons"] == {"agent_stop": 5, "infra_error": 1}
    assert summary["tgc_mean"] == pytest.approx(80.0) and summary["sgc_mean"] == 0.0
    assert summary["n_tasks"] == 5 and summary["pass@1"] == pytest.approx(0.8)
    assert pool.wait_idle(60) and all(s.alive() for s in pool.servers)  # the pool recovered


def _score_metadata(out: Path, task_id: str) -> dict[str, Any]:
    from inspect_ai.log import list_eval_logs, read_eval_log

    (info,) = list_eval_logs(str(out / "logs"))
    sample = next(s for s in read_eval_log(info).samples or [] if str(s.id) == task_id)
    return next(iter(sample.scores.values())).metadata
