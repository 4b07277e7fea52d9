"""SDPO: Self-Distillation Policy Optimization (Hübotter et al. 2026, arXiv 2601.20802).

The whole method, for one update over sibling groups:

  1. Reprompt (`reprompt_text`). Trajectory i's teacher sees the clean system prompt plus a
     successful sibling's solution (its agent turns as text; for a successful i a *different*
     successful sibling, else none) and/or the environment's feedback on i (Outcome.feedback),
     as `reprompt` says. A trajectory with neither is left out of the distillation term.
  2. Teacher pass. The teacher (an EMA of the policy, or the live policy) scores the student's
     own response tokens under that prompt, with no gradient (sgcd/teacher.py).
  3. Top-k + tail. At each eligible policy token t, K_t = the student's top-k token ids; both
     distributions are gathered on K_t plus one tail bucket holding the remaining mass:
         p̂ = [p(v) for v in K_t] ++ [1 − Σ_{v∈K_t} p(v)]                      (k+1 buckets)
  4. Divergence, with S = p̂_student (carries the gradient), T = sg(p̂_teacher):
         M_α = α·T + (1−α)·S
         D_α = (1−α)·KL(T ‖ M_α) + α·KL(S ‖ M_α)
     α = 0: M = S and D = KL(T‖S) (forward KL); α = 1: M = T and D = KL(S‖T) (reverse KL);
     α = ½: D = JSD(T, S). D_α is continuous in α on [0, 1].
  5. Importance weight (detached): ρ_t = sg(clip(π_θ(y_t) / π_old(y_t), 1 − ε, 1 + ε)).
  6. L_distill = Σ_t ρ_t·D_t / N over the N distillation-eligible policy tokens of the update,
     every process's (token-mean, whatever loss_agg is);
     loss = (1 − λ)·L_GRPO + λ·L_distill, L_GRPO GRPO's clipped PG loss (baselines/grpo.py; SDPO
     subclasses GRPO and calls it; λ = 0: exactly GRPO). The loss hook returns both as terms:
     L_GRPO's micro-batch mean by loss_agg, and Σ ρ_t·D_t over the micro-batch declared as a mean
     over N; the trainer weights each once (sgcd/algorithms.py Term).

Config keys (`[algo]` table) and defaults:
  reprompt = "solution+feedback"   "solution+feedback" | "solution" | "feedback"
  alpha = 0.5                      α of D_α (0 forward KL, 1 reverse KL, ½ JSD)
  topk = 20                        k (at most vocab − 1, so the tail bucket is never empty)
  is_clip = 0.2                    ε of ρ_t (0: ρ_t = 1)
  teacher = "ema"                  "ema" (EMA copy of the policy) | "live" (the policy itself)
  ema_rate = 0.05                  τ: θ_T ← (1 − τ)·θ_T + τ·θ
  distill_weight = 1.0             λ (1: pure SDPO)
  micro_rows = 4                   rows per forward in the prepare passes

Timing. θ_T starts as a copy of θ when the algorithm is built (so on resume, of the resumed
weights: the EMA is not checkpointed). The EMA step runs first thing in `prepare`, i.e. after
update n−1's optimizer step and before update n's teacher pass; on the first update it is a
no-op. The top-k ids K_t come from π_old in `prepare` (the weights the update starts from); the
trainer steps once per epoch after all micro-batches, so with ppo_epochs = 1 (and no dropout)
they are exactly the differentiated student's top-k; later epochs keep π_old's. Only the (B, L, k+1) teacher buckets and (B, L, k) ids are
kept: full-vocabulary log-softmax is taken only at eligible positions, one micro-batch at a time.

The student's logits with gradient are the trainer's own forward pass, handed to `loss` as
`logits` (recomputed only when a caller gives none), so no second forward is needed in training.

Against the reference code (lasgroup/SDPO): it special-cases α ∈ {0, 1} and, for 0 < α < 1,
weights the two KLs the other way round (α·KL(T‖M) + (1−α)·KL(S‖M), which vanishes towards
either end); both agree at α ∈ {0, ½, 1}. Its importance weight clips from above only.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from baselines.grpo import GRPO
from harness.configs import at_least, check_config, one_of, require
from sgcd.algorithms import Term
from sgcd.distributed import idle_forward
from sgcd.teacher import TeacherRows, teacher_rows
from sgcd.tokens import TokenBatch, position_logits, token_logprobs

REPROMPTS = ("solution+feedback", "solution", "feedback")
TEACHERS = ("ema", "live")


# ---------------------------------------------------------------------- reprompt


def render_solution(result: Any) -> str:
    """A trajectory's agent turns as text (visible text and tool calls), one step per turn."""
    from harness.toolcalls import render_call

    steps = []
    for t, i in enumerate(result.turn_message_index):
        m = result.messages[i]
        parts = ([m.content] if m.content else []) + [render_call(c) for c in m.tool_calls]
        steps.append(f"Step {t + 1}: " + "\n".join(parts))
    return "\n".join(steps)


def reprompt_text(system_prompt: str, solution: str, feedback: str) -> str | None:
    """The one place the teacher's privileged context enters its prompt: after the clean system
    prompt. None when there is neither a solution nor feedback (no teacher for this trajectory)."""
    parts = []
    if solution:
        parts.append(f"A correct solution to this task, from an earlier attempt:\n\n{solution}")
    if feedback:
        parts.append(
            f"Feedback from the environment on your earlier attempt at this task:\n\n{feedback}"
        )
    if not parts:
        return None
    return "\n\n".join([system_prompt, *parts, "Now solve the original task correctly."])


def demonstrations(group_ids: torch.Tensor, success: torch.Tensor) -> list[int | None]:
    """For each trajectory (T,), the successful sibling it is shown: the first successful one in
    its group other than itself, or None."""
    out: list[int | None] = []
    g, s = group_ids.tolist(), success.tolist()
    for i in range(len(g)):
        out.append(next((j for j in range(len(g)) if j != i and g[j] == g[i] and s[j]), None))
    return out


# ---------------------------------------------------------------------- the math


def topk_tail(logp: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """log p on the k ids plus the log of the remaining mass: (N, V), (N, k) long -> (N, k+1).

    The tail is a logsumexp over the other V − k entries (exact, no 1 − Σ cancellation)."""
    top = logp.gather(-1, ids)
    tail = torch.logsumexp(logp.scatter(-1, ids, float("-inf")), dim=-1, keepdim=True)
    return torch.cat([top, tail], dim=-1)


def _kl(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) over the last dim: (N, K) log-probs -> (N,)."""
    return (logp.exp() * (logp - logq)).sum(-1)


def generalized_jsd(student: torch.Tensor, teacher: torch.Tensor, alpha: float) -> torch.Tensor:
    """D_α of the module docstring: (N, K) log-probs -> (N,). The teacher is detached.

    α = 0: KL(T‖S); α = 1: KL(S‖T); otherwise (1−α)·KL(T‖M) + α·KL(S‖M), M = α·T + (1−α)·S."""
    t = teacher.detach()
    if alpha == 0:
        return _kl(t, student)
    if alpha == 1:
        return _kl(student, t)
    m = torch.logsumexp(torch.stack([t + math.log(alpha), student + math.log(1 - alpha)]), dim=0)
    return (1 - alpha) * _kl(t, m) + alpha * _kl(student, m)


def is_weight(logp: torch.Tensor, old_logp: torch.Tensor, eps: float) -> torch.Tensor:
    """ρ = sg(clip(exp(logp − old_logp), 1 − ε, 1 + ε)): (B, L) -> (B, L), no gradient."""
    return torch.exp((logp - old_logp).detach()).clamp(1 - eps, 1 + eps)


@torch.no_grad()
def at_positions(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    where: torch.Tensor,
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    micro_rows: int,
    dist: Any = None,
) -> torch.Tensor | None:
    """fn(logits predicting the tokens at `where` (n, V), their indices into `where` (n,)) for
    every [row, pos] of `where` (N, 2), pos ≥ 1, run micro_rows rows at a time so that only the
    selected positions' logits are ever computed: -> (N, *fn's trailing shape); None for no
    positions. With sharded weights (`dist`) every process makes as many forward calls."""
    out = None
    L = input_ids.shape[1]
    starts = [r0 for r0 in range(0, input_ids.shape[0], micro_rows)
              if ((where[:, 0] >= r0) & (where[:, 0] < r0 + micro_rows)).any()]  # fmt: skip
    if dist is not None and dist.sharded:
        for _ in range(dist.max(len(starts)) - len(starts)):
            idle_forward(model, 0)
    for r0 in starts:
        r1 = r0 + micro_rows
        sel = ((where[:, 0] >= r0) & (where[:, 0] < r1)).nonzero().flatten()
        mask = torch.zeros((min(r1, input_ids.shape[0]) - r0, L), dtype=torch.bool)
        mask[where[sel, 0] - r0, where[sel, 1]] = True
        logits, kept = position_logits(model, input_ids[r0:r1], attention_mask[r0:r1], mask)
        # position_logits returns row-major order; `where` may hold its positions in any order.
        keys = (where[sel, 0] - r0) * L + where[sel, 1]
        order = torch.searchsorted(kept.flatten().nonzero().flatten(), keys)
        val = fn(logits[order].float(), sel)
        if out is None:
            out = val.new_zeros((where.shape[0], *val.shape[1:]))
        out[sel] = val
    return out


# ---------------------------------------------------------------------- the algorithm


@dataclass
class Distillation:
    """What `prepare` hands to `loss` for one update."""

    mask: torch.Tensor  # (B, L) the distillation-eligible policy tokens of this process's rows
    n: int  # N: the eligible tokens of the whole update, every process's (a replica's count 0)
    ids: torch.Tensor | None = None  # (B, L, k) int32: K_t, π_old's top-k ids (None: no teacher pass)
    teacher: torch.Tensor | None = None  # (B, L, k+1) the teacher's log-probs on K_t plus the tail
    teacher_rows: TeacherRows | None = None  # the teacher's reprompted rows, aligned to the batch


class SDPO(GRPO):
    name = "sdpo"

    @dataclass
    class Config:
        reprompt: str = "solution+feedback"
        alpha: float = 0.5
        topk: int = 20
        is_clip: float = 0.2
        teacher: str = "ema"
        ema_rate: float = 0.05
        distill_weight: float = 1.0
        micro_rows: int = 4

        def __post_init__(self) -> None:
            check_config(self)

        def validate(self) -> None:
            one_of("reprompt", self.reprompt, REPROMPTS)
            one_of("teacher", self.teacher, TEACHERS)
            for key in ("alpha", "distill_weight", "ema_rate", "is_clip"):
                require(0 <= getattr(self, key) <= 1, key, "in [0, 1]", getattr(self, key))
            at_least("topk", self.topk, 1)
            at_least("micro_rows", self.micro_rows, 1)

    def __init__(self, cfg: Any, ctx: Any):
        super().__init__(cfg, ctx)
        model = ctx.policy.model
        self.teacher_model = None  # θ_T: lives across updates (the EMA)
        if cfg.teacher == "ema" and cfg.distill_weight > 0:
            self.teacher_model = copy.deepcopy(model).eval().requires_grad_(False)

    # ------------------------------------------------------------------ teacher weights

    @torch.no_grad()
    def ema_step(self) -> None:
        """θ_T ← (1 − τ)·θ_T + τ·θ from the current policy weights; buffers are copied."""
        if self.teacher_model is None:
            return
        model = self.ctx.policy.model
        for pt, p in zip(self.teacher_model.parameters(), model.parameters(), strict=True):
            pt.lerp_(p.detach(), self.cfg.ema_rate)
        for bt, b in zip(self.teacher_model.buffers(), model.buffers(), strict=True):
            bt.copy_(b)

    # ------------------------------------------------------------------ hooks

    def reprompts(self, batch: TokenBatch) -> list[str | None]:
        """Each trajectory's teacher system prompt, or None (left out of the distillation)."""
        demo = demonstrations(batch.group_ids, batch.success)
        use_solution = self.cfg.reprompt in ("solution+feedback", "solution")
        use_feedback = self.cfg.reprompt in ("solution+feedback", "feedback")
        out = []
        for t in range(len(batch.rewards)):
            res = batch.meta[t]["result"]
            shown = demo[t] if use_solution else None  # the demonstration's trajectory, if one is shown
            solution = render_solution(batch.meta[shown]["result"]) if shown is not None else ""
            feedback = (res.outcome.feedback or "") if use_feedback else ""
            out.append(reprompt_text(res.system_prompt, solution, feedback))
        return out

    def prepare(self, batch: TokenBatch, old_logp: torch.Tensor) -> tuple[Distillation, dict[str, float]]:
        cfg, policy = self.cfg, self.ctx.policy
        self.ema_step()
        systems = self.reprompts(batch)
        eligible = torch.tensor([s is not None for s in systems])
        mask = batch.loss_mask * eligible[batch.row_traj][:, None].float()  # (B, L)
        # N: the eligible tokens of the whole update, over every process (a replica's count 0).
        dist = self.ctx.dist
        mine = float(mask.sum()) if batch.counts else 0.0
        work = Distillation(mask, int(dist.sum([mine])[0] if dist is not None else mine))
        stats = {
            "distill_tokens": float(work.n),
            "sdpo_excluded_trajs": float((~eligible).sum()),
        }
        if cfg.distill_weight == 0 or work.n == 0:  # the same on every process
            return work, stats
        B, L = batch.input_ids.shape
        k = min(cfg.topk, policy.model.config.vocab_size - 1)
        # K_t: the student's (π_old's) top-k ids at every eligible policy position.
        where = mask.nonzero()  # (N, 2)
        policy.model.eval()
        top = at_positions(policy.model, batch.input_ids, batch.attention_mask, where,
                           lambda lg, _: lg.topk(k, dim=-1).indices, cfg.micro_rows, dist)  # fmt: skip
        work.ids = torch.zeros((B, L, k), dtype=torch.int32)
        if top is not None:  # None: no eligible token on this process (others have some)
            work.ids[where[:, 0], where[:, 1]] = top.to(torch.int32)
        # The teacher on the student's own tokens, reprompted; buckets on the same K_t.
        rows = teacher_rows(policy, batch, lambda t: systems[t])
        idx = rows.index[mask[rows.index[:, 0], rows.index[:, 1]] > 0]  # (N, 4)
        ids = work.ids[idx[:, 0], idx[:, 1]].long()  # (N, k)
        teacher = self.teacher_model if self.teacher_model is not None else policy.model
        tb = rows.batch
        vals = at_positions(teacher, tb.input_ids, tb.attention_mask, idx[:, 2:],
                            lambda lg, sel: topk_tail(lg.log_softmax(-1), ids[sel]),
                            cfg.micro_rows, dist)  # fmt: skip
        work.teacher = torch.zeros((B, L, k + 1))
        work.teacher_rows = rows
        if vals is not None:
            work.teacher[idx[:, 0], idx[:, 1]] = vals
            stats["teacher_topk_mass"] = float((1 - vals[:, -1].exp()).mean())
        return work, stats

    def loss(self, batch: TokenBatch, logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor | None,
             adv_tok: torch.Tensor, rows: torch.Tensor, logits: torch.Tensor | None = None,
             work: Distillation | None = None) -> tuple[list[Term], dict[str, float]]:  # fmt: skip
        """(1 − λ)·L_GRPO + λ·L_distill on micro-batch `rows`, as two terms: GRPO's (a mean by
        loss_agg) and Σ ρ_t·D_t over the rows' eligible tokens, a mean over the update's N."""
        lam = self.cfg.distill_weight
        (pg,), stats = super().loss(batch, logp, old_logp, ref_logp, adv_tok, rows)
        pg = replace(pg, coef=1 - lam, metric="pg_loss")
        if lam == 0:
            return [pg], stats
        if work is None:
            raise RuntimeError("sdpo: loss needs the work prepare(batch, old_logp) returned")
        sel = work.mask[rows].nonzero()  # (n, 2) local row, position
        if sel.numel() == 0 or work.ids is None or work.teacher is None:  # ids and teacher are set together
            distill = logp.sum() * 0.0  # no eligible token here: a zero that keeps the graph
        else:
            r, p = sel[:, 0], sel[:, 1]
            policy_tokens = batch.loss_mask[rows].bool()
            if logits is None:
                _, logits = token_logprobs(self.ctx.policy.model, batch.input_ids[rows],
                                           batch.attention_mask[rows], policy_tokens, return_logits=True)  # fmt: skip
            # logits: (N, V) at the rows' policy tokens in row-major order; find each selected one.
            at = torch.full(policy_tokens.shape, -1, dtype=torch.long)
            at[policy_tokens] = torch.arange(int(policy_tokens.sum()))
            student = topk_tail(torch.log_softmax(logits[at[r, p]].float(), -1), work.ids[rows][r, p].long())
            d = generalized_jsd(student, work.teacher[rows][r, p], self.cfg.alpha)  # (n,)
            rho = is_weight(logp, old_logp, self.cfg.is_clip)[r, p]
            distill = (rho * d).sum()
        return [pg, Term(distill, over=float(max(work.n, 1)), coef=lam, metric="distill_loss")], stats
