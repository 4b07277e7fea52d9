"""`sgcd-bench eval`: run a benchmark task for one model over N seeds and write a tidy run directory.

runs/NAME/
  logs/            inspect logs (open with `inspect view --log-dir runs/NAME/logs`)
  results.parquet  one row per task × seed (also results.csv)
  manifest.json    config, seeds, user model, step caps, git commit, package versions, data hashes

The run is an inspect eval set: re-running the same command after an interruption reuses every
finished sample from the logs and runs only the rest.
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

COMPONENT_COLUMNS = {"tau3-airline": ["db_match", "communicate_ok"], "appworld": ["tests_passed"],
                     "toy": ["lookups_ok", "submitted", "answer_ok"]}  # fmt: skip
BASE_COLUMNS = [
    "model", "user_model", "benchmark", "split", "task_id", "scenario_id", "epoch", "seed", "temperature",
    "reward", "success", "end_reason", "infra_error",
]  # fmt: skip
TAIL_COLUMNS = ["turns", "tool_calls", "tool_errors", "input_tokens", "output_tokens", "seconds",
                "user_input_tokens", "user_output_tokens"]  # fmt: skip


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
    max_steps: int = 200
    max_errors: int = 10
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

    @property
    def resolved_user_model(self) -> str:
        if not self.bench().has_user:
            return "none"  # no simulated user in this benchmark
        return self.user_model or self.model


class EvalConfigError(ValueError):
    """A run configuration that cannot give a meaningful result; the message says why."""


def check_config(cfg: EvalConfig) -> None:
    if cfg.seeds < 1:
        raise EvalConfigError("--seeds must be at least 1")
    if cfg.seeds > 1 and cfg.temperature <= 0 and cfg.model.startswith("local/"):
        raise EvalConfigError(
            f"{cfg.seeds} seeds at temperature 0 with a local model would repeat the same episode "
            f"{cfg.seeds} times (greedy decoding is deterministic). Set --temperature above 0, or use --seeds 1."
        )
    bad = [k for k in cfg.pass_k if not 1 <= k <= cfg.seeds]
    if bad:
        raise EvalConfigError(f"pass^k needs 1 <= k <= seeds; got k={bad} with {cfg.seeds} seed(s)")


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


def write_manifest(out_dir: Path, cfg: EvalConfig, extra: dict[str, Any]) -> dict[str, Any]:
    from harness.models import describe_model
    from harness.provenance import provenance

    bench = cfg.bench()
    bench_manifest = bench.manifest()
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
        "max_steps": cfg.max_steps,
        "max_errors": cfg.max_errors,
        "max_tokens": cfg.max_tokens,
        "task_ids": _task_ids(cfg),
        "config": asdict(cfg),
        "git_commit": git_commit(),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        **bench_manifest,
        "provenance": provenance(bench_manifest, cfg.model, cfg.resolved_user_model, cfg.temperature, cfg.model_args,
                                 git_commit(), package_versions(("sgcd-bench",))["sgcd-bench"]),  # fmt: skip
        **extra,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, default=str))
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


def run_eval(cfg: EvalConfig, out_dir: Path, display: str | None = None,
             extra_manifest: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Run (or resume) the eval; write results and manifest; return the summary."""
    from inspect_ai import eval_set

    check_config(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    log_dir = out_dir / "logs"
    from inspect_ai.model import get_model

    roles = None
    if cfg.user_model and cfg.bench().has_user:
        roles = {"user": get_model(cfg.user_model, base_url=env_base_url(cfg.user_model))}
    resumed = any(log_dir.glob("*.eval"))
    extra = dict(extra_manifest or {})
    write_manifest(out_dir, cfg, {**extra, "resumed": resumed, "status": "running"})
    ok, logs = eval_set(
        tasks=[build_task(cfg)],
        log_dir=str(log_dir),
        model=cfg.model,
        model_base_url=env_base_url(cfg.model),
        model_args=cfg.model_args,
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
    write_results(out_dir, rows)
    write_manifest(out_dir, cfg, {**extra, "resumed": resumed, "status": "complete" if ok else "incomplete",
                                  "logs": [str(lg.location) for lg in logs]})  # fmt: skip
    from harness.summary import summarize

    return summarize(rows, cfg.pass_k or list(range(1, cfg.seeds + 1)))


def results_from_logs(log_dir: Path, cfg: EvalConfig) -> list[dict[str, Any]]:
    """One row per task × seed from every sample in the run's inspect logs (latest wins)."""
    from inspect_ai.log import list_eval_logs, read_eval_log

    rows: dict[tuple[str, int], dict[str, Any]] = {}
    infos = sorted(list_eval_logs(str(log_dir)), key=lambda i: i.mtime or 0)
    for info in infos:
        log = read_eval_log(info)
        for sample in log.samples or []:
            score = next(iter((sample.scores or {}).values()), None)
            if score is None or not score.metadata:
                continue  # a sample that errored before scoring: inspect retries it
            rows[(str(sample.id), sample.epoch)] = tidy_row(score.metadata, cfg)
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
    for comp in COMPONENT_COLUMNS.get(cfg.benchmark, sorted(meta.get("components", {}))):
        row[comp] = meta.get("components", {}).get(comp)
    for col in TAIL_COLUMNS:
        row[col] = meta.get(col)
    # the checks a failed episode did not pass, by name (AppWorld: its failed tests' requirements)
    failures = (meta.get("info") or {}).get("failures") or []
    row["failed_checks"] = " | ".join(str(f.get("requirement") or "unnamed test")[:120] for f in failures if isinstance(f, dict)) or None
    row["null_success"] = meta.get("null_success")
    row["write_required"] = meta.get("write_required")
    return row


def write_results(out_dir: Path, rows: list[dict[str, Any]]) -> None:
    import pandas as pd

    df = pd.DataFrame(rows)
    for name, writer in (("results.parquet", df.to_parquet), ("results.csv", df.to_csv)):
        tmp = out_dir / f".{name}.tmp"
        writer(tmp, index=False)
        os.replace(tmp, out_dir / name)
