"""The trainer loop shared by every algorithm: rollout → batch → update → checkpoint, resumable.

The budget of a run is `updates` × `groups_per_update` kept sibling groups of `group_size`
(dynamic sampling tries up to `max_groups_sampled` groups per update; an algorithm may size its
update by another key, its `budget_key`). The loop calls only the algorithm's hooks
(sgcd/algorithms.py), never an algorithm by name: the algorithm says where an update's rows come
from (`collect`) and returns its loss as terms the trainer weights once (`weigh`).

runs/NAME/train/
  config.toml  manifest.json  metrics.jsonl  tensorboard/ (if installed)
  checkpoints/step-N/   Hugging Face folder + optimizer.pt + trainer_state.json, written atomically
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.configs import ConfigError, at_least, check_config, from_table, one_of, require
from harness.jsonl import JsonlError, read_jsonl
from harness.loop import LoopConfig
from harness.sampler import BACKENDS, SamplerError, SamplerOptions
from sgcd.advantages import ESTIMATORS, compute_advantages
from sgcd.algorithms import AlgoContext, get_algorithm, weigh
from sgcd.distributed import Dist, full_state, idle_forward
from sgcd.lora import LoraSettings, is_lora, merged_state, save_adapter, wrap
from sgcd.losses import PGConfig, aggregate
from sgcd.rollout import Collected, Sampling, collect_groups
from sgcd.tokens import TokenBatch, collate, logprobs_no_grad, segments_from_turns, token_logprobs


@dataclass
class TrainConfig:
    """Every hyperparameter of a run. A TOML file overrides any key; `[algo]` holds the
    algorithm's own keys. Budget = updates × groups_per_update groups of group_size siblings."""

    algo: str = "grpo"
    benchmark: str = "toy"
    benchmark_args: dict[str, Any] = field(default_factory=dict)
    model: str = "local/smollm2"
    split: str = "train"
    seed: int = 0
    # budget
    updates: int = 20
    groups_per_update: int = 4
    group_size: int = 4
    max_groups_sampled: int = 16
    dynamic_sampling: bool = True
    # rollouts
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    max_steps: int = 12
    max_errors: int = 3
    user_model: str | None = None
    backend: str = "auto"  # the rollout sampler: auto (vLLM where it serves the model) | vllm | hf
    # the sampler's other options (harness/sampler.py SamplerOptions): dtype, kv_cache_gib,
    # gpu_memory_utilization, tensor_parallel_size, max_context
    sampler_args: dict[str, Any] = field(default_factory=dict)
    # LoRA (sgcd/lora.py): {} trains every weight; { r, alpha, dropout, target_modules } a peft
    # adapter (checkpoints merged, the adapter beside them)
    lora: dict[str, Any] = field(default_factory=dict)
    # optimisation
    lr: float = 1e-5
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ppo_epochs: int = 1
    micro_batch_rows: int = 4
    gradient_checkpointing: bool = False  # recompute each layer in the backward pass (long rows)
    advantage: str = "grpo"
    clip_low: float = 0.2
    clip_high: float = 0.28
    loss_agg: str = "token-mean"
    kl_coef: float = 0.0
    # supervised warm start (algo = sft): scripted solutions per update
    sft_examples_per_update: int = 16
    # bookkeeping
    checkpoint_every: int = 5
    keep_checkpoints: int = 2
    threads: int = 2
    algo_config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_config(self)

    def validate(self) -> None:
        """Ranges and choices, then the algorithm's own config (its keys, its ranges): all before
        any model loads. Raises ConfigError naming the key."""
        try:
            algo_cls = get_algorithm(self.algo)
        except KeyError as e:
            raise ConfigError("algo", str(e.args[0])) from None
        for key in ("updates", "groups_per_update", "group_size", "max_new_tokens", "max_steps", "max_errors",
                    "ppo_epochs", "micro_batch_rows", "sft_examples_per_update", "checkpoint_every",
                    "keep_checkpoints", "threads"):  # fmt: skip
            at_least(key, getattr(self, key), 1)
        if self.dynamic_sampling:
            require(self.group_size >= 2, "group_size", "at least 2 with dynamic_sampling = true (a group of one "
                    "is never mixed); set dynamic_sampling = false to train on groups of one", self.group_size)  # fmt: skip
        require(self.max_groups_sampled >= self.groups_per_update, "max_groups_sampled",
                f"at least groups_per_update ({self.groups_per_update})", self.max_groups_sampled)  # fmt: skip
        at_least("temperature", self.temperature, 0)
        require(0 < self.top_p <= 1, "top_p", "in (0, 1]", self.top_p)
        require(self.lr > 0, "lr", "above 0", self.lr)
        at_least("weight_decay", self.weight_decay, 0)
        require(self.grad_clip > 0, "grad_clip", "above 0", self.grad_clip)
        one_of("advantage", self.advantage, sorted(ESTIMATORS))
        one_of("backend", self.backend, list(BACKENDS))
        self.sampler_options()
        self.lora_settings()
        PGConfig(self.clip_low, self.clip_high, self.loss_agg, self.kl_coef)  # the loss's own checks
        require(bool(self.model), "model", "local/PATH, local/smollm2 or a checkpoint folder", self.model)
        from_table(algo_cls.Config, self.algo_config, "algo")

    def lora_settings(self) -> LoraSettings | None:
        return from_table(LoraSettings, self.lora, "lora") if self.lora else None

    def sampler_options(self) -> SamplerOptions:
        allowed = {"dtype", "kv_cache_gib", "gpu_memory_utilization", "tensor_parallel_size", "max_context"}
        unknown = sorted(set(self.sampler_args) - allowed)
        require(not unknown, "sampler_args", f"keys among {', '.join(sorted(allowed))}", ", ".join(unknown))
        try:
            return SamplerOptions(backend=self.backend, **self.sampler_args)
        except (TypeError, ValueError) as e:
            raise ConfigError("sampler_args", str(e)) from None

    @classmethod
    def from_toml(cls, path: Path | None, **overrides: Any) -> TrainConfig:
        data: dict[str, Any] = {}
        if path is not None:
            try:
                data = tomllib.loads(Path(path).read_text())
            except tomllib.TOMLDecodeError as e:
                raise ConfigError(str(path), f"not valid TOML: {e}") from None
        algo_cfg = data.pop("algo_config", {}) or {}
        if isinstance(data.get("algo"), dict):  # an [algo] table
            algo_cfg = {**algo_cfg, **data.pop("algo")} if isinstance(algo_cfg, dict) else algo_cfg
        data.update({k: v for k, v in overrides.items() if v is not None})
        data["algo_config"] = algo_cfg
        try:
            return from_table(cls, data)
        except ConfigError as e:
            raise (ConfigError(e.key, f"{e.detail} (in {path})", e.table) if path else e) from None

    def to_toml(self) -> str:
        import tomli_w

        from harness.redact import redact

        d = redact(dataclasses.asdict(self))  # e.g. a credit provider's api_key never reaches the file
        tables = {k: d.pop(k) for k in ("benchmark_args", "sampler_args", "lora", "algo_config")}
        d = {k: v for k, v in d.items() if v is not None}
        return "# budget: updates x groups_per_update kept groups of group_size siblings\n" + tomli_w.dumps(
            {**d, **tables}
        )


def rollout_logprob_diff(rollout: torch.Tensor | None, trainer: torch.Tensor, mask: torch.Tensor) -> float | None:
    """Mean |log π_rollout − log π_trainer| over policy tokens: how far the sampler's log-probs
    (vLLM's, returned with each token) are from the trainer's own recomputed ones on the same
    weights. ~1e-6 when weights are in sync at float32; a skipped weight sync shows as a large
    value. None when the sampler returned none (scripted batches). The PPO ratio keeps using
    the trainer's own log-probs."""
    if rollout is None:
        return None
    sel = mask.bool() & torch.isfinite(rollout)
    if not sel.any():
        return None
    return float((rollout[sel] - trainer[sel]).abs().mean())


def check_processes(cfg: TrainConfig, n: int) -> None:
    """The update's budget must deal out evenly over n processes (checked before any rollout; a
    resumed run may change its process count only to one that divides it too)."""
    if n == 1:
        return
    tp = cfg.sampler_args.get("tensor_parallel_size", 1)
    require(tp == 1, "sampler_args", f"tensor_parallel_size 1 under a launch of {n} processes (each process holds "
            "its own engine for its own groups; a tensor-parallel engine needs every member to send the same "
            "prompts)", f"tensor_parallel_size = {tp}")  # fmt: skip
    key = get_algorithm(cfg.algo).budget_key
    value = getattr(cfg, key)
    if value % n:
        raise ConfigError(key, f"divisible by the {n} processes of this launch (each process samples and trains "
                               f"an equal share of the update); use a multiple of {n} or a process count that "
                               f"divides {value}", value)  # fmt: skip


class NonFiniteError(RuntimeError):
    """A loss or gradient that is NaN or infinite: the run stops at that step, before the weights move."""


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Trainer:
    def __init__(self, cfg: TrainConfig, out_dir: Path):
        from harness.benchmarks import get_benchmark
        from harness.models import resolve_local_path
        from harness.policy import Policy

        self.cfg = cfg
        self.dir = Path(out_dir) / "train"
        self.ckpt_dir = self.dir / "checkpoints"
        # First, before any model loads: this process's place in a launch (an in-process vLLM
        # engine then joins the launch's process group instead of starting its own).
        self.dist = Dist.start()
        check_processes(cfg, self.dist.world)
        if self.dist.is_main:
            self.dir.mkdir(parents=True, exist_ok=True)
        torch.set_num_threads(self.threads)
        self.bench = get_benchmark(cfg.benchmark, **cfg.benchmark_args)
        self.task_ids = self.bench.split_ids(cfg.split)
        self.algo_cls = get_algorithm(cfg.algo)
        self._check_config()

        resume = self.latest_checkpoint()
        base = resolve_local_path(cfg.model[len("local/"):]) if cfg.model.startswith("local/") else Path(cfg.model)
        device = None if self.dist.accelerator is None else str(self.dist.device)
        lora = cfg.lora_settings()
        # With LoRA the run restarts from the base weights plus the checkpoint's adapter.
        self.policy = Policy.load(base if lora else (resume or base), threads=self.threads,
                                  options=cfg.sampler_options(), device=device)  # fmt: skip
        if lora is not None:
            self.policy.model = wrap(self.policy.model, lora, resume / "adapter" if resume else None)
            self.policy.sync_weights(merged_state(self.policy.model))
        self.start_step = int(resume.name.split("-")[1]) if resume else 0
        self.ref_model = None
        if cfg.kl_coef > 0:
            self.ref_model = Policy.load(base, threads=self.threads, backend="hf", device=device).model
        self.user_policy = (Policy.load(resolve_local_path(cfg.user_model[6:]), options=cfg.sampler_options())
                            if cfg.user_model else None)  # fmt: skip
        if cfg.gradient_checkpointing:
            self.policy.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        trainable = [p for p in self.policy.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
        if resume and (resume / "optimizer.pt").is_file():
            self.opt.load_state_dict(torch.load(resume / "optimizer.pt", weights_only=True))
        # The model gradients flow through: the launch's wrapper (DDP all-reduces gradients; FSDP2 /
        # ZeRO-3 shard the weights). `policy.model` stays the plain module for no-grad passes.
        self.train_model = self.policy.model
        if self.dist.accelerator is not None:
            self.train_model, self.opt = self.dist.accelerator.prepare(self.policy.model, self.opt)
            if resume and (resume / "accelerate").is_dir():  # sharded optimizer state, one file per process
                self.dist.accelerator.load_state(str(resume / "accelerate"))
        pg = PGConfig(cfg.clip_low, cfg.clip_high, cfg.loss_agg, cfg.kl_coef)
        algo_cfg = self.algo_cls.Config(**cfg.algo_config)
        self.algo = self.algo_cls(algo_cfg, AlgoContext(self.policy, self.dir, pg, bench=self.bench, dist=self.dist))
        if self.dist.is_main:
            self._truncate_metrics(self.start_step)
            self._write_manifest(resumed_from=str(resume) if resume else None)
        self.tb = self._tensorboard() if self.dist.is_main else None
        self.dist.barrier()

    # ------------------------------------------------------------------ bookkeeping

    @property
    def threads(self) -> int:
        """torch threads: the config's, shared out when several processes run on one machine."""
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        return max(1, min(self.cfg.threads, (os.cpu_count() or 1) // local)) if local > 1 else self.cfg.threads

    def _check_config(self) -> None:
        path = self.dir / "config.toml"
        text = self.cfg.to_toml()
        if path.exists() and path.read_text() != text:
            raise ValueError(
                f"{path} holds a different config; resume with the same config or use a new --out folder"
            )
        self.dist.barrier()  # every process compared before the main one writes
        if self.dist.is_main:
            _atomic_write(path, text)

    def _write_manifest(self, resumed_from: str | None) -> None:
        from harness.eval_run import git_commit, package_versions
        from harness.redact import redact

        manifest = {
            "kind": "train",
            "algo": self.cfg.algo,
            "benchmark": self.cfg.benchmark,
            "model": self.cfg.model,
            "seed": self.cfg.seed,
            "budget": {"updates": self.cfg.updates, "groups_per_update": self.cfg.groups_per_update,
                       "group_size": self.cfg.group_size, "max_groups_sampled": self.cfg.max_groups_sampled,
                       "dynamic_sampling": self.cfg.dynamic_sampling},  # fmt: skip
            "config": redact(dataclasses.asdict(self.cfg)),
            "resumed_from": resumed_from,
            "processes": self.dist.world,
            "distributed": self.dist.distributed_type,
            "git_commit": git_commit(),
            "packages": package_versions(),
            "benchmark_manifest": self.bench.manifest(),
            "sampler": {"backend": self.policy.sampler.backend, "dtype": self.policy.sampler.dtype,
                        "fallback": self.policy.sampler.fallback},  # fmt: skip
        }
        _atomic_write(self.dir / "manifest.json", json.dumps(manifest, indent=2, default=str))

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        return SummaryWriter(str(self.dir / "tensorboard"))

    def latest_checkpoint(self) -> Path | None:
        steps = sorted(
            (int(p.name.split("-")[1]), p)
            for p in self.ckpt_dir.glob("step-*")
            if p.is_dir() and p.name.split("-")[1].isdigit() and (p / "trainer_state.json").is_file()
        )
        return steps[-1][1] if steps else None

    def _truncate_metrics(self, step: int) -> None:
        """Keep the rows up to the resumed checkpoint's step (a torn last line is dropped, with a
        warning naming the file): the steps after it run again."""
        path = self.dir / "metrics.jsonl"
        if not path.exists():
            return
        rows = read_jsonl(path)
        bad = next((i for i, r in enumerate(rows, 1) if not isinstance(r.get("step"), int)), None)
        if bad is not None:
            raise JsonlError(f"{path}: record {bad} has no integer 'step'; fix or remove it to resume")
        _atomic_write(path, "".join(json.dumps(r) + "\n" for r in rows if r["step"] <= step))

    def _full_state(self) -> dict[str, torch.Tensor] | None:
        """The weights the sampler and the checkpoints get, whole and under the plain model's
        names: gathered when they are sharded (a collective: every process calls it), merged with
        LoRA; None when the plain module's own state_dict is that already."""
        state = full_state(self.train_model) if self.dist.sharded else None
        return merged_state(self.train_model, state) if is_lora(self.train_model) else state

    def save_checkpoint(self, step: int) -> Path:
        """Write step-N atomically: a crash leaves either the whole folder or none. Weights that
        are not finite are never written. One process writes; with sharded weights every process
        first helps gather them."""
        final = self.ckpt_dir / f"step-{step}"
        state = self._full_state()
        if self.dist.is_main:
            params = state.items() if state is not None else self.policy.model.named_parameters()
            params = list(params)
            bad = [n for n, p in params if not torch.isfinite(p).all()]
            if bad:
                raise NonFiniteError(f"step {step}: {len(bad)} weight tensor(s) are not finite (e.g. {bad[0]}); "
                                     "no checkpoint written")  # fmt: skip
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.ckpt_dir / f".step-{step}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            model = self.policy.model
            if is_lora(model):  # a plain folder of merged weights, the adapter beside it
                model.get_base_model().save_pretrained(tmp, state_dict=state)
                save_adapter(model, tmp / "adapter")
            else:
                model.save_pretrained(tmp, state_dict=state)
            self.policy.tokenizer.save_pretrained(tmp)
            if not self.dist.sharded:
                torch.save(self.opt.state_dict(), tmp / "optimizer.pt")
            (tmp / "trainer_state.json").write_text(json.dumps({"step": step, "algo": self.cfg.algo,
                                                                "processes": self.dist.world}))  # fmt: skip
            from harness.models import describe_model

            (tmp / "SOURCE.txt").write_text(f"{self.cfg.algo} step {step} from {describe_model(self.cfg.model)}\n")
        if self.dist.sharded:  # each process writes its shard of the optimizer state beside the weights
            self.dist.barrier()
            self.dist.accelerator.save_state(str(self.ckpt_dir / f".step-{step}.tmp" / "accelerate"))
        self.dist.barrier()
        if self.dist.is_main:
            if final.exists():
                shutil.rmtree(final)
            os.replace(self.ckpt_dir / f".step-{step}.tmp", final)
            old = sorted((int(p.name.split("-")[1]), p) for p in self.ckpt_dir.glob("step-*") if p.is_dir())
            for _, p in old[: -self.cfg.keep_checkpoints]:
                if p != final:
                    shutil.rmtree(p, ignore_errors=True)
        self.dist.barrier()
        return final

    # ------------------------------------------------------------------ one update

    def rollout_batch(self, step: int) -> tuple[TokenBatch | None, Collected]:
        """This process's share of the update: every process draws the same tasks and seeds; the
        groups are sampled split over processes and the kept ones dealt out (sgcd/distributed.py).
        A process given a replica of another's group (fewer kept groups than processes) gets a
        batch that does not count."""
        cfg = self.cfg
        rng = random.Random(f"{cfg.seed}-{step}")
        self.policy.model.eval()
        collected = collect_groups(
            self.bench, self.task_ids, self.policy, groups_per_update=cfg.groups_per_update,
            group_size=cfg.group_size, max_groups_sampled=cfg.max_groups_sampled,
            dynamic_sampling=cfg.dynamic_sampling,
            sampling=Sampling(temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_new_tokens),
            loop=LoopConfig(max_steps=cfg.max_steps, max_errors=cfg.max_errors), rng=rng,
            user_policy=self.user_policy, dist=self.dist,
        )  # fmt: skip
        batch = self._collate(collected.kept)
        if batch is not None and collected.replica:
            batch.counts = False
        return batch, collected

    def _collate(self, kept: list) -> TokenBatch | None:
        segments, groups, rewards, success, meta = [], [], [], [], []
        for g_idx, group in enumerate(kept):
            for res in group.results:
                traj = len(rewards)
                turns = [(t["prompt_ids"], t["completion_ids"]) for t in res.traces]
                segments += segments_from_turns(turns, traj, [t["logprobs"] for t in res.traces])
                groups.append(g_idx)
                rewards.append(res.outcome.reward)
                success.append(res.outcome.success)
                meta.append({"task_id": group.task_id, "result": res})
        if not segments:
            return None
        return collate(segments, groups, rewards, success, self.pad_id, meta)

    @property
    def pad_id(self) -> int:
        return self.policy.tokenizer.pad_token_id or 0

    def sampled_drift(self, collected: Collected) -> float | None:
        """rollout_logprob_diff on the first sampled group when no update ran (every group was
        dropped): the weight sync is checked on every step, not only on steps that train."""
        batch = self._collate(collected.all_groups[:1])
        chunks = self.dist.micro_batches(0 if batch is None else batch.input_ids.shape[0], self.cfg.micro_batch_rows,
                                         pad=self.dist.sharded)  # fmt: skip
        mine = logprobs_no_grad(self.policy.model, batch, chunks, self.pad_id)
        drift = None if batch is None or mine is None else rollout_logprob_diff(batch.rollout_logp, mine,
                                                                                 batch.loss_mask)  # fmt: skip
        tokens = 0.0 if batch is None else float(batch.loss_mask.sum())
        return self.dist.mean_over({} if drift is None else {"d": drift}, tokens).get("d")

    def update(self, batch: TokenBatch) -> dict[str, float]:
        """One optimizer step on this process's rows; metrics are reduced over processes. A batch
        with `counts` False (a replica: fewer kept groups than processes) runs every pass so the
        collectives stay in step, with weight 0."""
        cfg, d, model = self.cfg, self.dist, self.policy.model
        n_rows = batch.input_ids.shape[0]
        mine_tokens = float(batch.loss_mask.sum()) if batch.counts else 0.0
        mine_rows = float((batch.loss_mask.sum(-1) > 0).sum()) if batch.counts else 0.0
        batch.global_tokens, batch.global_rows = (max(x, 1.0) for x in d.sum([mine_tokens, mine_rows]))
        model.eval()
        chunks = d.micro_batches(n_rows, cfg.micro_batch_rows, pad=d.sharded)
        old = logprobs_no_grad(model, batch, chunks, self.pad_id)
        ref = None if self.ref_model is None else logprobs_no_grad(self.ref_model, batch, chunks, self.pad_id)
        assert old is not None
        work, prepared = self.algo.prepare(batch, old)
        stats: dict[str, float] = dict(prepared)
        drift = rollout_logprob_diff(batch.rollout_logp, old, batch.loss_mask)
        if drift is not None:
            stats["rollout_logprob_diff"] = drift
        traj_adv = compute_advantages(cfg.advantage, batch.rewards, batch.group_ids)
        adv_tok, audit = self.algo.token_advantages(batch, traj_adv, work)
        adv_tok = adv_tok.detach()
        stats = d.mean_over(stats, mine_tokens)
        stats.update(self.algo.write_audit(d.gather(audit if batch.counts else None), d.is_main))
        self.train_model.train()
        # Every process runs as many micro-batches (the last one all-reduces the gradients).
        train_chunks = d.micro_batches(n_rows, cfg.micro_batch_rows, pad=d.world > 1)
        acc: dict[str, float] = {}
        for _ in range(cfg.ppo_epochs):
            self.opt.zero_grad(set_to_none=True)
            for i, c in enumerate(train_chunks):
                with d.no_sync(self.train_model, last=i == len(train_chunks) - 1):
                    if c is None:
                        idle_forward(self.train_model, self.pad_id, grad=True)
                        continue
                    logp, ent, logits = token_logprobs(self.train_model, batch.input_ids[c], batch.attention_mask[c],
                                                       batch.loss_mask[c], with_entropy=True, return_logits=True)  # fmt: skip
                    terms, st = self.algo.loss(batch, logp, old[c], None if ref is None else ref[c], adv_tok[c], c,
                                               logits=logits, work=work)  # fmt: skip
                    # The micro-batch's part of the update's loss: its terms weighted so that the
                    # sum over all processes' micro-batches is the whole update's loss.
                    loss, parts = weigh(terms, batch, c)
                    if not torch.isfinite(loss.detach()):
                        raise NonFiniteError(f"step {self.algo.ctx.step}: the {cfg.algo} loss is {float(loss.detach())} "
                                             f"(rows {c.tolist()}); stopped before the optimizer step, so no "
                                             "checkpoint holds it. Check the algorithm's config (e.g. a zero "
                                             "temperature) and lr")  # fmt: skip
                    d.backward(loss * d.world)  # times N: DDP averages gradients
                    # The algorithm's other metrics are micro-batch means, weighted like the loss.
                    share = batch.share(c, cfg.loss_agg) if batch.counts else 0.0
                    st["entropy"] = float(aggregate(ent.detach(), batch.loss_mask[c], "token-mean"))
                    for k, v in st.items():
                        acc[k] = acc.get(k, 0.0) + v * share
                    for k, v in {**parts, "loss": float(loss.detach())}.items():
                        acc[k] = acc.get(k, 0.0) + v
            grad_norm = d.clip_grad_norm(self.train_model, cfg.grad_clip)
            if not torch.isfinite(grad_norm):
                self.opt.zero_grad(set_to_none=True)
                raise NonFiniteError(f"step {self.algo.ctx.step}: the gradient norm is {float(grad_norm)}; stopped "
                                     "before the optimizer step, so no checkpoint holds it. Check the "
                                     "algorithm's config and lr")  # fmt: skip
            self.opt.step()
        self.policy.sync_weights(self._full_state())  # the next rollouts sample the new weights
        model.eval()
        keys = list(dict.fromkeys(k for part in d.gather(list(acc)) for k in part))
        summed = d.sum([acc.get(k, 0.0) for k in keys])
        stats.update({k: v / cfg.ppo_epochs for k, v in zip(keys, summed, strict=True)})
        stats["grad_norm"] = float(grad_norm)
        stats["policy_tokens"] = float(d.sum([mine_tokens])[0])
        stats["process_rows"] = d.gather(n_rows)  # each process's share of the update's rows
        return stats

    # ------------------------------------------------------------------ the loop

    def run(self, progress: bool = True) -> list[dict[str, Any]]:
        from rich.progress import Progress

        cfg, d = self.cfg, self.dist
        rows = []
        with Progress(disable=not (progress and d.is_main), transient=False) as bar:
            job = bar.add_task(f"{cfg.algo} on {cfg.benchmark}", total=cfg.updates, completed=self.start_step)
            for step in range(self.start_step + 1, cfg.updates + 1):
                t0 = time.perf_counter()
                if torch.cuda.is_available():
                    torch.cuda.reset_peak_memory_stats()
                self.algo.ctx.step = step
                try:  # the update's rows: rollouts (collected: what was sampled), or the algorithm's own
                    batch, collected = self.algo.collect(self, step)
                except SamplerError as e:
                    last = self.latest_checkpoint()
                    raise SamplerError(f"step {step}: {e}. Nothing of step {step} was written; run the same "
                                       f"command again to resume from {last.name if last else 'the start'}") from e  # fmt: skip
                row: dict[str, Any] = {"step": step}
                if collected is not None:
                    row.update(
                        groups_sampled=collected.sampled, groups_kept=collected.kept_total,
                        groups_dropped_all_fail=collected.dropped_all_fail,
                        groups_dropped_all_success=collected.dropped_all_success,
                        groups_dropped_infra=collected.dropped_infra,
                        reward_mean=collected.reward_mean, success_rate=collected.success_rate,
                    )  # fmt: skip
                if batch is not None:  # on every process (a replica where one had no group of its own)
                    row.update(self.update(batch))
                else:
                    row["skipped"] = True  # no mixed group within the cap: nothing to learn from
                    if collected is not None:
                        row["rollout_logprob_diff"] = self.sampled_drift(collected)
                row.setdefault("loss", None)
                row.setdefault("kl", None)  # null: no reference model (kl_coef = 0)
                row["seconds"] = round(max(d.gather(time.perf_counter() - t0)), 3)
                if torch.cuda.is_available():  # the step's peak over processes (the trainer's; vLLM's is its own)
                    row["gpu_peak_gib"] = round(max(d.gather(torch.cuda.max_memory_allocated() / 2**30)), 3)
                if d.is_main:
                    with open(self.dir / "metrics.jsonl", "a") as f:
                        f.write(json.dumps(row) + "\n")
                    if self.tb is not None:
                        for k, v in row.items():
                            if isinstance(v, int | float) and not isinstance(v, bool):
                                self.tb.add_scalar(k, v, step)
                if step % cfg.checkpoint_every == 0 or step == cfg.updates:
                    self.save_checkpoint(step)
                rows.append(row)
                bar.update(job, advance=1, description=f"{cfg.algo} step {step}: success {row.get('success_rate', 0):.2f}")
        return rows
