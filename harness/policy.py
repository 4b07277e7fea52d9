"""One `Policy` for local Hugging Face checkpoints, shared by evaluation and training rollouts.

Given the system prompt, tool schemas and conversation, `Policy.generate` renders the prompt
with the checkpoint's chat template and the project's one tool-call syntax (toolcalls.py),
samples a reply, and returns its text, parsed tool calls, token ids and per-token logprobs.
The inspect model provider `local/PATH` (providers.py) and the trainers call this same method,
so both see the same template, format and parser.

The KV cache is reused across turns: a conversation only grows, so the longest cached prefix of
the new prompt's token ids is kept and only the new tokens are run. A prompt that leaves no room
in the context window returns status `model_length` (the loop ends with context_overflow).

`generate_batch` decodes several prompts together (rollout groups, concurrent eval samples),
each row from its own cached prefix. Sampling draws every row from its own seeded stream
(`RowSeededGumbel`), so a reply never depends on what shares its batch.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.records import Message
from harness.toolcalls import parse_reply, to_template_messages

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _cache_arg() -> str:
    """transformers 5 renamed `past_key_values` (of `generate` and the models' forward) to `cache`."""
    try:
        from importlib.metadata import version

        return "cache" if int(version("transformers").split(".")[0]) >= 5 else "past_key_values"
    except Exception:
        return "past_key_values"


CACHE_ARG = _cache_arg()


@dataclass
class PolicyOutput:
    message: Message
    text: str
    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]  # log π(y_t | prefix) at temperature 1, one per completion token
    status: str = "stop"  # stop | max_tokens | model_length
    reused_prefix: int = 0  # prompt tokens served from the KV cache
    extra: dict[str, Any] = field(default_factory=dict)


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


def row_seed(seed: int | None, prompt: list[int]) -> int:
    """The sampling stream of one reply: a fresh, reproducible one per turn when seeded (the
    prompt grows every turn), else drawn from torch's global generator."""
    import torch

    if seed is None:
        return int(torch.randint(0, 2**62, (1,)))
    return seed + len(prompt)


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


class Policy:
    """A causal LM plus tokenizer, with generation, chat rendering and a small KV-cache store."""

    def __init__(self, model: Any, tokenizer: Any, name: str = "", max_context: int | None = None, cache_slots: int = 4):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        cfg = model.config
        self.max_context = max_context or getattr(cfg, "max_position_embeddings", 2048)
        if tokenizer.chat_template is None:
            tokenizer.chat_template = CHATML_TEMPLATE
        self._lock = threading.Lock()
        self._caches: OrderedDict[int, tuple[list[int], Any]] = OrderedDict()
        self._cache_slots = cache_slots
        self._next_key = 0

    @classmethod
    def load(cls, path: str | Path, threads: int | None = None, dtype: str = "float32", device: str | None = None,
             **kwargs: Any) -> Policy:  # fmt: skip
        """device: None = the first CUDA GPU when there is one, else the CPU."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        path = Path(path).expanduser()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} is not a Hugging Face model folder (no config.json)")
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).to(device)
        model.eval()
        return cls(model, tok, name=str(path), **kwargs)

    # ------------------------------------------------------------------ rendering

    def render(self, system_prompt: str, tools: list[dict[str, Any]], messages: list[Message]) -> list[int]:
        chat = to_template_messages(system_prompt, tools, messages)
        ids = self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        return list(ids)

    @property
    def eos_ids(self) -> list[int]:
        ids = set()
        for tok in ("<|im_end|>", self.tokenizer.eos_token):
            if tok is not None:
                tid = self.tokenizer.convert_tokens_to_ids(tok)
                if isinstance(tid, int) and tid != self.tokenizer.unk_token_id:
                    ids.add(tid)
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return sorted(ids)

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

    # ------------------------------------------------------------------ generation

    def generate(
        self,
        system_prompt: str,
        tools: list[dict[str, Any]],
        messages: list[Message],
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        max_new_tokens: int = 256,
        call_prefix: str = "call",
    ) -> PolicyOutput:
        prompt = self.render(system_prompt, tools, messages)
        return self.generate_ids(prompt, temperature, top_p, seed, max_new_tokens, call_prefix)

    def generate_ids(
        self,
        prompt: list[int],
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        max_new_tokens: int = 256,
        call_prefix: str = "call",
    ) -> PolicyOutput:
        import torch

        room = self.max_context - len(prompt)
        if room < 1:
            empty = Message(role="assistant", content=None)
            return PolicyOutput(empty, "", prompt, [], [], status="model_length")
        budget = min(max_new_tokens, room)
        with self._lock, torch.no_grad():
            cache, reused = self._take_cache(prompt)
            dev = self.model.device
            out = self._run_generate(torch.tensor([prompt], device=dev), torch.ones(1, len(prompt), dtype=torch.long, device=dev),
                                     cache, budget, temperature, top_p, [row_seed(seed, prompt)])  # fmt: skip
            completion, logprobs = self._completion(out, 0, len(prompt))
            new_cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
            if new_cache is not None:
                seq = prompt + completion
                self._put_cache(seq[: new_cache.get_seq_length()], new_cache)
        length_capped = budget == room and len(completion) >= room
        return self._output(prompt, completion, logprobs, call_prefix, reused, length_capped)

    def _run_generate(self, ids: Any, mask: Any, cache: Any, max_new_tokens: int, temperature: float, top_p: float,
                      seeds: list[int]) -> Any:  # fmt: skip
        from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

        processors = LogitsProcessorList()
        if temperature > 0:  # sampling = greedy decoding over Gumbel-perturbed, warped scores
            processors.append(TemperatureLogitsWarper(temperature))
            if top_p < 1.0:
                processors.append(TopPLogitsWarper(top_p))
            processors.append(RowSeededGumbel(seeds))
        return self.model.generate(
            input_ids=ids,
            attention_mask=mask,
            **{CACHE_ARG: cache},
            max_new_tokens=max_new_tokens,
            do_sample=False,
            logits_processor=processors,
            eos_token_id=self.eos_ids,
            pad_token_id=self._pad_id,
            return_dict_in_generate=True,
            output_logits=True,
            use_cache=True,
        )

    @property
    def _pad_id(self) -> int:
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]

    def _completion(self, out: Any, row: int, start: int) -> tuple[list[int], list[float]]:
        """Row `row`'s sampled tokens (up to and including its first end token; a finished row is
        padded while the others decode) and their log-probs at temperature 1."""
        import torch

        completion = out.sequences[row, start:].tolist()
        eos = set(self.eos_ids)
        completion = completion[: next((k + 1 for k, t in enumerate(completion) if t in eos), len(completion))]
        logits = torch.stack(out.logits, dim=1)[row, : len(completion)].float()  # (T, V), raw
        picked = torch.tensor(completion, device=logits.device, dtype=torch.long)[:, None]
        return completion, torch.log_softmax(logits, dim=-1).gather(1, picked)[:, 0].tolist()

    def _output(self, prompt: list[int], completion: list[int], logprobs: list[float], call_prefix: str,
                reused: int, length_capped: bool = False) -> PolicyOutput:  # fmt: skip
        ended = bool(completion) and completion[-1] in self.eos_ids
        text_ids = completion[:-1] if ended else completion
        text = self.tokenizer.decode(text_ids, skip_special_tokens=True)
        status = "stop" if ended else ("model_length" if length_capped else "max_tokens")
        return PolicyOutput(parse_reply(text, call_prefix), text, prompt, completion, logprobs, status, reused)

    # ------------------------------------------------------------------ batched generation

    def generate_batch(
        self,
        prompts: list[list[int]],
        temperature: float = 0.0,
        top_p: float = 1.0,
        seeds: list[int | None] | None = None,
        max_new_tokens: int = 256,
        call_prefixes: list[str] | None = None,
    ) -> list[PolicyOutput]:
        """Several prompts in one `generate` call (a group's siblings, a batch of eval samples).

        Each row first gets its own KV cache covering all but its last prompt token (the longest
        cached prefix from earlier turns, extended by a batch-1 forward pass; identical prompts,
        such as a group's first turn, are run once). The row caches are then left-padded into one
        batched cache with a matching attention mask, so `generate` only runs the last prompt
        token of each row and then decodes all rows together: on a memory-bound CPU a decoding
        step for 8 rows costs about twice one row's. transformers has no API that batches rows
        with different cached prefixes, hence the padding by hand. Every row samples from its own
        seeded stream (`RowSeededGumbel`), so a row's reply is the one `generate_ids` gives it
        alone with the same seed (up to float rounding), whatever else shares the batch. Rows
        near the context limit, or a model whose cache is not a plain DynamicCache, go through
        `generate_ids` one at a time."""
        prefixes = call_prefixes or ["call"] * len(prompts)
        seeds = seeds or [None] * len(prompts)
        batchable = [i for i, p in enumerate(prompts) if self.max_context - len(p) >= max_new_tokens and len(p) > 1]
        outputs: list[PolicyOutput | None] = [None] * len(prompts)
        if len(batchable) > 1:
            try:
                rows = self._generate_rows([prompts[i] for i in batchable], temperature, top_p,
                                           [row_seed(seeds[i], prompts[i]) for i in batchable], max_new_tokens,
                                           [prefixes[i] for i in batchable])  # fmt: skip
            except _NotBatchable:
                rows = None
            if rows is not None:
                for i, out in zip(batchable, rows, strict=True):
                    outputs[i] = out
        for i, p in enumerate(prompts):
            if outputs[i] is None:
                outputs[i] = self.generate_ids(p, temperature, top_p, seeds[i], max_new_tokens, prefixes[i])
        return outputs  # type: ignore[return-value]

    def score_continuations(self, prefix: list[int], continuations: list[list[int]]) -> list[float]:
        """log π(continuation | prefix), summed over its tokens, for each continuation: choosing
        among fixed options by likelihood. The prefix runs once (its KV cache is kept for the
        next call, which usually extends it) and the options run together on top of it."""
        import torch

        dev = self.model.device
        width = max(len(c) for c in continuations) + 1
        rows = [[prefix[-1], *c] + [self._pad_id] * (width - 1 - len(c)) for c in continuations]
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

    def _generate_rows(self, prompts: list[list[int]], temperature: float, top_p: float, seeds: list[int],
                       max_new_tokens: int, prefixes: list[str]) -> list[PolicyOutput]:  # fmt: skip
        import torch
        from transformers import DynamicCache

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
            ids = torch.tensor([[self._pad_id] * pad + p for p, pad in zip(prompts, pads, strict=True)], device=dev)
            mask = torch.tensor([[0] * pad + [1] * len(p) for p, pad in zip(prompts, pads, strict=True)], device=dev)
            out = self._run_generate(ids, mask, DynamicCache(ddp_cache_data=layers), max_new_tokens, temperature, top_p,
                                     seeds)  # fmt: skip
            new_cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
            self._cache_slots = max(self._cache_slots, len(prompts))  # every row's next turn finds its cache
            results = []
            for b, (p, pad) in enumerate(zip(prompts, pads, strict=True)):
                completion, lps = self._completion(out, b, width)
                if new_cache is not None:  # keep each row's own cache for its next turn
                    seq = p + completion
                    keep = min(len(seq), new_cache.get_seq_length() - pad)
                    row = [(layer.keys[b : b + 1, :, pad : pad + keep].clone(),
                            layer.values[b : b + 1, :, pad : pad + keep].clone()) for layer in new_cache.layers]  # fmt: skip
                    self._put_cache(seq[:keep], DynamicCache(ddp_cache_data=row))
                results.append((p, completion, lps))
        reused = {key: r for key, (_, r) in row_caches.items()}
        return [self._output(p, c, lp, prefix, reused[tuple(p)]) for (p, c, lp), prefix in zip(results, prefixes, strict=True)]
