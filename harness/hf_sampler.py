"""The `hf` sampler: transformers `generate` over the project's own KV-cache store.

The fallback behind the sampler seam (harness/sampler.py) for models vLLM cannot load, and the
engine of the trainer's own process where vLLM is absent. It shares the trainer's model object,
so it always samples from the live weights.

The KV cache is reused across turns: a conversation only grows, so the longest cached prefix of
the new prompt's token ids is kept and only the new tokens are run.

Several rows decode together (a group's siblings, concurrent eval samples), each from its own
cached prefix. Sampling draws every row from its own seeded stream (`RowSeededGumbel`), so a
reply never depends on what shares its batch.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from harness.sampler import Completion, Finish, SampleRequest


def _cache_arg() -> str:
    """The models' name for the KV cache argument: `past_key_values`, renamed `cache` by later
    transformers 5 releases (read from a model's forward signature, not guessed from a version)."""
    import inspect

    from transformers import LlamaForCausalLM

    return "cache" if "cache" in inspect.signature(LlamaForCausalLM.forward).parameters else "past_key_values"


CACHE_ARG = _cache_arg()


class _NotBatchable(Exception):
    """The model's KV cache is not the plain per-layer key/value kind that can be padded into a batch."""


def plain_kv_layers(cache: Any) -> bool:
    """True for a cache of plain per-layer key/value tensors (no sliding window, nothing offloaded):
    the only kind that may be padded, broadcast or sliced along the batch and sequence dims."""
    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(x).__name__ == "DynamicLayer" and getattr(x, "keys", None) is not None for x in layers)


def broadcast_cache(cache: Any, rows: int) -> Any:
    """A batch-1 plain cache seen by `rows` rows (a broadcast view; a model's update copies it)."""
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=[(x.keys.expand(rows, -1, -1, -1), x.values.expand(rows, -1, -1, -1))
                                        for x in cache.layers])  # fmt: skip


class RowSeededGumbel:
    """A logits processor that makes greedy decoding sample, each row from its own seeded stream.

    argmax(scores + Gumbel noise) is a draw from softmax(scores) (the Gumbel-max trick); with the
    noise of row i drawn from generator i, a row's tokens never depend on which other rows share
    its batch, so batched and one-at-a-time generation agree. `generate`'s own sampler draws every
    row from one global stream, hence this by hand."""

    def __init__(self, seeds: list[int]):
        self.seeds = seeds
        self.generators: list[Any] | None = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self.generators is None:
            self.generators = [torch.Generator(device=scores.device).manual_seed(s % 2**63) for s in self.seeds]
        u = torch.stack([torch.rand(scores.shape[-1], generator=g, device=scores.device, dtype=torch.float64)
                         for g in self.generators])  # fmt: skip
        gumbel = -torch.log(-torch.log(u.clamp(min=1e-300)))
        return scores + gumbel.to(scores.dtype)


class HFSampler:
    """Samples with the transformers model it is given (the trainer's own, or one loaded for
    evaluation)."""

    backend = "hf"

    def __init__(self, model: Any, eos_ids: list[int], pad_id: int, max_context: int | None = None, cache_slots: int = 4,
                 dtype: str = "float32", fallback: str | None = None):  # fmt: skip
        self.model, self.eos_ids, self.pad_id = model, list(eos_ids), pad_id
        self.max_context = max_context or getattr(model.config, "max_position_embeddings", 2048)
        self.dtype, self.fallback = dtype, fallback
        self._lock = threading.RLock()
        self._caches: OrderedDict[int, tuple[list[int], Any]] = OrderedDict()
        self._cache_slots = cache_slots
        self._next_key = 0

    def load_weights(self, named_tensors: Callable[[], Iterable[tuple[str, Any]]]) -> None:
        """The model is the trainer's own object, already holding the new weights: only the
        cached keys/values, which belong to the old weights, go."""
        self.clear_cache()

    # ------------------------------------------------------------------ KV cache store

    def _take_cache(self, prompt: list[int]) -> tuple[Any, int]:
        """The cached KV state sharing the longest prefix with `prompt`, cropped to it."""
        best_key, best_len = None, 0
        for key, (ids, _) in self._caches.items():
            n = 0
            for a, b in zip(ids, prompt, strict=False):
                if a != b:
                    break
                n += 1
            if n > best_len:
                best_key, best_len = key, n
        if best_key is None:
            return None, 0
        _, cache = self._caches.pop(best_key)
        keep = min(best_len, len(prompt) - 1)  # at least one new token must be run
        if keep <= 0:
            return None, 0
        extra = cache.get_seq_length() - keep
        if extra > 0:
            cache.crop(-extra)  # negative = tokens to drop from the end (transformers 4 and 5)
        return cache, keep

    def _put_cache(self, ids: list[int], cache: Any) -> None:
        self._caches[self._next_key] = (ids, cache)
        self._next_key += 1
        while len(self._caches) > self._cache_slots:
            self._caches.popitem(last=False)

    def clear_cache(self) -> None:
        with self._lock:
            self._caches.clear()

    # ------------------------------------------------------------------ sampling

    def sample(self, requests: list[SampleRequest]) -> list[Completion]:
        """Rows with the same settings decode together (`_generate_rows`); rows near the context
        limit, or a model whose cache is not a plain DynamicCache, decode one at a time."""
        out: list[Completion | None] = [None] * len(requests)
        same: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            same.setdefault((r.sampling.temperature, r.sampling.top_p, r.max_tokens, r.stop_ids), []).append(i)
        for rows in same.values():
            batchable = [i for i in rows if self.max_context - len(requests[i].prompt_ids) >= requests[i].max_tokens
                         and len(requests[i].prompt_ids) > 1]  # fmt: skip
            if len(batchable) > 1:
                try:
                    for i, c in zip(batchable, self._generate_rows([requests[i] for i in batchable]), strict=True):
                        out[i] = c
                except _NotBatchable:
                    pass
            for i in rows:
                if out[i] is None:
                    out[i] = self._generate_one(requests[i])
        return out  # type: ignore[return-value]

    def _generate_one(self, r: SampleRequest) -> Completion:
        import torch

        prompt = list(r.prompt_ids)
        with self._lock, torch.no_grad():
            cache, reused = self._take_cache(prompt)
            dev = self.model.device
            out = self._run_generate(torch.tensor([prompt], device=dev), torch.ones(1, len(prompt), dtype=torch.long, device=dev),
                                     cache, r, [_seed(r)])  # fmt: skip
            completion, logprobs = self._completion(out, 0, len(prompt), r)
            new_cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
            if new_cache is not None:
                seq = prompt + completion
                self._put_cache(seq[: new_cache.get_seq_length()], new_cache)
        return Completion(completion, logprobs, _finish(completion, r), reused)

    def _run_generate(self, ids: Any, mask: Any, cache: Any, r: SampleRequest, seeds: list[int]) -> Any:
        from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

        processors = LogitsProcessorList()
        if r.sampling.temperature > 0:  # sampling = greedy decoding over Gumbel-perturbed, warped scores
            processors.append(TemperatureLogitsWarper(r.sampling.temperature))
            if r.sampling.top_p < 1.0:
                processors.append(TopPLogitsWarper(r.sampling.top_p))
            processors.append(RowSeededGumbel(seeds))
        return self.model.generate(
            input_ids=ids,
            attention_mask=mask,
            **{CACHE_ARG: cache},
            max_new_tokens=r.max_tokens,
            do_sample=False,
            logits_processor=processors,
            eos_token_id=list(r.stop_ids or self.eos_ids),
            pad_token_id=self.pad_id,
            return_dict_in_generate=True,
            output_logits=True,
            use_cache=True,
        )

    def _completion(self, out: Any, row: int, start: int, r: SampleRequest) -> tuple[list[int], list[float]]:
        """Row `row`'s sampled tokens (up to and including its first end token; a finished row is
        padded while the others decode) and their log-probs at temperature 1."""
        import torch

        completion = out.sequences[row, start:].tolist()
        eos = set(r.stop_ids or self.eos_ids)
        completion = completion[: next((k + 1 for k, t in enumerate(completion) if t in eos), len(completion))]
        logits = torch.stack(out.logits, dim=1)[row, : len(completion)].float()  # (T, V), raw
        picked = torch.tensor(completion, device=logits.device, dtype=torch.long)[:, None]
        return completion, torch.log_softmax(logits, dim=-1).gather(1, picked)[:, 0].tolist()

    def _row_cache(self, prompt: list[int]) -> tuple[Any, int]:
        """A KV cache covering prompt[:-1] (one row, batch size 1) and how much came from the store."""
        import torch
        from transformers import DynamicCache

        cache, reused = self._take_cache(prompt)
        if cache is None:
            cache = DynamicCache()
        todo = prompt[cache.get_seq_length() : -1]
        if todo:
            dev = self.model.device
            self.model(input_ids=torch.tensor([todo], device=dev), **{CACHE_ARG: cache}, use_cache=True,
                       logits_to_keep=1)  # fmt: skip
        if not plain_kv_layers(cache) or cache.get_seq_length() != len(prompt) - 1:
            raise _NotBatchable
        return cache, reused

    def _generate_rows(self, requests: list[SampleRequest]) -> list[Completion]:
        """Several rows in one `generate` call. Each row first gets its own KV cache covering all
        but its last prompt token (the longest cached prefix from earlier turns, extended by a
        batch-1 forward pass; identical prompts, such as a group's first turn, are run once). The
        row caches are then left-padded into one batched cache with a matching attention mask, so
        `generate` only runs the last prompt token of each row and then decodes all rows
        together. transformers has no API that batches rows with different cached prefixes, hence
        the padding by hand. Every row samples from its own seeded stream, so a row's reply is the
        one it gets alone with the same seed (up to float rounding)."""
        import torch
        from transformers import DynamicCache

        prompts = [list(r.prompt_ids) for r in requests]

        with self._lock, torch.no_grad():
            row_caches: dict[tuple[int, ...], tuple[Any, int]] = {}
            for p in prompts:
                if tuple(p) not in row_caches:
                    row_caches[tuple(p)] = self._row_cache(p)
            width = max(len(p) for p in prompts)
            pads = [width - len(p) for p in prompts]
            n_layers = len(next(iter(row_caches.values()))[0].layers)
            layers = []
            for layer in range(n_layers):
                kv = []
                for part in ("keys", "values"):
                    rows = []
                    for p, pad in zip(prompts, pads, strict=True):
                        t = getattr(row_caches[tuple(p)][0].layers[layer], part)
                        rows.append(torch.nn.functional.pad(t, (0, 0, pad, 0)))  # left-pad the sequence dim
                    kv.append(torch.cat(rows, dim=0))
                layers.append((kv[0], kv[1]))
            dev = self.model.device
            ids = torch.tensor([[self.pad_id] * pad + p for p, pad in zip(prompts, pads, strict=True)], device=dev)
            mask = torch.tensor([[0] * pad + [1] * len(p) for p, pad in zip(prompts, pads, strict=True)], device=dev)
            out = self._run_generate(ids, mask, DynamicCache(ddp_cache_data=layers), requests[0],
                                     [_seed(r) for r in requests])  # fmt: skip
            new_cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
            self._cache_slots = max(self._cache_slots, len(prompts))  # every row's next turn finds its cache
            results = []
            for b, (p, pad) in enumerate(zip(prompts, pads, strict=True)):
                completion, lps = self._completion(out, b, width, requests[b])
                if new_cache is not None:  # keep each row's own cache for its next turn
                    seq = p + completion
                    keep = min(len(seq), new_cache.get_seq_length() - pad)
                    row = [(layer.keys[b : b + 1, :, pad : pad + keep].clone(),
                            layer.values[b : b + 1, :, pad : pad + keep].clone()) for layer in new_cache.layers]  # fmt: skip
                    self._put_cache(seq[:keep], DynamicCache(ddp_cache_data=row))
                results.append((p, completion, lps))
        reused = {key: n for key, (_, n) in row_caches.items()}
        return [Completion(c, lp, _finish(c, r), reused[tuple(p)]) for (p, c, lp), r in zip(results, requests, strict=True)]

    def score_continuations(self, prefix: list[int], continuations: list[list[int]]) -> list[float]:
        """log π(continuation | prefix), summed over its tokens, for each continuation: choosing
        among fixed options by likelihood. The prefix runs once (its KV cache is kept for the
        next call, which usually extends it) and the options run together on top of it."""
        import torch

        dev = self.model.device
        width = max(len(c) for c in continuations) + 1
        rows = [[prefix[-1], *c] + [self.pad_id] * (width - 1 - len(c)) for c in continuations]
        with self._lock, torch.no_grad():
            try:
                cache, _ = self._row_cache(prefix)
            except _NotBatchable:
                cache = None
            if cache is None:  # no batchable cache: each option as one full sequence
                full = torch.tensor([prefix[:-1] + r for r in rows], device=dev)
                logits = self.model(input_ids=full).logits[:, len(prefix) - 1 :]
            else:  # mask: the cached prefix[:-1], then prefix[-1] + the option, then padding
                mask = torch.tensor([[1] * (len(prefix) + len(c)) + [0] * (width - 1 - len(c)) for c in continuations],
                                    device=dev)  # fmt: skip
                logits = self.model(input_ids=torch.tensor(rows, device=dev), attention_mask=mask,
                                    **{CACHE_ARG: broadcast_cache(cache, len(continuations))}, use_cache=True).logits  # fmt: skip
                self._put_cache(prefix[:-1], cache)
            logp = torch.log_softmax(logits.float(), dim=-1)
            return [float(sum(logp[i, k, t] for k, t in enumerate(c))) for i, c in enumerate(continuations)]


def _seed(r: SampleRequest) -> int:
    """The row's stream: its own seed, else one drawn from torch's global generator."""
    import torch

    return r.sampling.seed % 2**63 if r.sampling.seed is not None else int(torch.randint(0, 2**62, (1,)))


def _finish(completion: list[int], r: SampleRequest) -> Finish:
    return "stop" if completion and completion[-1] in r.stop_ids else "max_tokens"
