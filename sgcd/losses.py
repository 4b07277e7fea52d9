"""The clipped policy-gradient loss every algorithm's actor uses, with optional KL to a reference.

Shapes: logp, old_logp, ref_logp, adv, mask: (B, L); the result is a scalar.

  r_t = exp(logp_t − old_logp_t)
  ℓ_t = −min(r_t · A_t, clip(r_t, 1 − ε_low, 1 + ε_high) · A_t)         (PPO / DAPO clip-higher)
  KL_t = exp(ref_t − logp_t) − (ref_t − logp_t) − 1                       (k3, Schulman 2020)
  loss = agg(ℓ_t + β · KL_t over policy tokens)

Aggregation: "token-mean" = Σ_t ℓ_t / Σ mask over the whole batch (DAPO); "seq-mean-token-mean"
= mean over rows of each row's token mean (the original GRPO).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.configs import at_least, check_config, one_of, require

AGGREGATIONS = ("token-mean", "seq-mean-token-mean")


@dataclass
class PGConfig:
    clip_low: float = 0.2
    clip_high: float = 0.28
    loss_agg: str = "token-mean"  # token-mean | seq-mean-token-mean
    kl_coef: float = 0.0

    def __post_init__(self) -> None:
        check_config(self)

    def validate(self) -> None:
        require(0 <= self.clip_low < 1, "clip_low", "in [0, 1)", self.clip_low)
        at_least("clip_high", self.clip_high, 0)
        one_of("loss_agg", self.loss_agg, AGGREGATIONS)
        at_least("kl_coef", self.kl_coef, 0)


def aggregate(values: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Masked mean of (B, L) values by the chosen rule."""
    if how == "token-mean":
        return (values * mask).sum() / mask.sum().clamp(min=1)
    if how == "seq-mean-token-mean":
        per_row = (values * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        has = (mask.sum(-1) > 0).float()
        return (per_row * has).sum() / has.sum().clamp(min=1)
    raise ValueError(f"unknown loss aggregation {how!r} ({' | '.join(AGGREGATIONS)})")


def clipped_pg_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    cfg: PGConfig,
    ref_logp: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - cfg.clip_low, 1 + cfg.clip_high) * adv
    per_token = -torch.minimum(unclipped, clipped)
    stats: dict[str, float] = {}
    if cfg.kl_coef > 0:
        if ref_logp is None:
            raise ValueError("kl_coef > 0 needs reference logprobs")
        d = ref_logp - logp
        kl = torch.exp(d) - d - 1
        per_token = per_token + cfg.kl_coef * kl
        stats["kl"] = float(aggregate(kl.detach(), mask, "token-mean"))
    loss = aggregate(per_token, mask, cfg.loss_agg)
    with torch.no_grad():
        is_clipped = ((ratio < 1 - cfg.clip_low) & (adv < 0)) | ((ratio > 1 + cfg.clip_high) & (adv > 0))
        stats["clip_fraction"] = float(aggregate(is_clipped.float(), mask, "token-mean"))
        stats["ratio_mean"] = float(aggregate(ratio, mask, "token-mean"))
    return loss, stats
