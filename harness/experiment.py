"""`sgcd-bench experiment CONFIG.toml`: train every method × training seed from one base on one
budget, evaluate every checkpoint and the base under one protocol, and write one report.

The experiment's directory is the run:
  base/               the optional shared warm start (its last checkpoint is the base)
  train/METHOD-sSEED/ each training run (sgcd/trainer.py layout)
  eval/NAME/          each evaluation run (harness/eval_run.py layout)
  pieces/KIND-NAME.json  each piece's config and its sha256 (with the hash of the piece it starts from)
  report.md, report_plots/, manifest.json (config, pieces run / resumed / skipped)
Every table is validated before any piece runs. Re-running the command skips finished pieces and
resumes unfinished ones whose recorded hash matches; a piece whose config changed is refused
(naming it and what changed), or redone with `force` (with every piece after it).

Config keys (see README, "Experiment configs"): name, benchmark, benchmark_args, base_model,
train_seeds, [warm_start] (TrainConfig keys, algo "sft" by default), [train] (TrainConfig keys
shared by every method: the budget), [eval] (split, seeds, temperature, limit, user_model,
max_steps, max_errors, max_tokens, base_seed, model_args), [[methods]] (name, algo, algo_config),
published (a JSON file of cited numbers, shown only in a labelled column).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from harness.configs import ConfigError, at_least, check_config, from_table, require

console = Console(stderr=True)

# Keys an experiment sets itself: a [train] or [warm_start] table may not set them.
SET_BY_EXPERIMENT = {"algo": "each [[methods]] entry's algo", "algo_config": "each [[methods]] entry's algo_config",
                     "seed": "train_seeds", "model": "base_model", "benchmark": "the top-level benchmark",
                     "benchmark_args": "the top-level benchmark_args"}  # fmt: skip


class PieceChanged(ValueError):
    """A finished or started piece whose config is not the one it ran with; the message names it."""


@dataclass
class Method:
    name: str
    algo: str
    algo_config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_config(self)

    def validate(self) -> None:
        require(bool(self.name) and "/" not in self.name and not self.name.startswith("."), "name",
                "a non-empty folder name (no '/')", self.name)  # fmt: skip


@dataclass
class EvalTable:
    """An experiment's [eval] table: one protocol for every checkpoint and the base."""

    split: str = "test"
    seeds: int = 1
    base_seed: int = 0
    temperature: float = 0.0
    limit: int | None = None
    user_model: str | None = None
    max_steps: int | None = None  # None: the benchmark's protocol (harness.benchmarks)
    max_errors: int | None = None
    max_tokens: int | None = None
    model_args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_config(self)

    def validate(self) -> None:
        at_least("seeds", self.seeds, 1)
        at_least("base_seed", self.base_seed, 0)
        at_least("temperature", self.temperature, 0)
        at_least("limit", self.limit, 1, allow_none=True)
        for key in ("max_steps", "max_errors"):  # omitted: the benchmark's protocol
            if getattr(self, key) is not None:
                at_least(key, getattr(self, key), 1)
        at_least("max_tokens", self.max_tokens, 1, allow_none=True)


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
    # The accelerate config the training pieces are sized for (`experiment --dry-run` reads it;
    # run them under `accelerate launch --config_file` it). Not read by a plain run.
    accelerate_config: str | None = None

    def __post_init__(self) -> None:
        check_config(self)

    def validate(self) -> None:
        """Every piece's config, before any piece runs or any model loads: the warm start, each
        method's training (its [train] budget and its algorithm's own keys) and the eval protocol."""
        require(bool(self.name) and "/" not in self.name and not self.name.startswith("."), "name",
                "a non-empty folder name (no '/')", self.name)  # fmt: skip
        require(bool(self.methods), "methods", "at least one [[methods]] entry", self.methods)
        names = [m.name for m in self.methods]
        require(len(set(names)) == len(names), "methods", "entries with unique names", names)
        require(bool(self.train_seeds) and len(set(self.train_seeds)) == len(self.train_seeds), "train_seeds",
                "a non-empty list of distinct integers", self.train_seeds)  # fmt: skip
        for table, keys in (("train", self.train), ("warm_start", self.warm_start or {})):
            for key in keys:
                if key in SET_BY_EXPERIMENT and not (table == "warm_start" and key in ("algo", "algo_config", "seed")):
                    raise ConfigError(key, f"set by the experiment ({SET_BY_EXPERIMENT[key]}); remove it here", table)
        if self.warm_start:  # an empty [warm_start] table: no warm start
            self.warm_start_config(self.base_model)
        from_table(self._train_class(), {**self.train, **self._shared()}, "train")
        for m in self.methods:
            self.train_config(m, self.train_seeds[0], self.base_model)
        from_table(EvalTable, self.eval, "eval")

    @staticmethod
    def _train_class() -> type:
        from sgcd.trainer import TrainConfig

        return TrainConfig

    def _shared(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "benchmark_args": dict(self.benchmark_args)}

    def warm_start_config(self, model: str) -> Any:
        return from_table(self._train_class(), {"algo": "sft", **(self.warm_start or {}), "model": model,
                                                **self._shared()}, "warm_start")  # fmt: skip

    def train_config(self, m: Method, seed: int, model: str) -> Any:
        keys = {**self.train, **self._shared(), "algo": m.algo, "seed": seed, "model": model,
                "algo_config": dict(m.algo_config)}  # fmt: skip
        return from_table(self._train_class(), keys, f"methods.{m.name}")

    def eval_table(self) -> EvalTable:
        return from_table(EvalTable, self.eval, "eval")

    @classmethod
    def load(cls, path: Path) -> ExperimentConfig:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(str(path), f"not valid TOML: {e}") from None
        try:
            methods = raw.pop("methods", [])
            if not isinstance(methods, list):
                raise ConfigError("methods", "write each method as a [[methods]] table")
            raw["methods"] = [from_table(Method, m, f"methods[{i}]") for i, m in enumerate(methods)]
            return from_table(cls, raw)
        except ConfigError as e:
            raise ConfigError(e.key, f"{e.detail} (in {path})", e.table) from None


def _done_training(train_dir: Path, updates: int) -> bool:
    ckpts = [p for p in (train_dir / "train" / "checkpoints").glob("step-*") if (p / "trainer_state.json").is_file()]
    return any(int(p.name.split("-")[1]) >= updates for p in ckpts)


def _eval_complete(eval_dir: Path) -> bool:
    path = eval_dir / "manifest.json"
    return path.is_file() and json.loads(path.read_text()).get("status") == "complete"


@dataclass
class Piece:
    """One unit of an experiment: a training run or an eval run, with the config it runs with.
    `after` is the hash of the piece it starts from (the base's, a training run's), so a changed
    warm start changes every piece after it."""

    kind: str  # "train" | "eval"
    name: str
    out: Path
    config: Any  # TrainConfig | EvalConfig
    after: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    hash: str = ""
    record_path: Path = Path()  # EXPERIMENT/pieces/KIND-FOLDER.json: the hash and config it ran with


def _recordable(config: Any) -> dict[str, Any]:
    """A piece's config as recorded and hashed: secrets redacted, so a new key reuses the piece and
    none is written to pieces/*.json."""
    from harness.redact import redact

    return redact(dataclasses.asdict(config))


class Experiment:
    def __init__(self, cfg: ExperimentConfig, out_dir: Path, force: bool = False, processes: int = 1):
        """processes > 1: each training piece is its own launch of that many local processes
        (sgcd/launch.py); evaluations run here, alone. Under `accelerate launch` instead, every
        process trains each piece together and the launch ends there: the same command run
        outside the launch skips the finished training and evaluates and reports."""
        from sgcd.distributed import Dist, launched

        self.cfg = cfg
        self.dir = Path(out_dir).resolve()
        self.force = force
        self.processes = processes
        self.dist = Dist.start() if launched() else Dist()
        self.pieces: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ the plan

    def _hash(self, piece: Piece) -> str:
        """sha256 of the piece's whole config and what it starts from; the experiment's own folder
        is written as $EXPERIMENT so a moved experiment keeps its hashes."""
        text = json.dumps({"kind": piece.kind, "config": _recordable(piece.config), "after": piece.after},
                          sort_keys=True, default=str).replace(str(self.dir), "$EXPERIMENT")  # fmt: skip
        return hashlib.sha256(text.encode()).hexdigest()

    def plan(self) -> tuple[Piece | None, list[Piece], list[Piece]]:
        """Every piece with its config and hash: (warm start or None, training runs, eval runs).
        Builds configs only: no model loads, nothing runs."""
        from harness.eval_run import EvalConfig
        from harness.eval_run import check_config as check_eval

        cfg = self.cfg
        base_model, base_hash, warm = cfg.base_model, None, None
        if cfg.warm_start:
            ws_cfg = cfg.warm_start_config(cfg.base_model)
            warm = self._piece(Piece("train", "warm start", self.dir / "base", ws_cfg))
            base_model = f"local/{warm.out / 'train' / 'checkpoints' / f'step-{ws_cfg.updates}'}"
            base_hash = warm.hash
        trains = []
        for seed in cfg.train_seeds:
            for m in cfg.methods:
                tc = cfg.train_config(m, seed, base_model)
                trains.append(self._piece(Piece("train", f"{m.name} seed {seed}", self.dir / "train" / f"{m.name}-s{seed}",
                                                tc, base_hash, {"method": m.name, "train_seed": seed})))  # fmt: skip
        e = cfg.eval_table()
        evals = []
        sources = [(f"{p.extra['method']}-s{p.extra['train_seed']}", p) for p in trains] + [("base", warm)]
        for name, src in sources:
            model = f"local/{src.out / 'train' / 'checkpoints' / f'step-{src.config.updates}'}" if src else base_model
            ec = EvalConfig(
                benchmark=cfg.benchmark, split=e.split, model=model,
                user_model=e.user_model or None, seeds=e.seeds, base_seed=e.base_seed, temperature=e.temperature,
                limit=e.limit, max_steps=e.max_steps, max_errors=e.max_errors, max_tokens=e.max_tokens,
                benchmark_args=dict(cfg.benchmark_args), model_args={k: str(v) for k, v in e.model_args.items()},
            )  # fmt: skip
            try:
                check_eval(ec)
            except ValueError as err:
                raise ConfigError("eval", str(err).replace("--", "")) from None
            extra = {"method": "base", "train_seed": None} if name == "base" else \
                {"method": src.extra["method"], "train_seed": src.extra["train_seed"]}  # fmt: skip
            evals.append(self._piece(Piece("eval", name, self.dir / "eval" / name, ec, src.hash if src else None,
                                           {**extra, "experiment": cfg.name})))  # fmt: skip
        return warm, trains, evals

    def _piece(self, piece: Piece) -> Piece:
        piece.hash = self._hash(piece)
        piece.record_path = self.dir / "pieces" / f"{piece.kind}-{piece.out.name}.json"
        return piece

    def _recorded(self, piece: Piece) -> dict[str, Any] | None:
        if not piece.record_path.is_file():
            return None
        try:
            rec = json.loads(piece.record_path.read_text())
        except (OSError, ValueError):
            return {"config_hash": None, "config": {}}
        return rec if isinstance(rec, dict) else {"config_hash": None, "config": {}}

    def _started(self, piece: Piece) -> bool:
        return piece.out.is_dir() and any(piece.out.iterdir())

    def _changes(self, piece: Piece, rec: dict[str, Any] | None) -> str | None:
        """None when the piece may be reused; else what changed since it ran (or started)."""
        if rec is None:
            return "it has outputs but no recorded config hash" if self._started(piece) else None
        if rec.get("config_hash") == piece.hash:
            return None
        old, new = rec.get("config") or {}, _recordable(piece.config)
        diffs = [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        diffs = [d.replace(str(self.dir), "$EXPERIMENT") for d in diffs]
        if not diffs and rec.get("after") != piece.after:
            diffs = ["the piece it starts from changed"]
        return ", ".join(diffs[:6]) + (f" (+{len(diffs) - 6} more)" if len(diffs) > 6 else "") or "its config hash"

    def check_pieces(self, pieces: list[Piece]) -> list[Piece]:
        """Refuse (or, with force, clear) every piece whose config is not the one it ran with."""
        changed = [(p, c) for p in pieces if (c := self._changes(p, self._recorded(p)))]
        if changed and not self.force:
            lines = "\n".join(f"  - {p.name} ({p.out.relative_to(self.dir)}): {c}" for p, c in changed)
            raise PieceChanged(
                f"{len(changed)} piece(s) of {self.dir} ran with a different config:\n{lines}\n"
                "Restore the config, use a new --out folder, or re-run with --force to redo these pieces "
                "(and every piece after them)."
            )
        for p, c in changed if self.dist.is_main else []:
            console.print(f"[yellow]--force[/]: redoing {p.name} ({c})")
            shutil.rmtree(p.out, ignore_errors=True)
            p.record_path.unlink(missing_ok=True)
        self.dist.barrier()
        return [p for p, _ in changed]

    def _write_record(self, piece: Piece) -> None:
        if not self.dist.is_main:
            return
        piece.record_path.parent.mkdir(parents=True, exist_ok=True)
        rec = {"kind": piece.kind, "name": piece.name, "path": str(piece.out.relative_to(self.dir)),
               "config_hash": piece.hash, "after": piece.after, "config": _recordable(piece.config)}  # fmt: skip
        tmp = piece.record_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(rec, indent=2, default=str))
        os.replace(tmp, piece.record_path)

    # ------------------------------------------------------------------ running

    def _record(self, piece: Piece, status: str, seconds: float) -> None:
        if not self.dist.is_main:
            return
        self.pieces.append({"kind": piece.kind, "name": piece.name, "status": status, "seconds": round(seconds, 1),
                            "path": str(piece.out.relative_to(self.dir)), "config_hash": piece.hash})  # fmt: skip
        console.print(f"[bold]{piece.kind}[/] {piece.name}: {status} ({seconds:.0f} s)")

    def _train(self, piece: Piece, redone: bool) -> Path:
        from sgcd.trainer import Trainer

        updates = piece.config.updates
        t0 = time.perf_counter()
        self._write_record(piece)
        if _done_training(piece.out, updates):
            status = "skipped (finished earlier)"
        else:
            started = (piece.out / "train" / "metrics.jsonl").exists()
            if self.processes > 1:
                from sgcd.launch import run_processes, train_worker

                run_processes(train_worker, (piece.config, piece.out), self.processes)
            else:
                Trainer(piece.config, piece.out).run(progress=self.dist.is_main)
            status = "re-ran (config changed, --force)" if redone else "resumed" if started else "ran"
        self._record(piece, status, time.perf_counter() - t0)
        return piece.out / "train" / "checkpoints" / f"step-{updates}"

    def _eval(self, piece: Piece, redone: bool) -> Path:
        from harness.eval_run import run_eval

        t0 = time.perf_counter()
        self._write_record(piece)
        if _eval_complete(piece.out):
            status = "skipped (finished earlier)"
        else:
            started = (piece.out / "logs").exists()
            summary = run_eval(piece.config, piece.out, display="none", extra_manifest=dict(piece.extra))
            if summary.get("missing"):
                # The rows that are there stay on disk; a re-run of the experiment runs only these.
                raise ValueError(f"eval {piece.name} ({piece.out}) is missing {len(summary['missing'])} row(s): "
                                 f"{', '.join(summary['missing'][:5])}; re-run the experiment to retry them")  # fmt: skip
            status = "re-ran (config changed, --force)" if redone else "resumed" if started else "ran"
        self._record(piece, status, time.perf_counter() - t0)
        return piece.out

    def _write_manifest(self, status: str) -> None:
        if not self.dist.is_main:
            return
        from harness.eval_run import git_commit, package_versions
        from harness.redact import redact

        manifest = {
            "kind": "experiment",
            "config": redact(dataclasses.asdict(self.cfg)),
            "pieces": self.pieces,
            "resumed_or_skipped": [p["name"] for p in self.pieces if p["status"] not in ("ran", "re-ran (config changed, --force)")],
            "status": status,
            "git_commit": git_commit(),
            "packages": package_versions(),
        }
        tmp = self.dir / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=2, default=str))
        os.replace(tmp, self.dir / "manifest.json")

    def run(self) -> Path | None:
        """The report's path (None on a launch's other processes, which stop after training)."""
        from harness.benchmarks import get_benchmark

        cfg = self.cfg
        warm, trains, evals = self.plan()  # every piece's config checked before any work
        if get_benchmark(cfg.benchmark, **cfg.benchmark_args).has_user and not cfg.eval.get("user_model"):
            raise ConfigError("user_model", f"{cfg.benchmark} has a simulated user: pin one for every run", "eval")
        all_pieces = ([warm] if warm else []) + trains + evals
        redone = {id(p) for p in self.check_pieces(all_pieces)}
        self.dir.mkdir(parents=True, exist_ok=True)
        if warm is not None:
            self._train(warm, id(warm) in redone)
        self._write_manifest("training")
        train_logs = []
        for piece in trains:
            self._train(piece, id(piece) in redone)
            train_logs.append(piece.out / "train" / "metrics.jsonl")
            self._write_manifest("training")
        if self.dist.world > 1:
            # Never evaluate inside a multi-process launch: the other processes would have to wait,
            # and a vLLM engine started now would need every process of the launch's group.
            if self.dist.is_main:
                self._write_manifest("trained (evaluations pending)")
                console.print("[bold]training done[/] in this launch; evaluate and report with the same command "
                              "outside the launch (finished training pieces are skipped): "
                              f"sgcd-bench experiment CONFIG --out {self.dir}")  # fmt: skip
            return None
        eval_dirs = []
        for piece in evals:
            eval_dirs.append(self._eval(piece, id(piece) in redone))
            self._write_manifest("evaluating")
        self._evals = evals
        self._trains = ([warm] if warm else []) + trains
        report = self._report(eval_dirs, train_logs)
        self._write_manifest("complete")
        return report

    def _report(self, evals: list[Path], train_logs: list[Path]) -> Path:
        from reports.build import Options, build_report

        out = self.dir / "report.md"
        t0 = time.perf_counter()
        published = Path(self.cfg.published) if self.cfg.published else None
        build_report(evals, out, Options(), train_logs=train_logs, published=published)  # + credit audit
        out.write_text(self._header() + out.read_text())
        seconds = time.perf_counter() - t0
        self.pieces.append({"kind": "report", "name": "report.md", "status": "ran", "seconds": round(seconds, 1),
                            "path": "report.md"})  # fmt: skip
        console.print(f"[bold]report[/] report.md: ran ({seconds:.0f} s)")
        return out

    def _credit_used(self) -> str:
        """Each SGCD method's provider as its credit files recorded it, and how many groups got a
        parsed reference or fell back, summed over training seeds (reports/credit_audit.py reads them)."""
        from reports.credit_audit import summarize_audit

        parts = []
        for m in self.cfg.methods:
            if m.algo != "sgcd":
                continue
            audits = [summarize_audit(self.dir / "train" / f"{m.name}-s{seed}" / "train") for seed in self.cfg.train_seeds]
            audits = [a for a in audits if a is not None]
            groups, parsed, fallbacks = (sum(a[k] for a in audits) for k in ("groups", "parsed", "fallbacks"))
            recorded = sorted({a["provider"] for a in audits if a["provider"]})
            provider = ", ".join(recorded) or m.algo_config.get("provider", "local/smollm2")
            parts.append(f"{m.name}: {provider} — a parsed reference for {parsed} of {groups} groups, "
                         f"{fallbacks} fell back to zero credit")  # fmt: skip
        return "; ".join(parts) if parts else "none"

    def _header(self) -> str:
        """What actually ran: read back from each piece's record (its config and hash), not from
        the config file."""
        from harness.models import describe_model
        from harness.redact import redact

        cfg = self.cfg
        ran = [json.loads(p.record_path.read_text()) for p in self._trains + self._evals]
        warm = next((r for r in ran if r["kind"] == "train" and r["name"] == "warm start"), None)
        trains = [r for r in ran if r["kind"] == "train" and r is not warm]
        evals = [r for r in ran if r["kind"] == "eval"]
        budget = {k: _same_or_each([r["config"][k] for r in trains]) for k in BUDGET_KEYS}
        protocol = {k: _same_or_each([_protocol_value(r["config"], k) for r in evals]) for k in PROTOCOL_KEYS}
        algos = {}
        for r in trains:
            c = r["config"]
            algos.setdefault(r["name"].rsplit(" seed ", 1)[0], (c["algo"], c["algo_config"]))
        methods = ", ".join(f"{n} ({a}{' ' + json.dumps(redact(ac)) if ac else ''})" for n, (a, ac) in algos.items())
        lines = [
            f"# Experiment `{cfg.name}`",
            "",
            f"- base model: {describe_model(cfg.base_model)}"
            + (f", after a supervised warm start ({warm['config']['updates']} updates of scripted solutions, "
               f"lr {warm['config']['lr']})" if warm else ""),
            f"- benchmark: {cfg.benchmark} {cfg.benchmark_args or ''}; eval: {json.dumps(redact(protocol))}",
            f"- methods: {methods}; training seeds {cfg.train_seeds}",
            f"- budget per run (same for every method): {json.dumps(budget)}",
            f"- credit providers actually used: {self._credit_used()}",
            "- pieces (status, sha256 of the config each ran with): "
            + "; ".join(f"{p['name']} {p['status']} {p['config_hash'][:12]}" for p in self.pieces if "config_hash" in p),
            "- every number below is computed in this run from its own results tables",
            "",
        ]  # fmt: skip
        return "\n".join(lines) + "\n"


BUDGET_KEYS = ("updates", "groups_per_update", "group_size", "max_groups_sampled", "dynamic_sampling", "lr",
               "temperature", "max_new_tokens", "max_steps", "ppo_epochs")  # fmt: skip
PROTOCOL_KEYS = ("split", "seeds", "base_seed", "temperature", "limit", "user_model", "max_steps", "max_errors",
                 "max_tokens")  # fmt: skip


def _protocol_value(config: dict[str, Any], key: str) -> Any:
    """An eval piece's setting; a limit it left to the benchmark is the benchmark's protocol value."""
    from harness.benchmarks import LIMIT_KEYS, resolve_protocol

    if key in LIMIT_KEYS:
        limits = {k: config.get(k) for k in LIMIT_KEYS}
        return getattr(resolve_protocol(config["benchmark"], **limits).protocol, key)
    return config[key]


def _same_or_each(values: list[Any]) -> Any:
    """The one value every piece ran with, else each distinct value (a mismatch shows in the header)."""
    distinct = list(dict.fromkeys(json.dumps(v, default=str) for v in values))
    return json.loads(distinct[0]) if len(distinct) == 1 else [json.loads(v) for v in distinct]
