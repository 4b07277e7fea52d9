"""`sgcd-bench experiment CONFIG.toml`: train every method × training seed from one base on one
budget, evaluate every checkpoint and the base under one protocol, and write one report.

The experiment's directory is the run:
  base/               the optional shared warm start (its last checkpoint is the base)
  train/METHOD-sSEED/ each training run (sgcd/trainer.py layout)
  eval/NAME/          each evaluation run (harness/eval_run.py layout)
  report.md, report_plots/, manifest.json (config, pieces run / resumed / skipped)
Re-running the command skips finished pieces and resumes unfinished ones.

Config keys (see README, "Experiment configs"): name, benchmark, benchmark_args, base_model,
train_seeds, [warm_start] (TrainConfig keys, algo "sft" by default), [train] (TrainConfig keys
shared by every method: the budget), [eval] (split, seeds, temperature, limit, user_model,
max_steps, max_errors, max_tokens, base_seed, model_args), [[methods]] (name, algo, algo_config),
published (a JSON file of cited numbers, shown only in a labelled column).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

console = Console(stderr=True)


@dataclass
class Method:
    name: str
    algo: str
    algo_config: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExperimentConfig:
    name: str
    benchmark: str
    base_model: str
    methods: list[Method]
    train_seeds: list[int] = field(default_factory=lambda: [0])
    benchmark_args: dict[str, Any] = field(default_factory=dict)
    warm_start: dict[str, Any] | None = None
    train: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)
    published: str | None = None

    @classmethod
    def load(cls, path: Path) -> ExperimentConfig:
        raw = tomllib.loads(Path(path).read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"{path}: unknown experiment key(s): {', '.join(sorted(unknown))}")
        methods = [Method(**m) for m in raw.pop("methods", [])]
        if not methods:
            raise ValueError(f"{path}: list at least one [[methods]] entry")
        names = [m.name for m in methods]
        if len(set(names)) != len(names):
            raise ValueError(f"{path}: method names must be unique: {names}")
        return cls(methods=methods, **raw)


def _done_training(train_dir: Path, updates: int) -> bool:
    ckpts = [p for p in (train_dir / "train" / "checkpoints").glob("step-*") if (p / "trainer_state.json").is_file()]
    return any(int(p.name.split("-")[1]) >= updates for p in ckpts)


def _eval_complete(eval_dir: Path) -> bool:
    path = eval_dir / "manifest.json"
    return path.is_file() and json.loads(path.read_text()).get("status") == "complete"


class Experiment:
    def __init__(self, cfg: ExperimentConfig, out_dir: Path):
        self.cfg = cfg
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pieces: list[dict[str, Any]] = []

    def _record(self, kind: str, name: str, status: str, seconds: float, path: Path) -> None:
        self.pieces.append({"kind": kind, "name": name, "status": status, "seconds": round(seconds, 1),
                            "path": str(path.relative_to(self.dir))})  # fmt: skip
        console.print(f"[bold]{kind}[/] {name}: {status} ({seconds:.0f} s)")

    def _train(self, name: str, out: Path, **cfg_keys: Any) -> Path:
        from sgcd.trainer import TrainConfig, Trainer

        updates = cfg_keys["updates"]
        t0 = time.perf_counter()
        if _done_training(out, updates):
            status = "skipped (finished earlier)"
        else:
            started = (out / "train" / "metrics.jsonl").exists()
            trainer = Trainer(TrainConfig(**cfg_keys), out)
            trainer.run()
            status = "resumed" if started else "ran"
        ckpt = out / "train" / "checkpoints" / f"step-{updates}"
        self._record("train", name, status, time.perf_counter() - t0, out)
        return ckpt

    def _eval(self, name: str, model: str, method: str, train_seed: int | None) -> Path:
        from harness.eval_run import EvalConfig, run_eval

        e = self.cfg.eval
        out = self.dir / "eval" / name
        t0 = time.perf_counter()
        if _eval_complete(out):
            status = "skipped (finished earlier)"
        else:
            started = (out / "logs").exists()
            cfg = EvalConfig(
                benchmark=self.cfg.benchmark, split=e.get("split", "test"), model=model,
                user_model=e.get("user_model") or None, seeds=int(e.get("seeds", 1)),
                base_seed=int(e.get("base_seed", 0)), temperature=float(e.get("temperature", 0.0)),
                limit=e.get("limit"), max_steps=int(e.get("max_steps", 200)), max_errors=int(e.get("max_errors", 10)),
                max_tokens=e.get("max_tokens"), benchmark_args=dict(self.cfg.benchmark_args),
                model_args={k: str(v) for k, v in e.get("model_args", {}).items()},
            )  # fmt: skip
            run_eval(cfg, out, display="none", extra_manifest={"method": method, "train_seed": train_seed,
                                                               "experiment": self.cfg.name})  # fmt: skip
            status = "resumed" if started else "ran"
        self._record("eval", name, status, time.perf_counter() - t0, out)
        return out

    def _write_manifest(self, status: str) -> None:
        from harness.eval_run import git_commit, package_versions
        from harness.redact import redact

        manifest = {
            "kind": "experiment",
            "config": redact(dataclasses.asdict(self.cfg)),
            "pieces": self.pieces,
            "resumed_or_skipped": [p["name"] for p in self.pieces if p["status"] != "ran"],
            "status": status,
            "git_commit": git_commit(),
            "packages": package_versions(),
        }
        tmp = self.dir / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=2, default=str))
        os.replace(tmp, self.dir / "manifest.json")

    def run(self) -> Path:
        from harness.benchmarks import get_benchmark

        cfg = self.cfg
        if get_benchmark(cfg.benchmark, **cfg.benchmark_args).has_user and not cfg.eval.get("user_model"):
            raise ValueError(f"{cfg.benchmark} has a simulated user: pin one [eval] user_model for every run")
        base_model = cfg.base_model
        shared = {"benchmark": cfg.benchmark, "benchmark_args": dict(cfg.benchmark_args)}
        if cfg.warm_start:
            ws = {"algo": "sft", **cfg.warm_start}
            ckpt = self._train("warm start", self.dir / "base", model=cfg.base_model, **shared, **ws)
            base_model = f"local/{ckpt}"
        self._write_manifest("training")
        train_logs = []
        trained: list[tuple[Method, int, Path]] = []
        for seed in cfg.train_seeds:
            for m in cfg.methods:
                out = self.dir / "train" / f"{m.name}-s{seed}"
                keys = {**cfg.train, **shared, "algo": m.algo, "seed": seed, "model": base_model,
                        "algo_config": dict(m.algo_config)}  # fmt: skip
                ckpt = self._train(f"{m.name} seed {seed}", out, **keys)
                trained.append((m, seed, ckpt))
                train_logs.append(out / "train" / "metrics.jsonl")
                self._write_manifest("training")
        evals = []
        for m, seed, ckpt in trained:
            evals.append(self._eval(f"{m.name}-s{seed}", f"local/{ckpt}", m.name, seed))
            self._write_manifest("evaluating")
        evals.append(self._eval("base", base_model, "base", None))
        report = self._report(evals, train_logs)
        self._write_manifest("complete")
        return report

    def _report(self, evals: list[Path], train_logs: list[Path]) -> Path:
        from reports.build import Options, build_report

        out = self.dir / "report.md"
        t0 = time.perf_counter()
        published = Path(self.cfg.published) if self.cfg.published else None
        build_report(evals, out, Options(), train_logs=train_logs, published=published)  # + credit audit
        out.write_text(self._header() + out.read_text())
        self._record("report", "report.md", "ran", time.perf_counter() - t0, out)
        return out

    def _credit_used(self) -> str:
        """Each SGCD method's provider as its credit files recorded it, and how many groups got a
        parsed reference, summed over training seeds (sgcd/audit.py reads the files)."""
        from sgcd.audit import summarize_audit

        parts = []
        for m in self.cfg.methods:
            if m.algo != "sgcd":
                continue
            audits = [summarize_audit(self.dir / "train" / f"{m.name}-s{seed}" / "train") for seed in self.cfg.train_seeds]
            audits = [a for a in audits if a is not None]
            groups, parsed = sum(a["groups"] for a in audits), sum(a["parsed"] for a in audits)
            recorded = sorted({a["provider"] for a in audits if a["provider"]})
            provider = ", ".join(recorded) or m.algo_config.get("provider", "local/smollm2")
            fallbacks = 0 if provider == "zero" else groups - parsed  # `zero` gives no reference by design
            parts.append(f"{m.name}: {provider} — a parsed reference for {parsed} of {groups} groups, "
                         f"{fallbacks} fell back to zero credit")  # fmt: skip
        return "; ".join(parts) if parts else "none"

    def _header(self) -> str:
        from harness.models import describe_model
        from harness.redact import redact

        cfg = self.cfg
        budget = {k: cfg.train[k] for k in ("updates", "groups_per_update", "group_size", "max_groups_sampled",
                                             "dynamic_sampling") if k in cfg.train}  # fmt: skip
        lines = [
            f"# Experiment `{cfg.name}`",
            "",
            f"- base model: {describe_model(cfg.base_model)}"
            + (f", after a supervised warm start ({cfg.warm_start.get('updates')} updates of scripted solutions)" if cfg.warm_start else ""),
            f"- benchmark: {cfg.benchmark} {cfg.benchmark_args or ''}; eval: {json.dumps(redact(cfg.eval))}",
            f"- methods: {', '.join(f'{m.name} ({m.algo})' for m in cfg.methods)}; training seeds {cfg.train_seeds}",
            f"- budget per run (same for every method): {json.dumps(budget)}",
            f"- credit providers actually used: {self._credit_used()}",
            "- every number below is computed in this run from its own results tables",
            "",
        ]
        return "\n".join(lines) + "\n"
