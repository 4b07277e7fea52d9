"""Advantage estimators over sibling groups, registered by name (one scalar per trajectory).

Inputs: rewards (T,), group_ids (T,) -> advantages (T,). Every trajectory of a group shares
the group's baseline; the trainer broadcasts A_i to the trajectory's policy tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

Estimator = Callable[..., torch.Tensor]  # (rewards (T,), group_ids (T,), **options) -> advantages (T,)
E = TypeVar("E", bound=Estimator)

ESTIMATORS: dict[str, Estimator] = {}


def estimator(name: str) -> Callable[[E], E]:
    def deco(fn: E) -> E:
        ESTIMATORS[name] = fn
        return fn

    return deco


def _group_stats(rewards: torch.Tensor, group_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-trajectory group mean, group std (unbiased) and group size, each (T,)."""
    groups, inv = torch.unique(group_ids, return_inverse=True)
    n = torch.zeros(len(groups)).index_add_(0, inv, torch.ones_like(rewards))
    s = torch.zeros(len(groups)).index_add_(0, inv, rewards)
    mean = s / n
    sq = torch.zeros(len(groups)).index_add_(0, inv, (rewards - mean[inv]) ** 2)
    std = torch.sqrt(sq / (n - 1).clamp(min=1))
    return mean[inv], std[inv], n[inv]


@estimator("grpo")
def grpo(rewards: torch.Tensor, group_ids: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """A_i = (r_i − mean_g) / (std_g + eps), std unbiased over the group (Shao et al. 2024)."""
    mean, std, _ = _group_stats(rewards, group_ids)
    return (rewards - mean) / (std + eps)


@estimator("drgrpo")
def drgrpo(rewards: torch.Tensor, group_ids: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Dr. GRPO (Liu et al. 2025): A_i = r_i − mean_g, no division by the std."""
    mean, _, _ = _group_stats(rewards, group_ids)
    return rewards - mean


@estimator("rloo")
def rloo(rewards: torch.Tensor, group_ids: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Leave-one-out: A_i = r_i − mean of the other G−1 rewards = G/(G−1) · (r_i − mean_g)."""
    mean, _, n = _group_stats(rewards, group_ids)
    return (rewards - mean) * n / (n - 1).clamp(min=1)


def compute_advantages(name: str, rewards: torch.Tensor, group_ids: torch.Tensor, **kwargs: float) -> torch.Tensor:
    if name not in ESTIMATORS:
        raise KeyError(f"unknown advantage estimator {name!r}; known: {', '.join(sorted(ESTIMATORS))}")
    return ESTIMATORS[name](rewards, group_ids, **kwargs)
