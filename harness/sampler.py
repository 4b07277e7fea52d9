"""The sampler seam: every token the project generates comes from a `Sampler`.

Prompts are rendered before they reach a sampler (`harness.toolcalls.render_ids`: the project's
one chat format, the same token ids in training, evaluation and every backend); a sampler
only continues rows of token ids. Two backends:

- `vllm` (harness/vllm_sampler.py): vLLM's engine, in this process; the default wherever vLLM
  imports and supports the model.
- `hf` (harness/hf_sampler.py): transformers `generate` with the project's KV-cache store; for
  models vLLM cannot load, and the fallback, which says so (`fallback`) in every manifest.

`open_sampler` picks the backend: `auto` takes vLLM when it can and falls back to `hf` with a
one-line warning naming the reason; an unknown backend is an error.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from harness.records import Sampling

log = logging.getLogger(__name__)

BACKENDS = ("auto", "vllm", "hf")
DTYPES = ("float32", "bfloat16", "float16")
Finish = Literal["stop", "max_tokens", "model_length"]


@dataclass(frozen=True)
class SampleRequest:
    """One row to continue: its prompt ids and how to sample it, as the one sampling record
    every model call uses (harness.records.Sampling: temperature, top_p, max_tokens, and `seed`,
    the row's own random stream, None: drawn at random); `stop_ids` end the row (the end token
    is kept)."""

    prompt_ids: tuple[int, ...]
    sampling: Sampling
    stop_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.sampling.max_tokens is None or self.sampling.max_tokens < 1:
            raise ValueError(f"a sample request needs max_tokens >= 1; got {self.sampling.max_tokens!r}")

    @property
    def max_tokens(self) -> int:
        return int(self.sampling.max_tokens or 0)


@dataclass
class Completion:
    """A row's sampled ids, log π(token | prefix) of each at temperature 1 (the raw model
    distribution, whatever the sampling temperature), and how the row ended."""

    ids: list[int]
    logprobs: list[float]
    finish: Finish
    reused_prefix: int = 0  # prompt tokens served from a cache (informational)


class Sampler(Protocol):
    backend: str  # "vllm" | "hf"
    dtype: str
    fallback: str | None  # why this is not the backend that was asked for (None: it is)

    def sample(self, requests: list[SampleRequest]) -> list[Completion]: ...

    def load_weights(self, named_tensors: Callable[[], Iterable[tuple[str, Any]]]) -> None:
        """From now on sample from these weights (a callable giving (name, tensor) pairs, read
        again whenever the weights must be pushed anew)."""
        ...

    def clear_cache(self) -> None: ...


class SamplerError(RuntimeError):
    """The engine failed while generating (not the model's output being bad)."""


@dataclass
class SamplerOptions:
    """How a local checkpoint is served: `backend`, `dtype`, and the vLLM engine's sizing
    (`kv_cache_gib` on a CPU, `gpu_memory_utilization` and `tensor_parallel_size` on GPUs)."""

    backend: str = "auto"
    dtype: str | None = None  # None: float32 on a CPU, bfloat16 on a GPU
    max_context: int | None = None
    kv_cache_gib: float = 2.0
    gpu_memory_utilization: float = 0.85
    tensor_parallel_size: int = 1
    enforce_eager: bool = True  # on CPU eager decodes within ~10% of compiled at batch ≥ 8 and starts in seconds
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown sampler backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        if self.dtype is not None and self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; choose one of {', '.join(DTYPES)}")

    def resolved_dtype(self) -> str:
        if self.dtype:
            return self.dtype
        import torch

        return "bfloat16" if torch.cuda.is_available() else "float32"


# vLLM 0.32's CPU attention kernels (CPUAttentionBackend.get_supported_head_sizes): checked from
# the model's config before vLLM is imported (importing its CPU backend alone takes ~18 s here),
# so a model it cannot run falls back at once.
CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)


def vllm_unsupported(path: Path) -> str | None:
    """Why vLLM cannot serve this folder here, or None."""
    if importlib.util.find_spec("vllm") is None:
        return "vllm is not installed"
    try:
        cfg = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError) as e:
        return f"unreadable config.json ({e})"
    import torch

    if not torch.cuda.is_available():
        heads = cfg.get("num_attention_heads") or 1
        head = cfg.get("head_dim") or (cfg.get("hidden_size", 0) // heads)
        if head not in CPU_HEAD_SIZES:
            return f"vLLM's CPU attention has no kernel for head size {head}"
    return None


def open_sampler(path: str | Path, options: SamplerOptions, eos_ids: list[int], pad_id: int,
                 hf_model: Callable[[], Any]) -> Sampler:  # fmt: skip
    """The sampler for a local folder. `hf_model` builds (or returns) the transformers model,
    called only when the `hf` backend serves it."""
    from harness.hf_sampler import HFSampler

    dtype = options.resolved_dtype()
    reason = None
    if options.backend in ("auto", "vllm"):
        reason = vllm_unsupported(Path(path))
        if reason is None:
            from harness.vllm_sampler import VLLMSampler

            try:
                return VLLMSampler(Path(path), options, dtype)
            except Exception as e:  # the engine would not start on this model: the fallback serves it
                reason = f"vLLM could not load it: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        log.warning("%s: sampling with transformers (hf), not vLLM: %s", path, reason)
    model = hf_model()
    return HFSampler(model, eos_ids, pad_id, options.max_context, dtype=str(model.dtype).removeprefix("torch."),
                     fallback=reason)  # fmt: skip
