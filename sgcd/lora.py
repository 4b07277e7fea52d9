"""LoRA (Hu et al. 2021) through peft, for models whose full fine-tuning does not fit.

`[train] lora = { r = 16, alpha = 32, dropout = 0.0, target_modules = [...] }` trains a peft
adapter on the policy; every algorithm sees the adapter-on model as the policy (SGCD's teacher
pass, SDPO's teacher, the old and reference passes). What leaves the trainer is merged:

  W' = W + (α / r) · B A          for every adapted linear layer (A: r × in, B: out × r)

— the sampler gets W' after every step, and each checkpoint is a plain Hugging Face folder of W'
(what `sgcd-bench eval` and vLLM load) with the adapter itself in `adapter/` beside it. A resumed
run loads the base model again and the adapter from `adapter/` (its optimizer state is for the
adapter's parameters). The merge is computed here from the weights, not by peft's in-place
merge/unmerge, which would round the base weights a little on every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from harness.configs import at_least, check_config, require

ADAPTER = "default"
PREFIX = "base_model.model."  # peft's prefix before the wrapped model's own parameter names


@dataclass
class LoraSettings:
    r: int = 16
    alpha: float = 32.0
    dropout: float = 0.0
    # the linear layers to adapt: peft's "all-linear" or a list of module names (q_proj, v_proj, ...)
    target_modules: str | list[str] = "all-linear"

    def __post_init__(self) -> None:
        check_config(self)

    def validate(self) -> None:
        at_least("r", self.r, 1)
        require(self.alpha > 0, "alpha", "above 0", self.alpha)
        require(0 <= self.dropout < 1, "dropout", "in [0, 1)", self.dropout)
        ok = self.target_modules == "all-linear" or (
            isinstance(self.target_modules, list) and self.target_modules
            and all(isinstance(m, str) and m for m in self.target_modules)
        )
        require(ok, "target_modules", '"all-linear" or a non-empty list of module names', self.target_modules)


def wrap(model: Any, settings: LoraSettings, adapter_dir: Path | None = None) -> Any:
    """The model with a trainable adapter: a fresh one (B = 0, so the model is unchanged), or the
    one saved in `adapter_dir` (resume)."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if adapter_dir is not None:
        return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=True)
    cfg = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                     target_modules=settings.target_modules, task_type="CAUSAL_LM")  # fmt: skip
    return get_peft_model(model, cfg)


def is_lora(model: Any) -> bool:
    return hasattr(getattr(model, "module", model), "peft_config")


def merged_state(model: Any, state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """W' = W + scaling · B A for every adapted layer, under the plain model's parameter names.
    `state`: the peft model's whole state dict when it had to be gathered (sharded weights)."""
    from peft.tuners.lora import LoraLayer

    inner = getattr(model, "module", model)
    sd = state if state is not None else inner.state_dict()
    out: dict[str, torch.Tensor] = {}
    for name, value in sd.items():
        if ".lora_" in name:
            continue
        plain = name.removeprefix(PREFIX).replace(".base_layer.", ".")
        out[plain] = value.detach()
    for name, module in inner.named_modules():
        if not isinstance(module, LoraLayer) or ADAPTER not in module.lora_A:
            continue
        a, b = sd[f"{name}.lora_A.{ADAPTER}.weight"], sd[f"{name}.lora_B.{ADAPTER}.weight"]
        plain = f"{name.removeprefix(PREFIX)}.weight"
        w = out[plain]
        out[plain] = (w.float() + (b.float() @ a.float()) * module.scaling[ADAPTER]).to(w.dtype)
    return out


def save_adapter(model: Any, folder: Path) -> None:
    getattr(model, "module", model).save_pretrained(str(folder))
