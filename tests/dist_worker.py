"""Process bodies for tests/test_distributed.py (a spawned process imports them by name)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any


def fixed_update(cfg: Any, out_dir: Path, groups_path: Path) -> dict[str, Any]:
    """One update on pre-recorded groups, dealt out as the trainer deals kept groups
    (kept[r::N]); the checkpoint is written as step-1."""
    from sgcd.trainer import Trainer

    tr = Trainer(cfg, out_dir)
    tr.algo.ctx.step = 1
    kept = pickle.loads(Path(groups_path).read_bytes())
    batch = tr._collate(tr.dist.mine(kept))
    stats = tr.update(batch)
    tr.save_checkpoint(1)
    return stats
