"""The inspect-ai evaluation of τ³-airline through the real harness, end to end on CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.eval_run import EvalConfig, EvalConfigError, check_config, run_eval

COLUMNS = ["model", "user_model", "benchmark", "split", "task_id", "scenario_id", "epoch", "seed", "temperature",
           "reward", "success", "end_reason", "infra_error", "db_match", "communicate_ok", "turns", "tool_calls",
           "tool_errors", "input_tokens", "output_tokens", "seconds"]  # fmt: skip


def test_gold_conversation_scores_one_and_seeds_reach_the_server(scripted_env, tmp_path):
    srv = scripted_env()
    cfg = EvalConfig(benchmark="tau3-airline", split="test", model="openai-api/scripted/gold", seeds=2, limit=3, base_seed=7)
    summary = run_eval(cfg, tmp_path / "run", display="none")
    df = pd.read_parquet(tmp_path / "run" / "results.parquet")
    assert list(df.columns[: len(COLUMNS)]) == COLUMNS
    assert len(df) == 6 and set(df.task_id) == {"2", "6", "8"}
    assert df.reward.eq(1.0).all() and df.end_reason.eq("user_stop").all()
    assert sorted(zip(df.epoch, df.seed, strict=True)) == [(1, 7)] * 3 + [(2, 8)] * 3
    assert {s for who, s in srv.seeds if who == "agent"} == {7, 8}
    assert {s for who, s in srv.seeds if who == "user"} == {7, 8}
    assert summary["pass@1"] == 1.0 and summary["pass^2"] == 1.0
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["seeds"] == [7, 8] and manifest["user_model"] == "openai-api/scripted/gold"
    assert manifest["data_hashes"]["db.json"].startswith("1af9fea6") and manifest["tool_descriptions"] == "official"
    assert manifest["max_steps"] == 200 and manifest["max_errors"] == 10 and manifest["status"] == "complete"
    assert pd.read_csv(tmp_path / "run" / "results.csv", dtype={"task_id": str}).shape == df.shape


def test_wrong_conversation_scores_zero(scripted_env, tmp_path):
    scripted_env(wrong=True)
    cfg = EvalConfig(benchmark="tau3-airline", split="test", model="openai-api/scripted/wrong", limit=3)
    run_eval(cfg, tmp_path / "run", display="none")
    df = pd.read_parquet(tmp_path / "run" / "results.parquet").set_index("task_id")
    assert df.loc["8", "reward"] == 0.0 and df.loc["8", "db_match"] == 0.0  # task 8 requires a booking
    assert df.loc["2", "reward"] == 1.0  # task 2 requires nothing to change


def test_refuses_repeated_greedy_seeds_with_local_models_and_k_above_seeds():
    with pytest.raises(EvalConfigError, match="temperature"):
        check_config(EvalConfig("tau3-airline", "test", "local/x", seeds=3, temperature=0.0))
    check_config(EvalConfig("tau3-airline", "test", "local/x", seeds=3, temperature=0.7))
    with pytest.raises(EvalConfigError, match="k=\\[4\\]"):
        check_config(EvalConfig("tau3-airline", "test", "openai-api/a/b", seeds=3, pass_k=[4]))


def test_tiny_local_model_end_to_end(tiny_model_dir, tmp_path):
    """A random tiny checkpoint through `local/PATH` on 2 tasks: episodes end, rows are written."""
    result = CliRunner().invoke(main, [
        "eval", "--benchmark", "tau3-airline", "--model", f"local/{tiny_model_dir}", "--split", "test", "--limit", "2", "--seeds", "2",
        "--temperature", "1.0", "--max-steps", "6", "--max-tokens", "12", "--out", str(tmp_path / "run"),
        "--display", "none",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    df = pd.read_parquet(tmp_path / "run" / "results.parquet")
    assert len(df) == 4 and set(df.task_id) == {"2", "6"}
    assert not df.infra_error.any()
    assert set(df.end_reason) <= {"max_steps", "too_many_errors", "agent_error", "user_stop", "agent_stop"}
    for row in df.itertuples():  # each row's end reason agrees with its own counters and protocol
        assert (row.end_reason == "too_many_errors") == (row.tool_errors >= row.max_errors), row
        assert row.tool_errors <= row.tool_calls and (row.end_reason == "agent_error" or row.turns >= 1), row
        assert (row.max_steps, row.max_errors) == (6, 10), row  # the override and the τ³ protocol's own limit
    assert (df.input_tokens > 1000).all() and (df.output_tokens > 0).all()
    # the local model plays the user too: its tokens reach the rows as well
    assert (df.user_input_tokens > 0).all() and (df.user_output_tokens > 0).all()
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert "pass@1" in summary and "flip rate" in summary
    # the tiny model's 16-wide heads have no vLLM CPU kernel: the hf fallback served it, and says so
    assert "hf (dtype float32" in summary and "head size 16" in summary and "tau2-bench@a2c024725189" in summary


def test_resume_after_kill_loses_nothing(domain, tmp_path):
    from scripted_server import ScriptedServer

    out = tmp_path / "run"
    with ScriptedServer(domain, delay=0.05) as srv:
        env = dict(os.environ, SCRIPTED_BASE_URL=srv.base_url, SCRIPTED_API_KEY="k")
        cmd = [str(Path(sys.executable).parent / "sgcd-bench"), "eval", "--benchmark", "tau3-airline", "--model", "openai-api/scripted/gold",
               "--limit", "5", "--max-samples", "1", "--out", str(out), "--display", "none"]  # fmt: skip
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while len(srv.tasks_started) < 3 and time.time() < deadline:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        first = list(srv.tasks_started)
        srv.tasks_started.clear()
        subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=300)
        second = list(srv.tasks_started)
    finished_before = first[:-1]  # the last one was in flight when killed
    assert finished_before and not set(finished_before) & set(second), (first, second)
    df = pd.read_parquet(out / "results.parquet")
    assert sorted(df.task_id, key=int) == ["2", "6", "8", "13", "16"] and df.reward.eq(1.0).all()


def test_a_dead_model_server_is_recorded_as_infra_error(monkeypatch, tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("DEAD_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("DEAD_API_KEY", "k")
    cfg = EvalConfig(benchmark="tau3-airline", split="test", model="openai-api/dead/model", limit=2,
                     max_retries=0, timeout=10)  # fmt: skip
    summary = run_eval(cfg, tmp_path / "run", display="none")
    df = pd.read_parquet(tmp_path / "run" / "results.parquet")
    assert len(df) == 2 and df.infra_error.all() and df.end_reason.eq("infra_error").all()
    assert summary["infra_errors"] == 2 and summary["n_tasks"] == 0


def test_context_overflow_ends_the_episode(tiny_model_dir, tmp_path):
    """A prompt longer than the model's context ends the episode with context_overflow."""
    result = CliRunner().invoke(main, [
        "eval", "--benchmark", "tau3-airline", "--model", f"local/{tiny_model_dir}", "--limit", "1", "--max-steps", "6", "--max-tokens", "8",
        "-M", "max_context=600", "--out", str(tmp_path / "run"), "--display", "none",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    df = pd.read_parquet(tmp_path / "run" / "results.parquet")
    assert df.end_reason.tolist() == ["context_overflow"] and df.reward.tolist() == [0.0]
