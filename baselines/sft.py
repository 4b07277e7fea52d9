"""Supervised warm start on scripted solutions (`sgcd-bench train --algo sft`).

A tiny random model never emits a well-formed tool call, so RL has nothing to reinforce. This
algorithm fine-tunes on the benchmark's scripted agent turns with the same Policy rendering
(chat template + tool-call syntax) the rollouts use, minimizing the negative log-likelihood of
the assistant tokens only: loss = −Σ_t m_t log π(y_t) / Σ_t m_t.

Its rows are not rollouts: `collect` draws `sft_examples_per_update` scripted conversations per
update (the same draw on every process, each process taking its share), and that key, not
groups_per_update, is the update's budget.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from harness.records import EpisodeStart, Message
from sgcd.algorithms import Algorithm, Term
from sgcd.tokens import TokenBatch, collate, segments_from_turns


def scripted_turns(policy: Any, start: EpisodeStart, messages: list[Message]) -> list[tuple[list[int], list[int]]]:
    """(prompt, completion) token ids for each assistant message of a scripted conversation."""
    from harness.toolcalls import to_template_messages

    tok = policy.tokenizer
    eos = policy.eos_ids[0] if "<|im_end|>" not in tok.get_vocab() else tok.convert_tokens_to_ids("<|im_end|>")
    turns = []
    for i, m in enumerate(messages):
        if m.role != "assistant":
            continue
        prompt = policy.render(start.system_prompt, start.tools, messages[:i])
        content = to_template_messages("", [], [m])[1]["content"]
        turns.append((prompt, tok.encode(content, add_special_tokens=False) + [eos]))
    return turns


class SFT(Algorithm):
    name = "sft"
    budget_key = "sft_examples_per_update"

    @dataclass
    class Config:
        pass

    def collect(self, source: Any, step: int) -> tuple[TokenBatch, None]:
        """The update's scripted batch: drawn with the step's seed, this process's share of it."""
        cfg = source.cfg
        rng = random.Random(f"{cfg.seed}-{step}")
        return self.scripted_batch(source.bench, source.task_ids, rng, getattr(cfg, self.budget_key),
                                   share=source.dist.mine), None  # fmt: skip

    def scripted_batch(self, bench: Any, task_ids: list[str], rng: random.Random, n: int,
                       share: Callable[[list[Any]], list[Any]] = list) -> TokenBatch:  # fmt: skip
        """The update's `n` scripted conversations, drawn the same on every process; `share`
        picks this process's part of them (sgcd/distributed.py Dist.mine)."""
        if not bench.has_scripted:
            raise ValueError(f"benchmark {bench.name!r} has no scripted solutions for a supervised warm start")
        drawn = share([rng.choice(task_ids) for _ in range(n)])
        n = len(drawn)
        segments = []
        for traj, task_id in enumerate(drawn):
            start = bench.episode(task_id).reset()
            msgs = bench.scripted_messages(task_id)  # the whole conversation, opening messages included
            if msgs[: len(start.messages)] != list(start.messages):
                raise ValueError(f"{bench.name}: scripted conversation of {task_id} does not start as the episode does")
            segments += segments_from_turns(scripted_turns(self.ctx.policy, start, msgs), traj)
        pad = self.ctx.policy.tokenizer.pad_token_id or 0
        return collate(segments, list(range(n)), [1.0] * n, [True] * n, pad)

    def loss(self, batch: TokenBatch, logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor | None,
             adv_tok: torch.Tensor, rows: torch.Tensor, logits: torch.Tensor | None = None,
             work: Any = None) -> tuple[list[Term], dict[str, float]]:  # fmt: skip
        """The micro-batch's token-mean NLL, weighted like the PG loss (by loss_agg)."""
        mask = batch.loss_mask[rows]
        nll = -(logp * mask).sum() / mask.sum().clamp(min=1)
        return [Term(nll, over=self.ctx.pg.loss_agg, metric="nll")], {}
