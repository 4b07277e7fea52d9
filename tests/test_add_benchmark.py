"""README "Add a benchmark": the module shown there, installed as a third party would install it
(an entry point), runs through `sgcd-bench eval` and `inspect eval` with identical results."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _readme_block(lang: str) -> str:
    section = (ROOT / "README.md").read_text().split("## Add a benchmark", 1)[1].split("\n## ", 1)[0]
    return re.search(rf"```{lang}\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def words_package(tmp_path, monkeypatch):
    """The README's module as `words`, with the README's entry point in an installed
    distribution's metadata (what `pip install` writes), on PYTHONPATH for subprocesses."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "words.py").write_text(_readme_block("python"))
    entry = re.search(r'\[project\.entry-points\."sgcd_bench\.benchmarks"\]\n(\w+) = "(\w+)"', _readme_block("toml"))
    dist = site / "words_bench-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: words-bench\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[sgcd_bench.benchmarks]\n{entry.group(1)} = {entry.group(2)}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    # this process too (reading the logs needs the benchmark's declarations), without leaking it
    import harness.benchmarks as registry

    registry.discover()  # the built-ins registered first, into the registry that stays
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.syspath_prepend(str(site))
    importlib.import_module("words")
    yield env
    sys.modules.pop("words", None)


REPLY = "Default output, said plainly."


class _Handler(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint that always replies REPLY (inspect's `openai-api`)."""

    def log_message(self, *a):
        pass

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        data = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "fixed",
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": REPLY}}],
                           "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}}).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def fixed_model(words_package):
    """`openai-api/fixed/model` served on 127.0.0.1; the env for subprocesses."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield {**words_package, "FIXED_BASE_URL": url, "FIXED_API_KEY": "k"}
    httpd.shutdown()
    httpd.server_close()


def _run(cmd: list[str], env: dict[str, str]) -> None:
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]


def test_a_benchmark_in_one_module_runs_through_both_entry_points(fixed_model, tmp_path):
    from harness.eval_run import EvalConfig, results_from_logs

    env, model = fixed_model, "openai-api/fixed/model"
    listing = subprocess.run([str(BIN / "sgcd-bench"), "benchmarks"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
    assert "words  (default split: test; words.Words)" in listing.stdout, listing.stderr[-2000:]

    _run([str(BIN / "sgcd-bench"), "eval", "--benchmark", "words", "--model", model, "--out",
          str(tmp_path / "cli"), "--display", "none"], env)  # fmt: skip
    _run([str(BIN / "inspect"), "eval", "harness/tasks.py@words", "--model", model, "--log-dir",
          str(tmp_path / "inspect"), "--display", "none"], env)  # fmt: skip
    _run([str(BIN / "inspect"), "eval", "harness/tasks.py@benchmark", "-T", "name=words", "--model",
          model, "--log-dir", str(tmp_path / "generic"), "--display", "none"], env)  # fmt: skip

    cli = pd.read_parquet(tmp_path / "cli" / "results.parquet")
    cfg = EvalConfig("words", "test", model)
    # the model always says REPLY: tasks 1 and 2 ask for a word in it
    assert cli.set_index("task_id")["success"].to_dict() == {"1": True, "2": True, "3": False}
    assert cli["said_word"].tolist() == [1.0, 1.0, 0.0]  # the declared component is a column
    assert (cli[["max_steps", "max_errors", "max_tokens"]] == [4, 1, 16]).all().all()  # its protocol
    for logs in ("inspect", "generic"):
        rows = pd.DataFrame(results_from_logs(tmp_path / logs, cfg))
        pd.testing.assert_frame_equal(rows.drop(columns=["seconds"]), cli.drop(columns=["seconds"]),
                                      check_dtype=False)  # fmt: skip
    summary = (tmp_path / "cli" / "summary.md").read_text()
    assert "# words / test" in summary and "0.667" in summary


def test_a_broken_benchmark_entry_point_is_named_and_does_not_hide_the_others(tmp_path, monkeypatch):
    import harness.benchmarks as registry

    dist = tmp_path / "broken_bench-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-bench\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[sgcd_bench.benchmarks]\nbroken = no_such_module_here\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_discovered", False)
    monkeypatch.setattr(registry, "_BROKEN", {})
    with pytest.warns(UserWarning, match="entry point broken = 'no_such_module_here'"):
        assert registry.benchmark_class("toy").name == "toy"  # the others still load
    with pytest.raises(KeyError, match="ModuleNotFoundError: No module named 'no_such_module_here'"):
        registry.benchmark_class("broken")
