"""`sgcd-bench eval`: run a benchmark task for one model over N seeds and write a tidy run directory.

runs/NAME/
  logs/            inspect logs (open with `inspect view --log-dir runs/NAME/logs`)
  results.parquet  one row per task × seed (also results.csv)
  manifest.json    config, seeds, user model, step caps, git commit, package versions, data hashes

The run is an inspect eval set: re-running the same command after an interruption reuses every
finished sample from the logs and runs only the rest, and runs again every episode that ended in
an infrastructure error. Every task × seed gets exactly one row (a success, a scored failure or
an infra_error); the manifest says "complete" only when all are there, else it lists the missing
ones. A folder holding a run of another configuration is refused (`force=True` starts over).
Secrets in model or benchmark arguments never reach the manifest or the inspect logs.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from harness.metrics import check_pass_k
from harness.provenance import generation_columns

BASE_COLUMNS = [
    "model", "user_model", "benchmark", "split", "task_id", "scenario_id", "epoch", "seed", "temperature",
    "reward", "success", "end_reason", "infra_error",
]  # fmt: skip
TAIL_COLUMNS = ["turns", "tool_calls", "tool_errors", "input_tokens", "output_tokens", "seconds",
                "user_input_tokens", "user_output_tokens"]  # fmt: skip
# the protocol each row ran under (the values used) and which limits the run overrode
PROTOCOL_COLUMNS = ["max_steps", "max_errors", "max_tokens", "protocol_overrides"]
# what generated the agent's tokens (a `local/` model: vllm or hf, and the dtype)
GENERATION_COLUMNS = ["backend", "dtype"]


@dataclass
class EvalConfig:
    benchmark: str
    split: str
    model: str
    user_model: str | None = None
    seeds: int = 1
    base_seed: int = 0
    temperature: float = 0.0
    limit: int | None = None
    max_steps: int | None = None  # None: the benchmark's protocol (harness.benchmarks)
    max_errors: int | None = None
    max_tokens: int | None = None
    pass_k: list[int] = field(default_factory=list)
    max_samples: int | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    benchmark_args: dict[str, Any] = field(default_factory=dict)
    max_retries: int = 3  # per model call; then the episode is an infra_error (retried once)
    timeout: int = 600  # seconds per model call, retries included

    def bench(self):
        from harness.benchmarks import get_benchmark

        return get_benchmark(self.benchmark, **self.benchmark_args)

    def bench_class(self):
        """The benchmark's class: its declarations (components, summary metrics, …), unbuilt."""
        from harness.benchmarks import benchmark_class

        return benchmark_class(self.benchmark)

    def protocol(self):
        """The benchmark's protocol with this run's explicit limits in place (ResolvedProtocol)."""
        from harness.benchmarks import resolve_protocol

        return resolve_protocol(self.benchmark, self.max_steps, self.max_errors, self.max_tokens)

    @property
    def resolved_user_model(self) -> str:
        if not self.bench().has_user:
            return "none"  # no simulated user in this benchmark
        return self.user_model or self.model


class EvalConfigError(ValueError):
    """A run configuration that cannot give a meaningful result; the message says why."""


class OutputError(EvalConfigError):
    """The output folder cannot be written (read-only, full, not a folder)."""


def check_config(cfg: EvalConfig) -> None:
    if cfg.seeds < 1:
        raise EvalConfigError("--seeds must be at least 1")
    for key in ("limit", "max_steps", "max_errors", "max_tokens", "max_samples"):  # None: no limit / default
        value = getattr(cfg, key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise EvalConfigError(f"--{key.replace('_', '-')} must be a whole number of at least 1; got {value!r}")
    if not cfg.temperature >= 0:  # also refuses NaN
        raise EvalConfigError(f"--temperature must be at least 0; got {cfg.temperature}")
    if cfg.seeds > 1 and cfg.temperature <= 0 and cfg.model.startswith("local/"):
        raise EvalConfigError(
            f"{cfg.seeds} seeds at temperature 0 with a local model would repeat the same episode "
            f"{cfg.seeds} times (greedy decoding is deterministic). Set --temperature above 0, or use --seeds 1."
        )
    try:
        check_pass_k(cfg.pass_k, cfg.seeds)
    except ValueError as e:
        raise EvalConfigError(str(e)) from None
    if cfg.limit is not None and cfg.limit < 1:
        raise EvalConfigError(f"--limit must be at least 1; got {cfg.limit}")


def check_local_models(cfg: EvalConfig) -> None:
    for flag, name in (("--model", cfg.model), ("--user-model", cfg.user_model)):
        if name and name.startswith("local/"):
            check_local_model(flag, name)


def check_local_model(flag: str, model: str) -> None:
    """A `local/PATH` model must name a Hugging Face folder that exists (or the alias smollm2)."""
    from harness.models import SMOLLM2_ALIAS

    name = model[len("local/"):]
    if name == SMOLLM2_ALIAS:
        return
    path = Path(name).expanduser()
    if not path.is_dir():
        raise EvalConfigError(f"{flag} {model}: the folder {path} does not exist; give a Hugging Face model "
                              f"folder (config.json, tokenizer, weights) or local/{SMOLLM2_ALIAS}")  # fmt: skip
    if not (path / "config.json").is_file():
        raise EvalConfigError(f"{flag} {model}: {path} has no config.json, so it is not a Hugging Face model folder")


def load_benchmark(cfg: EvalConfig):
    """The benchmark, with a clear error for an unknown benchmark or unknown -B keys."""
    from harness.benchmarks import check_args

    try:
        check_args(cfg.benchmark, cfg.benchmark_args)
    except KeyError as e:
        raise EvalConfigError(str(e.args[0])) from e
    except ValueError as e:
        raise EvalConfigError(str(e)) from e
    bench = cfg.bench()
    try:
        ids = _task_ids(cfg)
    except (KeyError, ValueError) as e:
        raise EvalConfigError(f"--split {cfg.split}: {e.args[0] if e.args else e}") from e
    if not ids:
        raise EvalConfigError(f"--split {cfg.split} of {cfg.benchmark} has no tasks to run")
    return bench


def git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[1]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions(names: tuple[str, ...] = ("sgcd-bench", "inspect-ai", "torch", "transformers", "openai", "pydantic")) -> dict[str, str | None]:
    out = {}
    for n in names:
        try:
            out[n] = importlib_metadata.version(n)
        except importlib_metadata.PackageNotFoundError:
            out[n] = None
    return out


def run_identity(cfg: EvalConfig) -> dict[str, Any]:
    """What a run's rows depend on: resuming into a folder needs all of it unchanged. Left out:
    pass_k (only the summary), concurrency, retries, timeouts, and secrets (an API key)."""
    from harness.redact import is_secret, redact

    bench = cfg.bench()
    data = {k: v for k, v in bench.manifest().items() if not k.endswith("_dir")}
    model_args = {k: v for k, v in cfg.model_args.items() if not is_secret(k)}  # a new key is the same run
    ident = {
        "benchmark": bench.name, "split": cfg.split, "model": cfg.model, "user_model": cfg.resolved_user_model,
        "seeds": [cfg.base_seed + e for e in range(cfg.seeds)], "temperature": cfg.temperature,
        "task_ids": _task_ids(cfg), **{k: v for k, v in cfg.protocol().protocol.to_dict().items() if k != "user"},
        "model_args": model_args, "benchmark_args": cfg.benchmark_args,
        "data": data,
    }  # fmt: skip
    return json.loads(json.dumps(redact(ident), default=str))


RUN_FILES = ("logs", "results.parquet", "results.csv", "manifest.json", "summary.md")


def check_resume(cfg: EvalConfig, out_dir: Path, force: bool) -> None:
    """Refuse a folder that holds a run of another configuration; `force` deletes that run's
    files (only RUN_FILES, nothing else in the folder) to start over."""
    import shutil

    manifest_path = out_dir / "manifest.json"
    has_logs = any((out_dir / "logs").glob("*.eval"))
    kind = _manifest_kind(manifest_path)
    if kind not in (None, "eval"):
        raise EvalConfigError(f"{out_dir} holds a {kind!r} run, not an eval; use another --out")
    if force:
        for name in RUN_FILES:
            path = out_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        return
    if not manifest_path.exists():
        if has_logs:
            raise EvalConfigError(f"{out_dir} holds inspect logs but no manifest.json, so its configuration is "
                                  "unknown; use another --out, or --force to delete its results and start over")  # fmt: skip
        return
    try:
        old = json.loads(manifest_path.read_text())
        old_ident = old.get("run_identity") or run_identity(EvalConfig(**old["config"]))
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise EvalConfigError(f"{manifest_path} is not a manifest sgcd-bench eval can read ({type(e).__name__}: {e}); "
                              "use another --out, or --force to delete its results and start over") from e  # fmt: skip
    new_ident = run_identity(cfg)
    diff = [k for k in sorted(set(old_ident) | set(new_ident)) if old_ident.get(k) != new_ident.get(k)]
    if diff:
        what = "; ".join(f"{k}: {_short(old_ident.get(k))} there, {_short(new_ident.get(k))} now" for k in diff)
        raise EvalConfigError(
            f"{out_dir} holds a run with a different configuration ({what}). Re-run with its options to resume "
            "it, use another --out, or add --force to delete its results and start over."
        )


def _manifest_kind(path: Path) -> str | None:
    """The `kind` a manifest.json declares ("eval" when unreadable: check_resume reports that)."""
    try:
        old = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return "eval"
    return old.get("kind") if isinstance(old, dict) else "eval"


def _short(value: Any, width: int = 80) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def check_writable(out_dir: Path) -> None:
    """Create the output folder and write a probe file there, before any work."""
    probe = out_dir / ".sgcd-write-test"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise OutputError(f"cannot write to the output folder {out_dir}: {e.strerror or e}; "
                          "choose another --out or free space there") from e  # fmt: skip


def write_manifest(out_dir: Path, cfg: EvalConfig, extra: dict[str, Any]) -> dict[str, Any]:
    from harness.models import describe_model
    from harness.provenance import provenance
    from harness.redact import redact

    bench = cfg.bench()
    bench_manifest = bench.manifest()
    protocol = cfg.protocol()
    manifest = {
        "kind": "eval",
        "benchmark": bench.name,  # e.g. appworld-fixture: never labelled as the real benchmark
        "split": cfg.split,
        "model": cfg.model,
        "model_label": describe_model(cfg.model),
        "user_model": cfg.resolved_user_model,
        "user_model_label": describe_model(cfg.resolved_user_model),
        "temperature": cfg.temperature,
        "seeds": [cfg.base_seed + e for e in range(cfg.seeds)],
        "max_steps": protocol.protocol.max_steps,
        "max_errors": protocol.protocol.max_errors,
        "max_tokens": protocol.protocol.max_tokens,
        "protocol": protocol.to_dict(),  # the values used, which were overridden, the benchmark's own
        "components": list(cfg.bench_class().components),  # the reward-component columns of the rows
        "task_ids": _task_ids(cfg),
        "config": asdict(cfg),
        "run_identity": run_identity(cfg),
        "git_commit": git_commit(),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        **bench_manifest,
        "provenance": provenance(bench_manifest, cfg.model, cfg.resolved_user_model, cfg.temperature, cfg.model_args,
                                 git_commit(), package_versions(("sgcd-bench",))["sgcd-bench"]),  # fmt: skip
        **extra,
    }
    manifest = redact(json.loads(json.dumps(manifest, default=str)))
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, out_dir / "manifest.json")
    return manifest


def _task_ids(cfg: EvalConfig) -> list[str]:
    ids = cfg.bench().split_ids(cfg.split)
    return ids[: cfg.limit] if cfg.limit is not None else ids


def build_task(cfg: EvalConfig):
    from harness.tasks import benchmark_task

    return benchmark_task(
        cfg.benchmark, cfg.split, cfg.seeds, cfg.temperature, cfg.base_seed, cfg.max_steps, cfg.max_errors,
        cfg.max_tokens, cfg.limit, cfg.pass_k or None, cfg.benchmark_args or None,
    )  # fmt: skip


def env_base_url(model: str) -> str | None:
    """The base URL an inspect provider would read from the environment (openai-api/SERVICE/…
    reads SERVICE_BASE_URL; vllm/… reads VLLM_BASE_URL). Passing it explicitly makes it part of
    inspect's model cache key, so a changed URL is never served by a stale client."""
    parts = model.split("/")
    if parts[0] == "openai-api" and len(parts) > 2:
        return os.environ.get(f"{parts[1].upper().replace('-', '_')}_BASE_URL")
    if parts[0] == "vllm":
        return os.environ.get("VLLM_BASE_URL")
    return None


def expected_keys(cfg: EvalConfig) -> list[tuple[str, int]]:
    """Every (task_id, epoch) the run must produce a row for."""
    return [(tid, e) for tid in _task_ids(cfg) for e in range(1, cfg.seeds + 1)]


def start_models(cfg: EvalConfig) -> tuple[Any, dict[str, Any] | None]:
    """The agent's model (and the user's, as a role) built before any work, so a missing API key or
    an unreachable provider set-up fails at once. The models' logged arguments hold no secret."""
    from inspect_ai.model import get_model

    from harness.providers import GENERATION
    from harness.redact import is_secret, redact, redact_text, secret_values

    def start(flag: str, name: str, args: dict[str, Any]):
        try:
            model = get_model(name, base_url=env_base_url(name), **args)
        except Exception as e:  # inspect's PrerequisiteError, a provider's own set-up error, …
            why = redact_text(_plain(str(e)), secret_values(args))
            raise EvalConfigError(f"{flag} {name}: cannot start the model: {why}") from e
        # What inspect writes to its logs and hashes into the task's identity: no secret at all, so
        # a rotated key resumes the same run.
        model.model_args = redact({k: v for k, v in args.items() if not is_secret(k)})
        if hasattr(model.api, "generation"):  # inspect may hand back a cached model: what serves it now
            GENERATION[name] = model.api.generation()
        return model

    agent = start("--model", cfg.model, cfg.model_args)
    roles = None
    if cfg.user_model and cfg.bench().has_user:
        roles = {"user": start("--user-model", cfg.user_model, {})}
    return agent, roles


def _plain(text: str) -> str:
    """Inspect's error text without its rich markup."""
    import re

    return re.sub(r"\[/?(bold|blue|red|italic|yellow|green)\]", "", text).replace("ERROR: ", "").strip()


def run_eval(cfg: EvalConfig, out_dir: Path, display: str | None = None,
             extra_manifest: dict[str, Any] | None = None, force: bool = False) -> dict[str, Any]:  # fmt: skip
    """Run (or resume) the eval; write results and manifest; return the summary.

    Everything that can be checked is checked before any work: the config, the benchmark and
    its arguments, local model folders, the output folder, a previous run there, the models."""
    from inspect_ai import eval_set

    check_config(cfg)
    check_local_models(cfg)
    load_benchmark(cfg)
    check_writable(out_dir)
    check_resume(cfg, out_dir, force)
    agent_model, roles = start_models(cfg)
    log_dir = out_dir / "logs"
    set_aside = set_aside_unreadable_logs(log_dir)
    resumed = any(log_dir.glob("*.eval"))
    retried = retry_failed_samples(log_dir) if resumed else []
    extra = dict(extra_manifest or {})
    extra.update(resumed=resumed, retried=retried, **({"unreadable_logs": set_aside} if set_aside else {}))
    write_manifest(out_dir, cfg, {**extra, "status": "running"})
    ok, logs = eval_set(
        tasks=[build_task(cfg)],
        log_dir=str(log_dir),
        model=agent_model,
        model_roles=roles,
        max_retries=cfg.max_retries,
        timeout=cfg.timeout,
        max_samples=cfg.max_samples,
        display=display,
        retry_attempts=1,
        fail_on_error=False,
        log_dir_allow_dirty=True,
    )
    rows = results_from_logs(log_dir, cfg)
    write_results(out_dir, rows, cfg)
    have = {(r["task_id"], r["epoch"]) for r in rows}
    missing = [f"task {t} seed {cfg.base_seed + e - 1}" for t, e in expected_keys(cfg) if (t, e) not in have]
    status = "complete" if not missing else "incomplete"
    write_manifest(out_dir, cfg, {**extra, "status": status,
                                  "missing": missing, "rows": len(rows), "expected_rows": len(expected_keys(cfg)),
                                  "infra_errors": sum(bool(r["infra_error"]) for r in rows),
                                  "logs": [str(lg.location) for lg in logs]})  # fmt: skip
    from harness.summary import summarize

    summary = summarize(rows, cfg.pass_k or list(range(1, cfg.seeds + 1)), cfg.bench_class().summary_metrics)
    summary["missing"] = missing
    return summary


def set_aside_unreadable_logs(log_dir: Path) -> list[str]:
    """Rename each inspect log that cannot be read (cut short by a crash or a full disk) to
    NAME.eval.unreadable, with a warning, so the eval set runs its samples again."""
    from inspect_ai.log import read_eval_log

    moved = []
    for path in sorted(log_dir.glob("*.eval")):
        try:
            read_eval_log(str(path), header_only=True)
        except Exception as e:  # a zip without its directory, a header that is not JSON, …
            target = path.with_name(path.name + ".unreadable")
            os.replace(path, target)
            print(f"warning: {path} cannot be read ({type(e).__name__}: {e}); moved to {target.name}, "
                  "its samples run again", file=sys.stderr)  # fmt: skip
            moved.append(str(target))
    return moved


def retry_failed_samples(log_dir: Path) -> list[str]:
    """Mark every sample of the newest log (the one the eval set resumes from) that ended in an
    infra error (or errored inside inspect) as invalidated, so the eval set runs it again; return
    which ones. Older logs stay as they are: rewriting one would make it the newest."""
    from inspect_ai.log import (
        ProvenanceData,
        invalidate_samples,
        list_eval_logs,
        read_eval_log,
        write_eval_log,
    )

    retried: list[str] = []
    for info in sorted(list_eval_logs(str(log_dir)), key=lambda i: i.mtime or 0)[-1:]:
        log = _read_log(info, read_eval_log)
        if log is None or log.status not in ("success", "error"):
            continue  # a log whose writer was killed: the eval set recovers it and re-runs the rest
        failed = [s for s in log.samples or [] if s.invalidation is None and _failed(s)]
        if not failed:
            continue
        why = ProvenanceData(author="sgcd-bench eval", reason="infra_error: run again on resume")
        write_eval_log(invalidate_samples(log, [str(s.uuid) for s in failed], why), info.name)
        retried += [f"task {s.id} epoch {s.epoch}" for s in failed]
    return retried


def _read_log(info: Any, read: Any) -> Any:
    """An inspect log, or None (with a warning naming it) when it cannot be read: its rows then
    count as missing, and a re-run runs them again."""
    try:
        return read(info)
    except Exception as e:  # a log cut short by a crash or a full disk
        print(f"warning: cannot read the inspect log {info.name}: {type(e).__name__}: {e}", file=sys.stderr)
        return None


def _failed(sample: Any) -> bool:
    if sample.error is not None:
        return True
    score = next(iter((sample.scores or {}).values()), None)
    return score is None or not score.metadata or bool(score.metadata.get("infra_error"))


def results_from_logs(log_dir: Path, cfg: EvalConfig) -> list[dict[str, Any]]:
    """One row per task × seed from every sample in the run's inspect logs (the newest eval wins).
    A sample that errored inside inspect (no score) is an infra_error row with the error."""
    from inspect_ai.log import list_eval_logs, read_eval_log

    from harness.tasks import epoch_seed

    expected = set(expected_keys(cfg))
    logs = [lg for info in list_eval_logs(str(log_dir)) if (lg := _read_log(info, read_eval_log)) is not None]
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for log in sorted(logs, key=lambda lg: (lg.eval.created or "", lg.location or "")):
        if log.eval.model != cfg.model:
            continue
        for sample in log.samples or []:
            key = (str(sample.id), sample.epoch)
            if key not in expected or sample.invalidation is not None:
                continue
            score = next(iter((sample.scores or {}).values()), None)
            if score is not None and score.metadata and sample.error is None:
                rows[key] = tidy_row(score.metadata, cfg)
            elif key not in rows or rows[key]["infra_error"]:
                detail = sample.error.message if sample.error else "the sample ended without a score"
                meta = {"task_id": key[0], "epoch": key[1], "seed": epoch_seed(cfg.base_seed, key[1]),
                        "temperature": cfg.temperature, "reward": 0.0, "success": False,
                        "end_reason": "infra_error", "infra_error": True, "end_detail": detail,
                        **cfg.protocol().row_columns(), **generation_columns(cfg.model)}  # fmt: skip
                rows[key] = tidy_row(meta, cfg)
    return [rows[k] for k in sorted(rows, key=lambda k: (_num(k[0]), k[1]))]


def _num(task_id: str) -> tuple[int, str]:
    return (int(task_id), "") if task_id.isdigit() else (1 << 30, task_id)


def tidy_row(meta: dict[str, Any], cfg: EvalConfig) -> dict[str, Any]:
    row = {
        "model": cfg.model,
        "user_model": cfg.resolved_user_model,
        "benchmark": cfg.bench().name,
        "split": cfg.split,
        "task_id": str(meta["task_id"]),
        "scenario_id": meta.get("scenario_id", ""),
        "epoch": int(meta["epoch"]),
        "seed": meta["seed"],
        "temperature": meta["temperature"],
        "reward": float(meta["reward"]),
        "success": bool(meta["success"]),
        "end_reason": meta["end_reason"],
        "infra_error": bool(meta["infra_error"]),
    }
    for comp in cfg.bench_class().components or sorted(meta.get("components", {})):
        row[comp] = meta.get("components", {}).get(comp)
    for col in TAIL_COLUMNS:
        row[col] = meta.get(col)
    for col in PROTOCOL_COLUMNS + GENERATION_COLUMNS:  # what the episode ran under, as the task recorded it
        row[col] = meta.get(col)
    # the checks a failed episode did not pass, by name (AppWorld: its failed tests' requirements)
    failures = (meta.get("info") or {}).get("failures") or []
    row["failed_checks"] = " | ".join(str(f.get("requirement") or "unnamed test")[:120] for f in failures if isinstance(f, dict)) or None
    row["null_success"] = meta.get("null_success")
    row["write_required"] = meta.get("write_required")
    return row


def result_columns(cfg: EvalConfig) -> list[str]:
    return [*BASE_COLUMNS, *cfg.bench_class().components, *TAIL_COLUMNS, *PROTOCOL_COLUMNS,
            *GENERATION_COLUMNS, "failed_checks", "null_success", "write_required"]  # fmt: skip


def write_results(out_dir: Path, rows: list[dict[str, Any]], cfg: EvalConfig | None = None) -> None:
    """results.parquet and results.csv, with their columns even when no row is there."""
    import pandas as pd

    df = pd.DataFrame(rows) if rows or cfg is None else pd.DataFrame(columns=result_columns(cfg))
    for name, writer in (("results.parquet", df.to_parquet), ("results.csv", df.to_csv)):
        tmp = out_dir / f".{name}.tmp"
        writer(tmp, index=False)
        os.replace(tmp, out_dir / name)
