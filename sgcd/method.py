"""SGCD: Sibling-Guided Credit Distillation (arXiv 2606.12634 v2, "Keep Policy Gradient in Charge").

The whole method, for one update over kept (mixed) sibling groups:

  1. Credit reference. For each group (≥ 1 success and ≥ 1 failure, by dynamic sampling), a
     provider (sgcd/credit.py) summarizes the siblings' contrast into stepwise credit
     {"summary", "steps": [{"trajectory", "turn", "credit" ∈ [-1, 1], "why"}]}.
  2. Teacher pass. The policy is given the clean prompt plus trajectory i's reference, rendered
     as text right after the system prompt (`teacher_system`), and scores the student's own
     response tokens y_t with no gradient (sgcd/teacher.py). With the `zero` provider the
     teacher prompt is byte-identical to the student's.
  3. Divergence, detached:  d_t = log π_T(y_t) − log π_S(y_t).
  4. Weights (default "signed"):  w_t = exp(sign(A_i) · d_t / T)
     — on a successful trajectory the tokens the informed teacher favours gain weight; on a
     failed one the tokens it disfavours gain weight (A_i < 0 makes their push-down stronger).
     Then w is normalized to mean 1 over the trajectory's policy tokens and clipped to
     [w_min, w_max]; the mean after clipping is logged (it may drift from 1).
  5. Advantages become A_i · w_t; the actor loss stays GRPO's clipped loss (SGCD subclasses GRPO,
     baselines/grpo.py). Weights, teacher and reference carry no gradient. The deployed policy
     never sees the reference.

SGCD is registered through the entry point group `sgcd_bench.algorithms` (pyproject.toml), as a
third-party algorithm would be. Per update: `prepare` returns the teacher divergence and the
groups' credit records (`CreditPass`), `token_advantages` turns them into weighted advantages and
this process's part of the step's audit, and `write_audit` writes the step's one audit file.

Choices the paper leaves open, each a config key (`[algo]` table), with our defaults:
  provider = "local/smollm2"    credit provider: openai | local/PATH | guided/PATH | zero | random | oracle
  random_base = "zero"          base provider for the `random` control
  temperature = 1.0             T in w_t = exp(sign(A_i) d_t / T)
  form = "signed"               "signed" as above, or "abs": w_t = exp(|d_t| / T) (magnitude only)
  normalize = "trajectory"      mean-1 normalization over a trajectory's tokens, or "none"
  w_min = 0.5, w_max = 2.0      clip bounds, applied after normalization
  retries = 1                   provider retries on an unparsable answer before falling back to zero
  audit_provider = ""           optional second provider scored on the same groups (rank agreement;
                                "oracle" says whether the main provider's credit is right)
  provider_max_tokens = 384     answer length bound of a local/PATH provider (its whole JSON answer;
                                guided/PATH: its summary)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch

from baselines.grpo import GRPO
from harness.configs import at_least, check_config, one_of, require
from harness.credit_counts import credit_counts
from sgcd.credit import (
    PROVIDER_FORMS,
    ReferenceCache,
    SiblingGroup,
    is_provider_name,
    make_provider,
    render_group,
    render_reference,
)
from sgcd.teacher import TeacherRows, align, teacher_logprobs, teacher_rows
from sgcd.tokens import TokenBatch

WEIGHT_FORMS = ("signed", "abs")
NORMALIZATIONS = ("trajectory", "none")


def teacher_system(student_system: str, reference_text: str) -> str:
    """The one place the reference enters the teacher's prompt: after the system prompt."""
    return student_system if not reference_text else f"{student_system}\n\n{reference_text}"


def credit_weights(
    d: torch.Tensor,
    mask: torch.Tensor,
    row_adv: torch.Tensor,
    row_traj: torch.Tensor,
    temperature: float = 1.0,
    form: str = "signed",
    normalize: str = "trajectory",
    w_min: float = 0.5,
    w_max: float = 2.0,
) -> torch.Tensor:
    """Bounded detached weights. d, mask: (B, L); row_adv, row_traj: (B,) -> w: (B, L), 0 off mask.

    A trajectory may span several rows; normalization is over all of its policy tokens.
    """
    d = d.detach()
    if form == "signed":
        logits = torch.sign(row_adv)[:, None] * d / temperature
    elif form == "abs":
        logits = d.abs() / temperature
    else:
        raise ValueError(f"unknown weight form {form!r} ({' | '.join(WEIGHT_FORMS)})")
    w = torch.exp(logits.clamp(max=30.0)) * mask
    if normalize == "trajectory":
        n_traj = int(row_traj.max()) + 1
        tok_sum = torch.zeros(n_traj).index_add_(0, row_traj, w.sum(-1))
        tok_cnt = torch.zeros(n_traj).index_add_(0, row_traj, mask.sum(-1))
        mean = tok_sum / tok_cnt.clamp(min=1)
        w = w / mean[row_traj][:, None].clamp(min=1e-12)
    elif normalize != "none":
        raise ValueError(f"unknown normalization {normalize!r} ({' | '.join(NORMALIZATIONS)})")
    return torch.clamp(w, w_min, w_max) * mask


@dataclass
class CreditPass:
    """What `prepare` hands to `token_advantages` for one update."""

    d: torch.Tensor  # (B, L) d_t = log π_T(y_t) − log π_S(y_t) on policy tokens (0 elsewhere), detached
    records: list[dict[str, Any]]  # one credit record per sibling group of this process's rows
    teacher_rows: TeacherRows  # the teacher's rows (the reference in the prompt), aligned to the batch


class SGCD(GRPO):
    name = "sgcd"

    @dataclass
    class Config:
        provider: str = "local/smollm2"
        random_base: str = "zero"
        temperature: float = 1.0
        form: str = "signed"
        normalize: str = "trajectory"
        w_min: float = 0.5
        w_max: float = 2.0
        retries: int = 1
        audit_provider: str = ""
        provider_max_tokens: int = 384

        def __post_init__(self) -> None:
            check_config(self)

        def validate(self) -> None:
            require(is_provider_name(self.provider), "provider", PROVIDER_FORMS, self.provider)
            require(self.random_base != "random" and is_provider_name(self.random_base), "random_base",
                    PROVIDER_FORMS.replace(" | random", ""), self.random_base)  # fmt: skip
            require(not self.audit_provider or is_provider_name(self.audit_provider), "audit_provider",
                    f"empty (no audit) or {PROVIDER_FORMS}", self.audit_provider)  # fmt: skip
            require(self.temperature > 0, "temperature", "above 0 (w = exp(sign(A) d / T) divides by T)",
                    self.temperature)  # fmt: skip
            one_of("form", self.form, WEIGHT_FORMS)
            one_of("normalize", self.normalize, NORMALIZATIONS)
            at_least("w_min", self.w_min, 0)
            require(self.w_max >= self.w_min, "w_max", f"at least w_min ({self.w_min})", self.w_max)
            at_least("retries", self.retries, 0)
            at_least("provider_max_tokens", self.provider_max_tokens, 1)

    def __init__(self, cfg: Any, ctx: Any):
        super().__init__(cfg, ctx)
        if cfg.audit_provider and cfg.audit_provider == cfg.provider:
            raise ValueError(f"audit_provider is the same as provider ({cfg.provider!r}): the audit compares two "
                             "different providers; set audit_provider to another (e.g. 'oracle') or leave it empty")  # fmt: skip
        bench = getattr(ctx, "bench", None)
        self.provider = make_provider(cfg.provider, cfg.random_base, seed=0, max_new_tokens=cfg.provider_max_tokens,
                                      bench=bench)  # fmt: skip
        self.audit = (make_provider(cfg.audit_provider, max_new_tokens=cfg.provider_max_tokens, bench=bench)
                      if cfg.audit_provider else None)  # fmt: skip
        # One cache file per process (concurrent writers never share a file); each reads them all.
        rank = ctx.dist.rank if ctx.dist is not None else 0
        self.cache = ReferenceCache(ctx.run_dir / "credit" / ("cache.jsonl" if rank == 0 else f"cache.rank-{rank}.jsonl"))

    # ------------------------------------------------------------------ references

    def _group_prompt(self, batch: TokenBatch, trajs: list[int]) -> str:
        first = batch.meta[trajs[0]]["result"]
        task_text = "\n".join(m.content or "" for m in first.messages[: first.turn_message_index[0]] if m.role == "user")
        task_text = f"{first.system_prompt[:1500]}\n\n{task_text}".strip()
        items = []
        for t in trajs:
            res = batch.meta[t]["result"]
            items.append((res.messages, res.turn_message_index, bool(res.outcome.success), res.outcome.feedback))
        return render_group(task_text, items)

    def _reference(self, provider: Any, prompt: str, n: int, turns: list[int], group: SiblingGroup) -> dict[str, Any]:
        # A ground-truth provider answers from the task, not only from what the prompt shows.
        key = ReferenceCache.key(provider.name, f"task {group.task_id}\n{prompt}" if provider.uses_ground_truth else prompt)
        hit = self.cache.get(key)
        if hit is not None:
            return {**hit, "cached": True}
        ans = provider.reference(prompt, n, turns, self.cfg.retries, group)
        rec = {"provider": ans.provider, "reference": ans.reference.to_dict() if ans.reference else None,
               "error": ans.error, "attempts": ans.attempts, "raw": ans.raw[-2:]}  # fmt: skip
        self.cache.put(key, rec)
        return {**rec, "cached": False}

    def references(self, batch: TokenBatch) -> tuple[dict[int, Any], list[dict[str, Any]]]:
        """A reference per trajectory (None = zero), and one audit record per group."""
        from sgcd.credit import CreditReference

        groups: dict[int, list[int]] = {}
        for t, g in enumerate(batch.group_ids.tolist()):
            groups.setdefault(g, []).append(t)
        per_traj: dict[int, Any] = {}
        records = []
        for g, trajs in groups.items():
            prompt = self._group_prompt(batch, trajs)
            turns = [len(batch.meta[t]["result"].traces) for t in trajs]
            results = [batch.meta[t]["result"] for t in trajs]
            group = SiblingGroup(batch.meta[trajs[0]]["task_id"], [(r.messages, r.turn_message_index) for r in results],
                                 [bool(batch.success[t]) for t in trajs])  # fmt: skip
            rec = self._reference(self.provider, prompt, len(trajs), turns, group)
            ref = CreditReference(**rec["reference"]) if rec["reference"] else None
            for local, t in enumerate(trajs):
                per_traj[t] = (ref, local)
            audit = None
            if self.audit is not None:
                audit = self._reference(self.audit, prompt, len(trajs), turns, group)
            records.append({"group": g, "task_id": batch.meta[trajs[0]]["task_id"], "trajectories": trajs,
                            "success": [bool(batch.success[t]) for t in trajs], **rec, "audit": audit})  # fmt: skip
        return per_traj, records

    # ------------------------------------------------------------------ hooks

    def prepare(self, batch: TokenBatch, old_logp: torch.Tensor) -> tuple[CreditPass, dict[str, float]]:
        per_traj, records = self.references(batch)
        policy = self.ctx.policy

        def system_for(traj: int) -> str:
            ref, local = per_traj[traj]
            return teacher_system(batch.meta[traj]["result"].system_prompt, render_reference(ref, local))

        rows = teacher_rows(policy, batch, system_for)
        policy.model.eval()
        n_rows, length = batch.input_ids.shape
        t_lp = align(teacher_logprobs(policy.model, rows, dist=self.ctx.dist), rows, (n_rows, length))
        # the student pass is log π_old: the same weights on the clean prompt, no gradient
        d = (t_lp - old_logp) * batch.loss_mask
        stats = {  # credit counts of this process's groups; the step's row gets all processes' (write_audit)
            **{f"credit_{k}": float(v) for k, v in credit_counts(records).items()},
            "teacher_d_abs_mean": float((d.abs() * batch.loss_mask).sum() / batch.loss_mask.sum().clamp(min=1)),
        }
        return CreditPass(d, records, rows), stats

    def weights(self, batch: TokenBatch, traj_adv: torch.Tensor, work: CreditPass) -> torch.Tensor:
        """w_t (B, L) of the module docstring, detached, 0 off the policy tokens."""
        cfg = self.cfg
        return credit_weights(work.d, batch.loss_mask, traj_adv[batch.row_traj], batch.row_traj, cfg.temperature,
                              cfg.form, cfg.normalize, cfg.w_min, cfg.w_max)  # fmt: skip

    def token_advantages(self, batch: TokenBatch, traj_adv: torch.Tensor,
                         work: CreditPass | None = None) -> tuple[torch.Tensor, dict[str, Any]]:  # fmt: skip
        """A_i · w_t, and this process's part of the step's audit."""
        if work is None:
            raise RuntimeError("sgcd: token_advantages needs the work prepare(batch, old_logp) returned")
        w = self.weights(batch, traj_adv, work)
        adv = (traj_adv[batch.row_traj][:, None] * w * batch.loss_mask).detach()
        return adv, self._audit_record(batch, traj_adv, w, work)

    # ------------------------------------------------------------------ audit

    def _audit_record(self, batch: TokenBatch, traj_adv: torch.Tensor, w: torch.Tensor,
                      work: CreditPass) -> dict[str, Any]:  # fmt: skip
        """This process's share of the step's audit: its groups, trajectories and token weights."""
        per_traj = []
        for t in range(len(batch.rewards)):
            rows = (batch.row_traj == t).nonzero().flatten()
            m = batch.loss_mask[rows] > 0
            wt = w[rows][m]
            per_traj.append({"traj": t, "turns": len(batch.meta[t]["result"].traces),
                             "advantage": float(traj_adv[t]), "success": bool(batch.success[t]),
                             "weight_mean": float(wt.mean()) if wt.numel() else None,
                             "weight_std": float(wt.std()) if wt.numel() > 1 else None,
                             "d_mean": float(work.d[rows][m].mean()) if wt.numel() else None})  # fmt: skip
        return {"groups": work.records, "trajectories": per_traj, "weights": w[batch.loss_mask > 0].tolist()}

    def write_audit(self, payloads: list[Any], main: bool) -> dict[str, float]:
        """One credit/step-N.json per step, written by the main process: every process's groups
        and trajectories (numbered through, in rank order) and the weight statistics over all
        policy tokens."""
        groups: list[dict[str, Any]] = []
        per_traj: list[dict[str, Any]] = []
        vals_list: list[float] = []
        for part in payloads:
            if part is None:
                continue
            t0, g0 = len(per_traj), 1 + max((g["group"] for g in groups), default=-1)
            groups += [{**g, "group": g["group"] + g0, "trajectories": [t + t0 for t in g["trajectories"]]}
                       for g in part["groups"]]  # fmt: skip
            per_traj += [{**t, "traj": t["traj"] + t0} for t in part["trajectories"]]
            vals_list += part["weights"]
        if not per_traj:
            return {}
        vals = torch.tensor(vals_list)
        weight_stats = {
            "weight_mean": float(vals.mean()) if vals.numel() else float("nan"),
            "weight_std": float(vals.std()) if vals.numel() > 1 else 0.0,
            "weight_min": float(vals.min()) if vals.numel() else float("nan"),
            "weight_max": float(vals.max()) if vals.numel() else float("nan"),
            "weight_clipped_frac": float(((vals <= self.cfg.w_min) | (vals >= self.cfg.w_max)).float().mean()) if vals.numel() else 0.0,
        }
        if main:
            out = self.ctx.run_dir / "credit" / f"step-{self.ctx.step}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps({"step": self.ctx.step, "groups": groups, "trajectories": per_traj,
                                       "weights": weight_stats}, default=str))  # fmt: skip
            tmp.replace(out)
        return {**{f"credit_{k}": float(v) for k, v in credit_counts(groups).items()}, **weight_stats}

