"""GRPO (Shao et al. 2024; DAPO-style clip-higher and token-mean by default) on the shared core.

Token advantages: each trajectory's group-normalized advantage A_i on all its policy tokens (the
base Algorithm's default). Actor loss: the clipped policy-gradient loss of sgcd/losses.py,
aggregated by `loss_agg` over the update. GRPO is the baseline every other method is measured
against; SGCD and SDPO refine it (their actor loss calls this one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from sgcd.algorithms import Algorithm, Term
from sgcd.losses import clipped_pg_loss
from sgcd.tokens import TokenBatch


class GRPO(Algorithm):
    name = "grpo"

    @dataclass
    class Config:
        pass

    def loss(self, batch: TokenBatch, logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor | None,
             adv_tok: torch.Tensor, rows: torch.Tensor, logits: torch.Tensor | None = None,
             work: Any = None) -> tuple[list[Term], dict[str, float]]:  # fmt: skip
        """The clipped loss on the rows `rows` (a micro-batch): their mean by loss_agg."""
        pg = self.ctx.pg
        value, stats = clipped_pg_loss(logp, old_logp, adv_tok, batch.loss_mask[rows], pg, ref_logp)
        return [Term(value, over=pg.loss_agg)], stats
