"""From conversations to tensors: policy-token segments and the padded `TokenBatch`.

A trajectory is a list of agent turns, each (prompt_ids, completion_ids) exactly as the Policy
saw and sampled them. Consecutive turns are merged into one segment when the next prompt
extends the previous prompt + completion token for token (the usual case: the conversation
only grows); otherwise a new segment starts. In a segment the loss mask is 1 exactly on the
sampled completion tokens; prompt, tool-result, user and template tokens are 0.

Shapes: B = rows (segments), L = longest row. Per-row scalars are (B,).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, overload

import torch

from harness.hf_sampler import CACHE_ARG, broadcast_cache, plain_kv_layers


@dataclass
class Segment:
    """One row: token ids with a 0/1 policy mask, and which trajectory and turns it holds."""

    ids: list[int]
    mask: list[int]
    traj: int  # index of the trajectory in the batch
    turns: list[int] = field(default_factory=list)  # agent-turn indices in this row
    turn_spans: list[tuple[int, int]] = field(default_factory=list)  # [start, end) of each turn's completion
    logp: list[float] = field(default_factory=list)  # the sampler's log-prob of each policy token (0 elsewhere)


def segments_from_turns(turns: list[tuple[list[int], list[int]]], traj: int,
                        logprobs: list[list[float]] | None = None) -> list[Segment]:  # fmt: skip
    """Merge a trajectory's (prompt, completion) turns into as few rows as token identity allows;
    `logprobs` (one list per turn) are the log-probs the sampler returned for each completion."""
    rows: list[Segment] = []
    for t, (prompt, completion) in enumerate(turns):
        if not completion:
            continue
        cur = rows[-1] if rows else None
        if cur is not None and len(prompt) >= len(cur.ids) and prompt[: len(cur.ids)] == cur.ids:
            delta = prompt[len(cur.ids):]
            cur.ids += delta
            cur.mask += [0] * len(delta)
            cur.logp += [0.0] * len(delta)
        else:
            cur = Segment(ids=list(prompt), mask=[0] * len(prompt), traj=traj, logp=[0.0] * len(prompt))
            rows.append(cur)
        start = len(cur.ids)
        cur.ids += completion
        cur.mask += [1] * len(completion)
        lp = list(logprobs[t]) if logprobs is not None else []
        cur.logp += lp if len(lp) == len(completion) else [float("nan")] * len(completion)
        cur.turns.append(t)
        cur.turn_spans.append((start, len(cur.ids)))
    return rows


@dataclass
class TokenBatch:
    """Padded rows of one update.

    input_ids, attention_mask, loss_mask: (B, L). row_traj, group_ids: (B,) long.
    rewards, success: (T,) per trajectory (T trajectories); row_traj indexes them.
    meta: per-trajectory records (task id, messages, outcome) for algorithms that need text.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    loss_mask: torch.Tensor
    row_traj: torch.Tensor
    group_ids: torch.Tensor  # (T,) group of each trajectory
    rewards: torch.Tensor  # (T,)
    success: torch.Tensor  # (T,) bool
    segments: list[Segment]
    meta: list[dict[str, Any]] = field(default_factory=list)
    rollout_logp: torch.Tensor | None = None  # (B, L) the sampler's log-probs at policy tokens (NaN: not returned)
    # Whether this process's rows count (False: a replica of another process's group, kept so that
    # every process runs the same passes; weight 0). Set where the batch is built.
    counts: bool = True
    # Set by the trainer's update: its policy tokens and rows over every process (the
    # denominators of `share`).
    global_tokens: float = 0.0
    global_rows: float = 0.0

    @property
    def num_policy_tokens(self) -> int:
        return int(self.loss_mask.sum().item())

    def share(self, rows: torch.Tensor, loss_agg: str) -> float:
        """Micro-batch `rows`' share of the update's aggregation: its policy tokens (token-mean) or
        rows with any (seq-mean-token-mean) over the update's, all processes' when the trainer has
        set them. The trainer weights each micro-batch's loss terms by it (sgcd/algorithms.py
        weigh), so the shares sum to 1."""
        m = self.loss_mask
        if loss_agg == "token-mean":
            return float(m[rows].sum()) / (self.global_tokens or float(m.sum().clamp(min=1)))
        return float((m[rows].sum(-1) > 0).sum()) / (self.global_rows or float((m.sum(-1) > 0).sum().clamp(min=1)))


def collate(
    segments: list[Segment],
    group_ids: list[int],
    rewards: list[float],
    success: list[bool],
    pad_id: int,
    meta: list[dict[str, Any]] | None = None,
) -> TokenBatch:
    """Right-pad segments into a TokenBatch."""
    if not segments:
        raise ValueError("no policy tokens to train on")
    width = max(len(s.ids) for s in segments)
    ids = torch.full((len(segments), width), pad_id, dtype=torch.long)
    att = torch.zeros((len(segments), width), dtype=torch.long)
    mask = torch.zeros((len(segments), width), dtype=torch.float32)
    logp = torch.zeros((len(segments), width), dtype=torch.float32)
    for i, s in enumerate(segments):
        n = len(s.ids)
        ids[i, :n] = torch.tensor(s.ids)
        att[i, :n] = 1
        mask[i, :n] = torch.tensor(s.mask, dtype=torch.float32)
        logp[i, :n] = torch.tensor(s.logp if len(s.logp) == n else [float("nan")] * n, dtype=torch.float32)
    return TokenBatch(
        input_ids=ids,
        attention_mask=att,
        loss_mask=mask,
        row_traj=torch.tensor([s.traj for s in segments], dtype=torch.long),
        group_ids=torch.tensor(group_ids, dtype=torch.long),
        rewards=torch.tensor(rewards, dtype=torch.float32),
        success=torch.tensor(success, dtype=torch.bool),
        segments=segments,
        meta=meta or [],
        rollout_logp=logp,
    )


def _inner(model: Any) -> Any:
    """The transformers model inside a DDP wrapper and/or a peft adapter: its forward signature
    and device are the ones to read. A training pass still goes through the wrappers (gradient
    all-reduce; the adapter passes every keyword on to it)."""
    model = getattr(model, "module", model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _accepts_logits_to_keep(model: Any) -> bool:
    import inspect

    return "logits_to_keep" in inspect.signature(_inner(model).forward).parameters


def _sharded(model: Any) -> bool:
    """Weights split over processes (FSDP2, DeepSpeed ZeRO-3): every forward call is a
    collective, so every process must make the same number of them."""
    from torch.distributed.fsdp import FSDPModule

    inner = _inner(model)
    return isinstance(inner, FSDPModule) or hasattr(next(inner.parameters()), "ds_id")


def position_logits(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    score_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The logits predicting each position t of `score_mask` (B, L) (t ≥ 1, real tokens only):
    -> (logits (N, V) in the row-major order of `where`, where (B, L) bool: the positions kept).

    Only those positions' columns are projected onto the vocabulary (the model's `logits_to_keep`
    with the columns any row keeps, where the model takes it; `_keep_rows` then picks each row's): with a 49k vocabulary the full-sequence projection
    and log-softmax, not the transformer, dominated a CPU update. Columns past the longest real
    row are padding (rows are right-padded) and are not run at all.
    """
    B = input_ids.shape[0]
    where = score_mask.bool() & attention_mask.bool()
    where[:, 0] = False  # position 0 has no prediction
    width = max(int(attention_mask.sum(-1).max()), 1)
    dev = _inner(model).device  # batches live on the CPU; results come back there (differentiably)
    keep = torch.zeros((B, width), dtype=torch.bool)
    keep[:, :-1] = where[:, 1:width]  # the logits at t - 1 predict the token at t
    kwargs = {"input_ids": input_ids[:, :width].to(dev), "attention_mask": attention_mask[:, :width].to(dev)}
    if not _accepts_logits_to_keep(model):
        return model(**kwargs).logits[keep.to(dev)], where
    # The shared-prefix pass runs the model twice or once depending on the rows: not when sharded.
    shared = 0 if _sharded(model) else _shared_prefix(input_ids[:, :width], attention_mask[:, :width], keep)
    logits = None
    if shared:
        logits = _forward_with_shared_prefix(model, kwargs["input_ids"], kwargs["attention_mask"], keep.to(dev), shared)
    if logits is None:
        cols = keep.any(0).nonzero()[:, 0]
        logits = _keep_rows(model(**kwargs, logits_to_keep=cols.to(dev)).logits, keep, cols)
    return logits, where  # (N, V) in the row-major order of `keep`


def _keep_rows(logits: torch.Tensor, keep: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """(B, C, V) logits at columns `cols` -> (N, V) at the (row, column) pairs `keep` (B, L)
    marks, in row-major order. transformers takes `logits_to_keep` as the same columns for every
    row (a per-row boolean mask only in later releases), so the union is run and each row's kept."""
    return logits[keep[:, cols].to(logits.device)]


MIN_SHARED_PREFIX = 16


def _shared_prefix(input_ids: torch.Tensor, attention_mask: torch.Tensor, keep: torch.Tensor) -> int:
    """Length P of the token prefix every row shares (a group's siblings share their whole first
    prompt), capped so that no kept logit lies inside it; 0 when sharing is not worth it."""
    if input_ids.shape[0] < 2:
        return 0
    same = ((input_ids == input_ids[:1]) & attention_mask.bool()).all(0).long().cumprod(0)
    prefix = int(same.sum())
    first_kept = keep.any(0).nonzero()
    if len(first_kept):
        prefix = min(prefix, int(first_kept[0]))
    return prefix if prefix >= MIN_SHARED_PREFIX else 0


def _forward_with_shared_prefix(model: Any, ids: torch.Tensor, att: torch.Tensor, keep: torch.Tensor,
                                prefix: int) -> torch.Tensor | None:  # fmt: skip
    """The kept logits of a forward pass over rows that share their first `prefix` tokens: the
    prefix runs once (batch 1) and its keys/values are broadcast to every row for the rest.
    Gradients flow through the broadcast (they sum over the rows), so values and gradients are
    those of the plain pass; with a group's 250-token prompt and short completions this runs
    about 2.5x fewer tokens. Written by hand: transformers has no prefix-sharing forward.
    None when the model's cache is not plain per-layer keys/values (sliding windows, a cache
    switched off): the caller then runs the plain pass."""
    from transformers import DynamicCache

    cache = DynamicCache()
    model(input_ids=ids[:1, :prefix], attention_mask=att[:1, :prefix], **{CACHE_ARG: cache}, use_cache=True,
          logits_to_keep=1)  # fmt: skip
    if not plain_kv_layers(cache) or cache.get_seq_length() != prefix:
        return None
    rest = keep[:, prefix:]
    cols = rest.any(0).nonzero()[:, 0]
    out = model(input_ids=ids[:, prefix:], attention_mask=att, **{CACHE_ARG: broadcast_cache(cache, ids.shape[0])},
                use_cache=True, logits_to_keep=cols)  # fmt: skip
    return _keep_rows(out.logits, rest, cols)


# token_logprobs' result follows its flags: logprobs alone, or a tuple with entropy and/or logits.
@overload
def token_logprobs(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   score_mask: torch.Tensor | None = None, with_entropy: Literal[False] = False,
                   return_logits: Literal[False] = False) -> torch.Tensor: ...  # fmt: skip
@overload
def token_logprobs(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   score_mask: torch.Tensor | None = None, with_entropy: Literal[False] = False, *,
                   return_logits: Literal[True]) -> tuple[torch.Tensor, torch.Tensor]: ...  # fmt: skip
@overload
def token_logprobs(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   score_mask: torch.Tensor | None = None, *, with_entropy: Literal[True],
                   return_logits: Literal[False] = False) -> tuple[torch.Tensor, torch.Tensor]: ...  # fmt: skip
@overload
def token_logprobs(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   score_mask: torch.Tensor | None = None, *, with_entropy: Literal[True],
                   return_logits: Literal[True]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...  # fmt: skip
def token_logprobs(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   score_mask: torch.Tensor | None = None, with_entropy: bool = False,
                   return_logits: bool = False) -> torch.Tensor | tuple[torch.Tensor, ...]:  # fmt: skip
    """log π(x_t | x_<t) at the positions t of `score_mask`, placed at t; 0 at every other position.

    input_ids, attention_mask: (B, L); score_mask: (B, L) 0/1 or bool, the positions t ≥ 1 to
    score (default: every real token after the first; training passes the loss mask).
    -> logprobs (B, L) [, entropy (B, L)] [, logits (N, V): the logits predicting each of the N
    scored positions, in row-major order] — see `position_logits`.
    """
    logits, where = position_logits(model, input_ids, attention_mask,
                                    attention_mask if score_mask is None else score_mask)  # fmt: skip
    logp_all = torch.log_softmax(logits.float(), dim=-1)
    at = where.nonzero(as_tuple=True)
    targets = input_ids[at].to(logp_all.device)
    zeros = torch.zeros(input_ids.shape, dtype=logp_all.dtype)
    out = [zeros.index_put(at, logp_all.gather(-1, targets[:, None])[:, 0].cpu())]
    if with_entropy:
        out.append(zeros.index_put(at, -(logp_all.exp() * logp_all).sum(-1).cpu()))
    if return_logits:
        out.append(logits.cpu())
    return out[0] if len(out) == 1 else tuple(out)


def logprobs_no_grad(model: Any, batch: TokenBatch | None, chunks: list[torch.Tensor | None],
                     pad_id: int = 0) -> torch.Tensor | None:  # fmt: skip
    """token_logprobs of `model` over the batch's micro-batches `chunks` (row indices), without
    gradients: (B, L). A None chunk is an idle pass (sharded weights: every process makes as many
    passes, sgcd/distributed.py); None when there are no rows."""
    from sgcd.distributed import idle_forward

    parts = []
    with torch.no_grad():
        for c in chunks:
            if c is None:
                idle_forward(model, pad_id)
            else:
                assert batch is not None
                parts.append(token_logprobs(model, batch.input_ids[c], batch.attention_mask[c], batch.loss_mask[c]))
    return torch.cat(parts) if parts else None
