"""The teacher pass: the same policy, given a different prompt, scored on the student's own tokens.

For each trajectory, `teacher_rows` re-renders every agent turn's prompt with a teacher system
prompt (SGCD: the clean prompt plus the credit reference; SDPO: a reprompt with a sibling's
solution or feedback) and appends the student's sampled completion ids unchanged. The rows are
merged exactly like the student's (sgcd/tokens.py), and `align` maps each student policy token
to its position in the teacher rows, so both passes score the very same response tokens.
With an identical system prompt the teacher rows equal the student rows token for token.

Shapes: student batch rows (B, L); teacher rows (B', L'); aligned outputs (B, L) (zeros off mask).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from sgcd.tokens import Segment, TokenBatch, collate, segments_from_turns


@dataclass
class TeacherRows:
    batch: TokenBatch  # the teacher's padded rows (loss_mask marks the same completion tokens)
    index: torch.Tensor  # (N, 4) long: student row, student pos, teacher row, teacher pos


def teacher_rows(policy: Any, batch: TokenBatch, system_for: Callable[[int], str | None]) -> TeacherRows:
    """Teacher rows for every trajectory; `system_for(traj)` gives its teacher system prompt
    (None: the student's own prompt)."""
    segments: list[Segment] = []
    pairs = []  # (student row, student span start, teacher row, teacher span start, length)
    by_traj: dict[int, list[int]] = {}
    for r, seg in enumerate(batch.segments):
        by_traj.setdefault(seg.traj, []).append(r)
    for traj, rows in by_traj.items():
        res = batch.meta[traj]["result"]
        system = system_for(traj)
        turns = []
        for t, trace in enumerate(res.traces):
            if system is None:
                prompt = trace["prompt_ids"]
            else:
                prompt = policy.render(system, res.tools, res.messages[: res.turn_message_index[t]])
            turns.append((prompt, trace["completion_ids"]))
        t_rows = segments_from_turns(turns, traj)
        t_span = {t: (len(segments) + i, span[0]) for i, s in enumerate(t_rows) for t, span in zip(s.turns, s.turn_spans, strict=True)}
        segments += t_rows
        for r in rows:
            seg = batch.segments[r]
            for t, (start, end) in zip(seg.turns, seg.turn_spans, strict=True):
                tr, tstart = t_span[t]
                pairs.append((r, start, tr, tstart, end - start))
    pad = policy.tokenizer.pad_token_id or 0
    n = len(batch.rewards)
    tb = collate(segments, batch.group_ids.tolist(), batch.rewards.tolist(), batch.success.tolist(), pad)
    idx = [(r, s + k, tr, ts + k) for r, s, tr, ts, ln in pairs for k in range(ln)]
    assert len(tb.rewards) == n
    return TeacherRows(tb, torch.tensor(idx, dtype=torch.long).reshape(-1, 4))


def align(values: torch.Tensor, rows: TeacherRows, shape: tuple[int, int]) -> torch.Tensor:
    """Teacher per-position values (B', L') -> the student's positions (B, L); 0 elsewhere."""
    out = torch.zeros(shape, dtype=values.dtype)
    i = rows.index
    out[i[:, 0], i[:, 1]] = values[i[:, 2], i[:, 3]]
    return out


def teacher_logprobs(model: Any, rows: TeacherRows, micro_rows: int = 4, dist: Any = None) -> torch.Tensor:
    """log π_T(y_t | teacher prefix) at the teacher rows' policy tokens (0 elsewhere): (B', L').
    No gradient. With sharded weights (`dist`) every process makes as many forward calls."""
    from sgcd.distributed import Dist
    from sgcd.tokens import logprobs_no_grad

    dist = dist or Dist()
    chunks = dist.micro_batches(rows.batch.input_ids.shape[0], micro_rows, pad=dist.sharded)
    out = logprobs_no_grad(model, rows.batch, chunks)
    assert out is not None, "teacher rows are built for at least one trajectory"
    return out
