"""`--processes N`: N local training processes started by torch's elastic agent (what `torchrun`
runs), joined by accelerate in each (gloo on CPU). A launch across GPUs or nodes uses
`accelerate launch --config_file configs/accelerate/...` instead; the trainer is the same.

The agent stops every process when one fails and reports the failing one; each process also dies
with this one (sgcd/distributed.py die_with_parent), so killing the command leaves no process
behind still writing into the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.distributed.elastic.multiprocessing.errors import record


class LaunchError(RuntimeError):
    """A process of a launch failed; the message names it."""


def run_processes(fn: Callable[..., Any], args: tuple[Any, ...], processes: int) -> Any:
    """fn(*args) in `processes` local processes; returns process 0's return value."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    saved = {k: os.environ.get(k) for k in ("SGCD_LAUNCHER_PID", "OMP_NUM_THREADS")}
    os.environ["SGCD_LAUNCHER_PID"] = str(os.getpid())
    # The machine's cores shared out (the trainer caps its torch threads the same way).
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    cfg = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=processes, run_id=uuid.uuid4().hex[:12],
                       rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.5,
                       start_method="spawn")  # fmt: skip
    try:
        results = elastic_launch(cfg, fn)(*args)
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        how = f"signal {failure.signal_name()}" if failure.exitcode < 0 else f"exit code {failure.exitcode}"
        detail = failure.message if isinstance(failure.message, str) else (failure.message or {}).get("message", "")
        detail = str(detail).strip().splitlines()[-1] if detail else "see its output above"
        raise LaunchError(f"process {rank} of {processes} failed ({how}): {detail}; the launch stopped the "
                          "others. Run the same command again to resume from the last checkpoint") from None  # fmt: skip
    finally:  # the processes inherited these; this one keeps its own
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return results[0]


@record
def train_worker(cfg: Any, out_dir: Path, progress: bool = True) -> int:
    """One process of a training launch: the number of updates it ran."""
    from sgcd.trainer import Trainer

    return len(Trainer(cfg, out_dir).run(progress=progress))
