"""GRPO (Shao et al. 2024; DAPO-style clip-higher and token-mean by default) on the shared core.

Token advantages: each trajectory's group-normalized advantage A_i on all its policy tokens.
Actor loss: the clipped policy-gradient loss of sgcd/losses.py. Both are the base Algorithm's,
so GRPO adds nothing: it is the baseline every other method is measured against.
"""

from __future__ import annotations

from dataclasses import dataclass

from sgcd.algorithms import Algorithm, register


@register
class GRPO(Algorithm):
    name = "grpo"

    @dataclass
    class Config:
        pass
