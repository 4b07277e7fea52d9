"""Several training processes: who does which share of an update, and the few collectives the
trainer needs. The engine is Hugging Face accelerate (DDP, FSDP2, DeepSpeed ZeRO-3, one or many
nodes: whatever `accelerate launch` or `torchrun` set up); this module only decides the split.

The split keeps every algorithm's maths unchanged:
  - Every process draws the same tasks and seeds (the run's seed and the step, never the rank);
    process r samples the groups r, r + N, r + 2N, ... of each wave, whole (a group never splits).
  - Dynamic sampling decides on the gathered outcomes, so the kept groups and the counters are
    those of one process; the kept groups are then dealt out again (kept[r::N]) for the update.
  - Loss aggregation is global: each micro-batch is weighted by its share of all processes'
    policy tokens (or rows), times N because DDP averages gradients over processes. N processes
    then take the step one process would take on the same groups.
  - Under a sharded engine (FSDP, ZeRO-3) every forward pass is a collective, so every process
    runs the same number of micro-batches: `micro_batches` pads the shorter lists with idle ones.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import warnings
from dataclasses import dataclass
from typing import Any

import torch


def launched() -> bool:
    """Started by torchrun or `accelerate launch` (one of several processes, or accelerate's launch
    of one, which sets only its own settings, e.g. mixed precision)."""
    env = os.environ
    return ("LOCAL_RANK" in env and "WORLD_SIZE" in env) or "ACCELERATE_MIXED_PRECISION" in env


def die_with_parent() -> None:
    """Linux: this process gets SIGKILL when its launcher dies, even by SIGKILL (no orphaned rank
    keeps writing into the run after the launch is gone)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: the launcher's own clean-up is all there is
        return
    launcher = os.environ.get("SGCD_LAUNCHER_PID")  # set by `--processes N` (sgcd/launch.py)
    if launcher and os.getppid() != int(launcher):
        os._exit(1)  # the launcher died before this process could ask to follow it


@dataclass
class Dist:
    """This process's place in the launch. `accelerator` is None for a plain single process."""

    rank: int = 0
    world: int = 1
    accelerator: Any = None

    @classmethod
    def start(cls, cpu: bool | None = None) -> Dist:
        """One Accelerator per process (it joins the launch's process group); a plain single
        process when not launched."""
        if not launched():
            return cls()
        die_with_parent()
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        check_machine()
        # accelerate passes `broadcast_buffers`, which this torch calls deprecated; it is the one that
        # also skips the buffer sync at start, which is harmless here (every process loads the same).
        warnings.filterwarnings("ignore", message=r"`broadcast_buffers` is deprecated", category=FutureWarning)
        warnings.filterwarnings("ignore", message=r"OMP_NUM_THREADS/MKL_NUM_THREADS unset", category=UserWarning)
        # broadcast_buffers off: DDP would otherwise broadcast buffers on every forward call, a
        # collective whose count differs between processes (the shared-prefix pass calls twice).
        acc = Accelerator(cpu=bool(cpu) if cpu is not None else not torch.cuda.is_available(),
                          kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)])  # fmt: skip
        return cls(acc.process_index, acc.num_processes, acc)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed_type(self) -> str:
        return "NO" if self.accelerator is None else str(self.accelerator.distributed_type).split(".")[-1]

    @property
    def sharded(self) -> bool:
        """Weights split over processes (every forward pass is a collective)."""
        return self.distributed_type in ("FSDP", "DEEPSPEED")

    @property
    def device(self) -> torch.device:
        return torch.device("cpu") if self.accelerator is None else self.accelerator.device

    # ------------------------------------------------------------------ collectives

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over processes (float64, so counts stay exact)."""
        if self.world == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)  # NCCL reduces GPU tensors only
        torch.distributed.all_reduce(t)
        return t.tolist()

    def max(self, value: int) -> int:
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.int64, device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return int(t.item())

    def gather(self, obj: Any) -> list[Any]:
        """Every process's `obj`, in rank order, on every process."""
        if self.world == 1:
            return [obj]
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    # ------------------------------------------------------------------ the split

    def mine(self, items: list[Any]) -> list[Any]:
        """This process's share of a list drawn the same on every process: items r, r + N, ..."""
        return items[self.rank :: self.world]

    def micro_batches(self, n_rows: int, size: int, pad: bool) -> list[torch.Tensor | None]:
        """Row indices of this process's micro-batches; with `pad`, padded with None (an idle pass:
        `idle_forward`) to the longest list over processes. Pad where the passes are collectives:
        gradient passes under any launch, every pass when the weights are sharded."""
        chunks: list[torch.Tensor | None] = list(torch.arange(n_rows).split(size)) if n_rows else []
        if pad and self.world > 1:
            chunks += [None] * (self.max(len(chunks)) - len(chunks))
        return chunks

    # ------------------------------------------------------------------ the optimizer step

    def no_sync(self, model: Any, last: bool) -> contextlib.AbstractContextManager:
        """Gradients accumulate locally until the last micro-batch, whose backward all-reduces them."""
        if self.accelerator is None or last:
            return contextlib.nullcontext()
        return self.accelerator.no_sync(model)

    def backward(self, loss: torch.Tensor) -> None:
        if self.accelerator is None:
            loss.backward()
        else:
            self.accelerator.backward(loss)

    def clip_grad_norm(self, model: Any, max_norm: float) -> torch.Tensor:
        if self.accelerator is None:
            return torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        norm = self.accelerator.clip_grad_norm_(model.parameters(), max_norm)
        return norm if isinstance(norm, torch.Tensor) else torch.tensor(float(norm))

    def mean_over(self, stats: dict[str, float], weight: float) -> dict[str, float]:
        """Weighted mean of each metric over processes (a process's weight: its policy tokens);
        keys follow the main process's order, a process lacking a key counts as weight 0 for it."""
        if self.world == 1:
            return dict(stats)
        per = self.gather((stats, weight))
        keys = list(dict.fromkeys(k for s, _ in per for k in s))
        out = {}
        for k in keys:
            pairs = [(s[k], w) for s, w in per if k in s and s[k] is not None]
            total = sum(w for _, w in pairs)
            out[k] = sum(v * w for v, w in pairs) / total if total else (pairs[0][0] if pairs else None)
        return out


def idle_forward(model: Any, pad_id: int, grad: bool = False) -> None:
    """A forward pass on one pad token whose result is discarded (with `grad`, a backward of 0):
    the collectives of a sharded model, or DDP's gradient all-reduce, without any rows."""
    ids = torch.full((1, 1), pad_id, dtype=torch.long, device=next(model.parameters()).device)
    with torch.set_grad_enabled(grad):
        out = model(input_ids=ids).logits
        if grad:
            (out.float().sum() * 0.0).backward()


class MachineMismatch(ValueError):
    """The launch's accelerate config does not fit this machine."""


def check_machine() -> None:
    """A launch whose accelerate config asks for what this machine lacks: a clear error before
    anything loads (not a failed NCCL initialisation, nor a silent fall-back to something else:
    on a machine without GPUs accelerate would run an FSDP config unsharded)."""
    env = os.environ
    local = int(env.get("LOCAL_WORLD_SIZE", "1"))
    asked = [name for key, name in (("ACCELERATE_USE_FSDP", "FSDP"), ("ACCELERATE_USE_DEEPSPEED", "DeepSpeed"))
             if env.get(key, "false").lower() == "true"]  # fmt: skip
    if torch.cuda.is_available():
        if env.get("ACCELERATE_USE_CPU", "false").lower() != "true" and local > torch.cuda.device_count():
            raise MachineMismatch(f"this launch starts {local} processes on this machine but it has "
                               f"{torch.cuda.device_count()} GPU(s); launch at most one process per GPU "
                               "(num_processes in the accelerate config)")  # fmt: skip
        return
    fix = "use configs/accelerate/cpu-2proc.yaml or `--processes N` on a machine without GPUs"
    if asked:
        raise MachineMismatch(f"the accelerate config asks for {asked[0]}, which accelerate runs on GPUs only, and this "
                           f"machine has none; {fix}")  # fmt: skip
    if env.get("ACCELERATE_MIXED_PRECISION", "no") in ("bf16", "fp16"):
        raise MachineMismatch(f"the accelerate config asks for {env['ACCELERATE_MIXED_PRECISION']} mixed precision, "
                           f"a GPU setting, and this machine has no GPU; {fix}")  # fmt: skip
    if local > (os.cpu_count() or 1):
        raise MachineMismatch(f"this launch starts {local} processes on a machine with {os.cpu_count()} CPU cores and "
                           f"no GPU (a GPU config?); {fix}")  # fmt: skip


def full_state(model: Any) -> dict[str, torch.Tensor] | None:
    """Every weight whole, on every process, in host memory, under the plain module's names: a
    collective when the weights are sharded (FSDP2: each DTensor gathered; ZeRO-3: each parameter
    gathered), one tensor at a time so the GPU holds one gathered tensor at most. None when they
    are not sharded (the module's own state_dict is whole)."""
    from torch.distributed.fsdp import FSDPModule

    inner = getattr(model, "module", model)
    if isinstance(inner, FSDPModule):
        return {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().cpu()
                for k, v in inner.state_dict().items()}  # fmt: skip
    params = list(inner.parameters())
    if params and hasattr(params[0], "ds_id"):  # DeepSpeed ZeRO-3 (untested here: needs GPUs)
        import deepspeed

        out = {}
        for name, p in inner.named_parameters():
            with deepspeed.zero.GatheredParameters([p], modifier_rank=None):
                out[name] = p.detach().cpu().clone()
        out.update({name: b.detach().cpu() for name, b in inner.named_buffers() if name in inner.state_dict()})
        return out
    return None
