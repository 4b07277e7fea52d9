"""`--dry-run`: a training run's memory per device and work per update, on paper.

Nothing is loaded: the parameter counts come from the model's config.json (the model built on
torch's meta device, LoRA's adapter counted by peft on it), the layout from the accelerate
config. Per device, in bytes (P: parameters, T: trainable ones, N: processes over which FSDP /
ZeRO-3 shard; 1 for DDP and a single process):

  weights        4·P / N           float32 master weights (bf16 mixed precision computes in bf16
                                   but keeps float32 weights)
  gradients      4·T / N
  optimizer      8·T / N           AdamW's two moments, float32
  extra copies   4·P / N each      SDPO's EMA teacher; the reference model when kl_coef > 0
  activations    per micro-batch of R rows of S tokens, L layers, hidden H, vocabulary V, K
                 policy tokens, u bytes per activation (2 in bf16, 4 in float32):
                 R·S·L·34·H·u/2 without activation checkpointing (Korthikanti et al. 2022, with
                 memory-efficient attention: no s² term); R·S·(L·H·u + 34·H·u/2) with it (each
                 layer's input kept, one layer recomputed at a time); plus the policy tokens'
                 logits, 2·4·K·V (float32 log-softmax)
  weight sync    4·V·H             FSDP / ZeRO-3 gather the whole weights once per update for the
                                   sampler and the checkpoints one tensor at a time into host
                                   memory (4·P bytes of host RAM per process); the largest
                                   tensor, the embedding, passes through the GPU. None for DDP
  vLLM engine    gpu_memory_utilization × the device's memory, on the same GPU as the trainer
                 (one engine per process): 2·P of 16-bit weights and at least one row's KV cache
                 must fit in it; training gets the rest

S is the longest row the sampler allows (sampler_args.max_context, else the model's context),
K ≤ R·(max_steps·max_new_tokens). Estimates, not measurements: fragmentation, CUDA context
(~0.5 GB) and temporary buffers come on top; the verdict keeps 10% headroom.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

GIB = 2**30


@dataclass
class Layout:
    """What the accelerate config asks for."""

    kind: str = "NO"  # NO | MULTI_GPU | MULTI_CPU | FSDP | DEEPSPEED
    processes: int = 1
    machines: int = 1
    mixed_precision: str = "no"
    source: str = "one process (no accelerate config)"

    @property
    def sharded(self) -> bool:
        return self.kind in ("FSDP", "DEEPSPEED")

    @classmethod
    def read(cls, path: Path | None) -> Layout:
        if path is None:
            return cls()
        import yaml

        try:
            cfg = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ValueError(f"{path}: not a readable accelerate config ({e})") from None
        if not isinstance(cfg, dict) or "distributed_type" not in cfg:
            raise ValueError(f"{path}: not an accelerate config (no distributed_type)")
        return cls(str(cfg["distributed_type"]), int(cfg.get("num_processes", 1)), int(cfg.get("num_machines", 1)),
                   str(cfg.get("mixed_precision", "no")), str(path))  # fmt: skip


def count_parameters(model_dir: Path, lora: dict[str, Any] | None) -> tuple[int, int, dict[str, Any]]:
    """(all parameters, LoRA-trainable parameters, the config) without allocating any weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if not (Path(model_dir) / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} has no config.json: the dry run reads the model's architecture from it")
    config = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    from sgcd.lora import LoraSettings, wrap

    settings = LoraSettings(**(lora or {}))
    adapted = wrap(model, settings)
    trainable = sum(p.numel() for p in adapted.parameters() if p.requires_grad)
    return total, trainable, config.to_dict()


def estimate(cfg: Any, layout: Layout, model_dir: Path, device_gib: float) -> dict[str, Any]:
    """Per-device bytes for full fine-tuning and for LoRA, and the update's work."""
    total, lora_trainable, mc = count_parameters(model_dir, cfg.lora)
    text = mc.get("text_config", mc)
    hidden, layers, vocab = int(text["hidden_size"]), int(text["num_hidden_layers"]), int(text["vocab_size"])
    context = int(cfg.sampler_args.get("max_context") or text.get("max_position_embeddings") or 4096)
    shard = layout.processes * layout.machines if layout.sharded else 1
    unit = 2 if layout.mixed_precision in ("bf16", "fp16") else 4
    rows, row_len = cfg.micro_batch_rows, context
    policy_tokens = min(rows * row_len, rows * cfg.max_steps * cfg.max_new_tokens)
    per_layer = 34 * hidden * unit / 2  # bytes per token per layer
    tokens = rows * row_len
    acts = tokens * (unit * hidden * layers + per_layer) if cfg.gradient_checkpointing else tokens * per_layer * layers
    acts += 2 * 4 * policy_tokens * vocab
    copies = int(cfg.algo == "sdpo" and cfg.algo_config.get("teacher", "ema") == "ema") + int(cfg.kl_coef > 0)
    sampler_fraction = float(cfg.sampler_args.get("gpu_memory_utilization", 0.85))
    out: dict[str, Any] = {"user_model": cfg.user_model, "parameters": total, "context": context, "shard": shard, "layout": layout, "rows": rows,
                           "lora_source": "[train] lora" if cfg.lora else "r = 16 on every linear layer",
                           "device_gib": device_gib, "sampler_fraction": sampler_fraction, "columns": {}}  # fmt: skip
    for name, trainable in (("full", total), ("lora", lora_trainable)):
        parts = {
            "weights": 4 * total / shard,
            "gradients": 4 * trainable / shard,
            "optimizer": 8 * trainable / shard,
            "extra model copies": copies * 4 * total / shard,
            "activations (one micro-batch)": acts,
            "weight sync (largest gathered tensor)": 4 * vocab * hidden if layout.sharded else 0,
        }
        need = sum(parts.values())
        room = device_gib * GIB * (1 - sampler_fraction) * 0.9
        out["columns"][name] = {"trainable": trainable, "parts": parts, "need": need, "fits": need <= room,
                                "room": room}  # fmt: skip
    # The sampler's engine on the same device: its weights (16-bit) and the KV cache it needs.
    heads = int(text.get("num_attention_heads", 1))
    kv_per_token = 2 * layers * int(text.get("num_key_value_heads") or heads) * (hidden // heads) * 2
    engine = {"weights": 2 * total, "kv_row": kv_per_token * context,
              "kv_wave": kv_per_token * context * cfg.groups_per_update * cfg.group_size,
              "budget": sampler_fraction * device_gib * GIB}  # fmt: skip
    engine["fits"] = engine["weights"] + engine["kv_row"] <= engine["budget"]
    out["engine"] = engine
    out["rollouts"] = {"episodes trained on per update": cfg.groups_per_update * cfg.group_size,
                       "episodes sampled per update (at most)": cfg.max_groups_sampled * cfg.group_size,
                       "policy tokens per update (at most)": cfg.groups_per_update * cfg.group_size * cfg.max_steps
                       * cfg.max_new_tokens, "updates": cfg.updates}  # fmt: skip
    return out


def render(est: dict[str, Any]) -> str:
    """The estimate as a table a person reads (markdown-like, also fine on a terminal)."""
    lay: Layout = est["layout"]
    n = est["parameters"]
    lines = [f"model: {n / 1e9:.2f}B parameters" if n >= 1e9 else f"model: {n / 1e6:.1f}M parameters",
             f"rows up to {est['context']} tokens (sampler_args.max_context, else the model's context); "
             f"micro-batch of {est['rows']} row(s)",
             f"layout: {lay.kind}, {lay.processes * lay.machines} process(es) on {lay.machines} machine(s), "
             f"mixed precision {lay.mixed_precision} ({lay.source}); sharded over {est['shard']}",
             f"device: {est['device_gib']:.0f} GiB, of which the vLLM engine takes {est['sampler_fraction']:.0%} "
             "(sampler_args.gpu_memory_utilization)", "",
             f"| per device (GiB) | full fine-tuning | LoRA ({est['columns']['lora']['trainable'] / 1e6:.1f}M trainable: "
             f"{est['lora_source']}) |",
             "|---|---:|---:|"]  # fmt: skip
    full, lora = est["columns"]["full"], est["columns"]["lora"]
    for key in full["parts"]:
        lines.append(f"| {key} | {full['parts'][key] / GIB:.2f} | {lora['parts'][key] / GIB:.2f} |")
    lines.append(f"| **total** | **{full['need'] / GIB:.2f}** | **{lora['need'] / GIB:.2f}** |")
    lines.append(f"| room for training (90%) | {full['room'] / GIB:.2f} | {lora['room'] / GIB:.2f} |")
    ok = est["engine"]["fits"]
    lines.append(f"| fits (training and the engine) | {'yes' if full['fits'] and ok else 'NO'} | "
                 f"{'yes' if lora['fits'] and ok else 'NO'} |")
    lines.append("")
    eng = est["engine"]
    lines.append(f"vLLM engine per process: weights {eng['weights'] / GIB:.1f} GiB + KV cache of one full row "
                 f"{eng['kv_row'] / GIB:.2f} GiB within its {eng['budget'] / GIB:.1f} GiB: "
                 f"{'fits' if eng['fits'] else 'DOES NOT FIT (raise gpu_memory_utilization or use bigger GPUs)'}; "
                 f"a whole wave at full context would use {eng['kv_wave'] / GIB:.1f} GiB of KV cache (vLLM queues "
                 "what does not fit)")  # fmt: skip
    if est["user_model"]:
        lines.append("the simulated user's model (user_model) gets an engine of its own in every process, with the same "
                     "gpu_memory_utilization: not counted above; size it the same way")  # fmt: skip
    if lay.sharded:
        lines.append(f"host memory per process for the gathered weights: {4 * n / GIB:.1f} GiB")
    lines += [f"{k}: {v:,}" for k, v in est["rollouts"].items()]
    if not full["fits"]:
        hint = "LoRA ([train] lora = {...})" if lora["fits"] else "more devices, activation checkpointing or LoRA"
        lines.append(f"full fine-tuning does not fit this layout: try {hint}"
                     + ("" if lay.sharded else ", or shard with configs/accelerate/fsdp2-8gpu.yaml"))  # fmt: skip
    return "\n".join(lines)


def model_folder(model: str) -> Path:
    from harness.models import resolve_local_path

    return resolve_local_path(model[len("local/"):]) if model.startswith("local/") else Path(model)


def device_memory_gib(default: float) -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).total_memory / GIB
    return default

