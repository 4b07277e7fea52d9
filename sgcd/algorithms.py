"""The algorithm registry and the base every algorithm refines (GRPO's token advantages and loss).

An algorithm is found by name (`--algo grpo|sdpo|sgcd|sft`); the trainer loop calls only these
hooks, so it knows no algorithm by name:
  data           "rollouts" (sibling groups from the policy) or "scripted" (supervised turns)
  prepare(batch) detached work before the update (e.g. a teacher pass); returns metrics
  token_advantages(batch, adv) (T,) trajectory advantages -> (B, L) token advantages
  audit_payload() / write_audit(payloads, main)  after token_advantages, on every process: the
                 step's audit, gathered from every process and written once
  loss(batch, logp, old_logp, ref_logp, adv_tok, rows, logits) -> (scalar loss, metrics);
                 `rows` are the micro-batch's rows, `logits` (N, V) the student's forward at the
                 N policy tokens of those rows (batch.loss_mask[rows].nonzero(), row-major)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from sgcd.losses import PGConfig, clipped_pg_loss
from sgcd.tokens import TokenBatch

ALGORITHMS: dict[str, type[Algorithm]] = {}

# Modules that register algorithms; imported on demand so nothing heavy loads at import time.
ALGORITHM_MODULES = ("baselines.grpo", "baselines.sft", "baselines.sdpo", "sgcd.method")


def register(cls: type[Algorithm]) -> type[Algorithm]:
    ALGORITHMS[cls.name] = cls
    return cls


def get_algorithm(name: str) -> type[Algorithm]:
    for mod in ALGORITHM_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
    if name not in ALGORITHMS:
        raise KeyError(f"unknown algorithm {name!r}; known: {', '.join(sorted(ALGORITHMS))}")
    return ALGORITHMS[name]


@dataclass
class AlgoContext:
    """What an algorithm may use besides tensors: the policy, its settings, the run folder and
    the benchmark trained on (for credit built from its ground truth)."""

    policy: Any
    run_dir: Any
    pg: PGConfig
    step: int = 0
    bench: Any = None
    dist: Any = None  # sgcd/distributed.py Dist: this process's place in a launch (None: alone)


class Algorithm:
    name: ClassVar[str] = "base"
    data: ClassVar[str] = "rollouts"
    Config: ClassVar[type] = dataclass(type("NoConfig", (), {}))

    def __init__(self, cfg: Any, ctx: AlgoContext):
        self.cfg, self.ctx = cfg, ctx

    def prepare(self, batch: TokenBatch) -> dict[str, float]:
        return {}

    def audit_payload(self) -> Any:
        """What this process has to add to the step's audit (after token_advantages), or None."""
        return None

    def write_audit(self, payloads: list[Any], main: bool) -> dict[str, float]:
        """Every process's payload, in rank order: the main process writes the step's one audit
        file. Returns metrics for the step's row (the same on every process)."""
        return {}

    def token_advantages(self, batch: TokenBatch, traj_adv: torch.Tensor) -> torch.Tensor:
        """Broadcast each trajectory's advantage to its rows' tokens: (T,) -> (B, L)."""
        return traj_adv[batch.row_traj][:, None] * batch.loss_mask

    def loss(
        self,
        batch: TokenBatch,
        logp: torch.Tensor,
        old_logp: torch.Tensor,
        ref_logp: torch.Tensor | None,
        adv_tok: torch.Tensor,
        rows: torch.Tensor,
        logits: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """GRPO's clipped loss on the rows `rows` (a micro-batch) of the batch."""
        return clipped_pg_loss(logp, old_logp, adv_tok, batch.loss_mask[rows], self.ctx.pg, ref_logp)
