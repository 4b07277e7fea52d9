"""Issue 13 on the eval path: nothing lost, nothing leaked, clear errors before any work.

The adversarial replies come from tests/scripted_server.py (`fault=`), through inspect's real
openai-api provider and `sgcd-bench eval`."""

from __future__ import annotations

import errno
import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.eval_run import EvalConfig, EvalConfigError, run_eval
from harness.redact import REDACTED, is_secret, redact

TASKS = ["2", "6", "8"]


def _eval(out: Path, *extra: str, model: str = "openai-api/scripted/gold", limit: int = 3):
    args = ["eval", "--benchmark", "tau3-airline", "--model", model, "--limit", str(limit), "--out", str(out), "--display", "none", *extra]
    return CliRunner().invoke(main, args)


def _rows(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "results.parquet").set_index("task_id")


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def _log_text(out: Path) -> str:
    """Every member of every inspect log, as text."""
    text = []
    for log in (out / "logs").glob("*.eval"):
        with zipfile.ZipFile(log) as z:
            text += [z.read(name).decode("utf-8", "replace") for name in z.namelist()]
    return "\n".join(text)


# ---------------------------------------------------------------- nothing lost


@pytest.mark.parametrize("fault", ["surrogate_args", "surrogate_text"])
def test_a_lone_surrogate_from_the_model_loses_no_row(scripted_env, tmp_path, fault):
    srv = scripted_env(fault=fault, fault_tasks={"6"})
    out = tmp_path / "run"
    result = _eval(out)
    assert result.exit_code == 0, result.output
    assert srv.faults_sent == 1
    df = _rows(out)
    assert sorted(df.index, key=int) == TASKS and not df.infra_error.any()
    assert _manifest(out)["status"] == "complete" and _manifest(out)["missing"] == []
    from inspect_ai.log import list_eval_logs, read_eval_log

    (info,) = list_eval_logs(str(out / "logs"))
    log = read_eval_log(info)
    assert log.status == "success" and sorted(str(s.id) for s in log.samples) == sorted(TASKS)
    assert "\ufffd" in json.dumps(next(s for s in log.samples if s.id == "6").model_dump(mode="json"), ensure_ascii=False)


@pytest.mark.parametrize("fault", ["http500", "http500_surrogate", "drop", "bad_json", "no_choices"])
def test_provider_failures_are_infra_errors_and_a_rerun_retries_only_them(scripted_env, tmp_path, fault):
    srv = scripted_env(fault=fault, fault_tasks={"6"})
    cfg = EvalConfig(benchmark="tau3-airline", split="test", model="openai-api/scripted/gold", limit=3,
                     max_retries=0, timeout=20)  # fmt: skip
    out = tmp_path / "run"
    first = run_eval(cfg, out, display="none")
    df = _rows(out)
    assert sorted(df.index, key=int) == TASKS and srv.faults_sent >= 2  # the episode and its one retry
    assert df.loc["6", "end_reason"] == "infra_error" and df.loc["6", "infra_error"]
    assert first["infra_errors"] == 1 and first["missing"] == [] and _manifest(out)["status"] == "complete"

    srv.fault = None  # the provider recovered
    srv.tasks_started.clear()
    second = run_eval(cfg, out, display="none")
    assert srv.tasks_started == ["6"]  # only the infra error ran again
    df = _rows(out)
    assert sorted(df.index, key=int) == TASKS and df.reward.eq(1.0).all() and not df.infra_error.any()
    assert second["infra_errors"] == 0 and _manifest(out)["retried"] == ["task 6 epoch 1"]

    srv.tasks_started.clear()
    run_eval(cfg, out, display="none")
    assert srv.tasks_started == []  # nothing left to retry


@pytest.mark.parametrize(("fault", "infra"), [("huge", False), ("bad_args", False), ("odd_shapes", True),
                                              ("null_message", True)])  # fmt: skip
def test_odd_replies_still_give_their_row(scripted_env, tmp_path, fault, infra):
    scripted_env(fault=fault, fault_tasks={"6"})
    out = tmp_path / "run"
    result = _eval(out)
    assert result.exit_code == 0, result.output
    df = _rows(out)
    assert sorted(df.index, key=int) == TASKS and _manifest(out)["status"] == "complete"
    assert df.loc["6", "infra_error"] == infra and df.loc["2", "reward"] == 1.0


def test_a_run_with_missing_rows_says_which_and_exits_non_zero(scripted_env, tmp_path, monkeypatch):
    """Without the scrubbing, inspect cannot write the log: the command must not pass as a success."""
    import harness.inspect_bridge
    import harness.tasks

    guard, scrub = harness.tasks.guard_model, harness.inspect_bridge.scrub
    monkeypatch.setattr(harness.tasks, "guard_model", lambda model: model)
    monkeypatch.setattr(harness.inspect_bridge, "scrub", lambda obj: obj)
    srv = scripted_env(fault="surrogate_args", fault_tasks={"6"})
    out = tmp_path / "run"
    result = _eval(out)
    assert result.exit_code != 0
    assert "task 6 seed 0" in result.output and "Re-run the same command" in result.output
    manifest = _manifest(out)
    assert manifest["status"] == "incomplete" and "task 6 seed 0" in manifest["missing"]
    assert "INCOMPLETE" in (out / "summary.md").read_text()
    assert list(pd.read_csv(out / "results.csv").columns[:5]) == ["model", "user_model", "benchmark", "split", "task_id"]

    monkeypatch.setattr(harness.tasks, "guard_model", guard)  # the fix: the same command now completes
    monkeypatch.setattr(harness.inspect_bridge, "scrub", scrub)
    result = _eval(out)
    assert result.exit_code == 0, result.output
    assert sorted(_rows(out).index, key=int) == TASKS and _manifest(out)["status"] == "complete"
    assert "6" in srv.tasks_started


def test_scrub_replaces_lone_surrogates_and_keeps_everything_else():
    from inspect_ai.model import ChatMessageAssistant
    from inspect_ai.tool import ToolCall as InspectToolCall

    from harness.inspect_bridge import scrub, scrub_text
    from harness.records import Message, ToolCall

    assert scrub_text("a\ud83d b \udc00") == "a\ufffd b \ufffd"
    assert scrub_text("ok 😀 \u00e9") == "ok 😀 \u00e9"
    clean = {"a": ["x", ("y", 1)], "b": None}
    assert scrub(clean) is clean  # nothing to do: the same object
    msg = Message(role="assistant", content="hi\ud83d", tool_calls=[ToolCall("c", "f", {"k\ud83d": ["v\ud83d"]})])
    assert scrub([msg])[0] is msg and msg.content == "hi\ufffd" and msg.tool_calls[0].arguments == {"k\ufffd": ["v\ufffd"]}
    chat = ChatMessageAssistant(content="x\ud83d", tool_calls=[InspectToolCall("c", "f", {"a": "\ud83d"})])
    scrub(chat)
    assert chat.text == "x\ufffd" and chat.tool_calls[0].arguments == {"a": "\ufffd"}
    chat.model_dump_json()  # inspect can write it now


def test_force_never_touches_a_run_of_another_kind(tmp_path):
    out = tmp_path / "exp"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"kind": "experiment"}))
    cfg = EvalConfig(benchmark="tau3-airline", split="test", model="openai-api/scripted/gold", limit=1)
    with pytest.raises(EvalConfigError, match="'experiment' run, not an eval"):
        run_eval(cfg, out, display="none", force=True)
    assert json.loads((out / "manifest.json").read_text()) == {"kind": "experiment"}


def test_a_log_cut_short_is_set_aside_and_its_samples_run_again(scripted_env, tmp_path):
    srv = scripted_env()
    out = tmp_path / "run"
    assert _eval(out, limit=2).exit_code == 0
    (log,) = (out / "logs").glob("*.eval")
    log.write_bytes(log.read_bytes()[:3000])  # a crash or a full disk mid-write
    srv.tasks_started.clear()
    result = _eval(out, limit=2)
    assert result.exit_code == 0, result.output
    assert sorted(srv.tasks_started, key=int) == ["2", "6"]
    assert sorted(_rows(out).index, key=int) == ["2", "6"] and _manifest(out)["status"] == "complete"
    assert _manifest(out)["unreadable_logs"] == [str(log) + ".unreadable"]
    assert Path(str(log) + ".unreadable").exists()


# ---------------------------------------------------------------- resume only the same run


def test_an_existing_run_resumes_only_with_the_same_configuration(scripted_env, tmp_path):
    srv = scripted_env()
    out = tmp_path / "run"
    assert _eval(out, limit=1).exit_code == 0
    before = (out / "results.csv").read_text()
    for extra, key in ((["--seeds", "2"], "seeds"), (["--temperature", "0.5"], "temperature"),
                       (["--max-steps", "50"], "max_steps"), (["--base-seed", "3"], "seeds")):  # fmt: skip
        result = _eval(out, *extra, limit=1)
        assert result.exit_code != 0 and key in result.output and "--force" in result.output, result.output
        assert "Traceback" not in result.output
    result = _eval(out, model="openai-api/scripted/other", limit=1)
    assert result.exit_code != 0 and "model" in result.output
    result = _eval(out, limit=2)
    assert result.exit_code != 0 and "task_ids" in result.output
    assert (out / "results.csv").read_text() == before  # the refusals changed nothing

    srv.tasks_started.clear()
    assert _eval(out, limit=1).exit_code == 0 and srv.tasks_started == []  # same options: resumes
    result = _eval(out, "-M", "api_key=a-rotated-key", limit=1)  # a secret is not part of the run
    assert result.exit_code == 0 and srv.tasks_started == [], result.output
    assert len(list((out / "logs").glob("*.eval"))) == 1
    result = _eval(out, "--force", model="openai-api/scripted/other", limit=2)
    assert result.exit_code == 0, result.output
    df = pd.read_parquet(out / "results.parquet")
    assert set(df.model) == {"openai-api/scripted/other"} and sorted(df.task_id, key=int) == ["2", "6"]


def test_a_folder_with_logs_but_no_manifest_is_refused(tmp_path):
    (tmp_path / "run" / "logs").mkdir(parents=True)
    (tmp_path / "run" / "logs" / "x.eval").write_text("")
    cfg = EvalConfig(benchmark="tau3-airline", split="test", model="openai-api/scripted/gold", limit=1)
    with pytest.raises(EvalConfigError, match="no manifest.json"):
        run_eval(cfg, tmp_path / "run", display="none")


# ---------------------------------------------------------------- nothing leaked


@pytest.mark.parametrize("name", ["api_key", "openai_api_key", "hf_key", "KEY", "token", "hf_token", "authToken",
                                  "client_secret", "secret_sauce", "db_password", "PASSWORD", "api-key"])  # fmt: skip
def test_secret_names_are_redacted(name):
    assert is_secret(name)
    assert redact({"a": {name: "s3cr3t-value"}}) == {"a": {name: REDACTED}}


@pytest.mark.parametrize("name", ["max_tokens", "max_new_tokens", "tokenizer", "token_limit", "keys", "monkey",
                                  "temperature", "model", "base_url"])  # fmt: skip
def test_ordinary_names_are_kept(name):
    assert not is_secret(name)
    assert redact({name: 5}) == {name: 5}


def test_a_model_that_cannot_start_never_echoes_a_secret(tmp_path, monkeypatch):
    import inspect_ai.model

    def echoing_provider(name, **kwargs):  # a provider whose set-up error quotes its arguments
        raise ValueError(f"cannot connect with {kwargs}")

    monkeypatch.setattr(inspect_ai.model, "get_model", echoing_provider)
    result = _eval(tmp_path / "r", "-M", "my_token=tok-SECRET-666", "-M", "region=eu-kept")
    _fails_cleanly(result, "--model openai-api/scripted/gold: cannot start the model", "eu-kept")
    assert "tok-SECRET-666" not in result.output


def test_url_credentials_are_redacted():
    assert redact(["https://me:pw123@host/v1"]) == [f"https://{REDACTED}@host/v1"]


def test_secret_model_args_reach_no_file_the_run_writes(scripted_env, tmp_path):
    scripted_env()
    out = tmp_path / "run"
    result = _eval(out, "-M", "api_key=sk-SECRET-111", "-M", "organization=org-kept", limit=1)
    assert result.exit_code == 0, result.output
    written = "\n".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file() and p.suffix != ".eval")
    written += _log_text(out)
    assert "sk-SECRET-111" not in written and "sk-SECRET-111" not in result.output
    assert _manifest(out)["config"]["model_args"] == {"api_key": REDACTED, "organization": "org-kept"}
    assert "org-kept" in _log_text(out)  # inspect still logs the harmless arguments


def test_secret_model_args_of_a_local_model_are_refused_without_echoing_them(tiny_model_dir, tmp_path):
    """A local model knows its `-M` keys; an unknown one (here, secrets meant for something else)
    stops the run before any log is written, naming the keys and never their values."""
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "eval", "--benchmark", "tau3-airline", "--model", f"local/{tiny_model_dir}", "--limit", "1", "--max-steps", "4", "--max-tokens", "4",
        "-M", "hf_token=hf-SECRET-222", "-M", "db_password=pw-SECRET-333", "-M", "batch=2",
        "--out", str(out), "--display", "none",
    ])  # fmt: skip
    assert result.exit_code != 0 and "unknown model arg(s) db_password, hf_token" in result.output
    written = "\n".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file()) if out.exists() else ""
    for text in (result.output, written):
        assert "hf-SECRET-222" not in text and "pw-SECRET-333" not in text
    assert not (out / "logs").exists()


# ---------------------------------------------------------------- clear errors before any work


def _fails_cleanly(result, *words: str) -> None:
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), result.exception  # click's error, not a crash
    assert "Traceback" not in result.output
    for w in words:
        assert w in result.output, result.output


def test_model_and_benchmark_args_without_equals(tmp_path):
    _fails_cleanly(_eval(tmp_path / "r", "-M", "api_key"), "-M/--model-arg", "KEY=VALUE", "'api_key'")
    _fails_cleanly(_eval(tmp_path / "r", "-B", "levels"), "-B/--benchmark-arg", "KEY=VALUE")
    assert not (tmp_path / "r").exists()


def test_unknown_benchmark_args(tmp_path):
    _fails_cleanly(_eval(tmp_path / "r", "-B", "nonsense=1"), "unknown -B key(s) for tau3-airline: nonsense",
                   "opening_line")  # fmt: skip
    _fails_cleanly(CliRunner().invoke(main, ["eval", "--benchmark", "toy", "--model", "openai-api/a/b", "-B", "level=1",
                                             "--out", str(tmp_path / "r")]), "known: levels")  # fmt: skip
    _fails_cleanly(CliRunner().invoke(main, ["eval", "--benchmark", "nope", "--model", "openai-api/a/b",
                                             "--out", str(tmp_path / "r")]), "unknown benchmark 'nope'")  # fmt: skip


def test_an_unknown_split(tmp_path):
    _fails_cleanly(_eval(tmp_path / "r", "--split", "nope"), "--split nope", "train, test")
    assert not (tmp_path / "r").exists()


def test_a_local_folder_that_does_not_exist(tmp_path):
    _fails_cleanly(_eval(tmp_path / "r", model=f"local/{tmp_path / 'missing'}"), "does not exist", "local/smollm2")
    (tmp_path / "empty").mkdir()
    _fails_cleanly(_eval(tmp_path / "r", model=f"local/{tmp_path / 'empty'}"), "no config.json")
    _fails_cleanly(_eval(tmp_path / "r", "--user-model", f"local/{tmp_path / 'missing'}"), "--user-model")
    assert not (tmp_path / "r").exists()


def test_a_missing_api_key_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("NOKEY_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.delenv("NOKEY_API_KEY", raising=False)
    _fails_cleanly(_eval(tmp_path / "r", model="openai-api/nokey/m"), "NOKEY_API_KEY", "--model openai-api/nokey/m")
    assert not (tmp_path / "r" / "logs").exists()


def test_an_output_path_under_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    _fails_cleanly(_eval(tmp_path / "file" / "run"), "cannot write to the output folder", "--out")


@pytest.mark.parametrize("err", [errno.EACCES, errno.EROFS, errno.ENOSPC])
def test_a_read_only_or_full_output_folder(tmp_path, monkeypatch, err):
    """Root ignores permission bits, so the file system's answer is simulated where the probe writes."""
    real = Path.write_text

    def refuse(self, *a, **k):
        if self.parent == tmp_path / "r":
            raise OSError(err, __import__("os").strerror(err), str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", refuse)
    _fails_cleanly(_eval(tmp_path / "r"), "cannot write", __import__("os").strerror(err))


def test_a_folder_that_fills_up_during_the_run(scripted_env, tmp_path, monkeypatch):
    import harness.eval_run

    scripted_env()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "r" / ".results.parquet.tmp"))

    monkeypatch.setattr(harness.eval_run, "write_results", full)
    _fails_cleanly(_eval(tmp_path / "r", limit=1), "No space left on device", "results.parquet")


def test_train_config_and_experiment_header_hold_no_secret(tmp_path):
    import json

    from harness.experiment import Experiment, ExperimentConfig, Method
    from sgcd.trainer import TrainConfig

    toml = TrainConfig(algo="grpo", benchmark_args={"levels": "0", "api_key": "sk-TRAIN-444"}).to_toml()
    assert "sk-TRAIN-444" not in toml and REDACTED in toml and 'levels = "0"' in toml
    cfg = ExperimentConfig(name="x", benchmark="toy", base_model="local/smollm2", methods=[Method("g", "grpo")],
                           eval={"seeds": 1, "max_tokens": 64, "model_args": {"batch": 2, "hf_token": "hf-EXP-555"}})  # fmt: skip
    exp = Experiment(cfg, tmp_path / "exp")
    warm, trains, evals = exp.plan()
    for piece in trains + evals:  # what a run records for each piece before running it
        exp._write_record(piece)
    exp._trains, exp._evals = trains, evals
    header = exp._header()
    exp._write_manifest("training")
    written = header + (tmp_path / "exp" / "manifest.json").read_text()
    written += "".join(p.read_text() for p in (tmp_path / "exp" / "pieces").glob("*.json"))
    assert "hf-EXP-555" not in written and REDACTED in written
    assert '"max_tokens": 64' in header
    record = json.loads(evals[0].record_path.read_text())
    assert record["config"]["model_args"] == {"batch": "2", "hf_token": REDACTED}
