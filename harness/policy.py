"""One `Policy` for local Hugging Face checkpoints, shared by evaluation and training rollouts.

Given the system prompt, tool schemas and conversation, `Policy.generate` renders the prompt
with the checkpoint's chat template and the project's one tool-call syntax (toolcalls.py),
samples a reply, and returns its text, parsed tool calls, token ids and per-token logprobs.
The inspect model provider `local/PATH` (providers.py) and the trainers call this same method,
so both see the same template, format and parser.

The KV cache is reused across turns: a conversation only grows, so the longest cached prefix of
the new prompt's token ids is kept and only the new tokens are run. A prompt that leaves no room
in the context window returns status `model_length` (the loop ends with context_overflow).
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
    """transformers 5 renamed generate's `past_key_values` to `cache`."""
    try:
        from importlib.metadata import version

        return "cache" if int(version("transformers").split(".")[0]) >= 5 else "past_key_values"
    except Exception:
        return "past_key_values"


_CACHE_ARG = _cache_arg()


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
            if seed is not None:
                torch.manual_seed(seed + len(prompt))  # a fresh, reproducible stream per turn
            sample = temperature > 0
            dev = self.model.device
            out = self.model.generate(
                input_ids=torch.tensor([prompt], device=dev),
                attention_mask=torch.ones(1, len(prompt), dtype=torch.long, device=dev),
                **{_CACHE_ARG: cache},
                max_new_tokens=budget,
                do_sample=sample,
                temperature=temperature if sample else None,
                top_p=top_p if sample else None,
                top_k=0 if sample else None,
                eos_token_id=self.eos_ids,
                pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0],
                return_dict_in_generate=True,
                output_logits=True,
                use_cache=True,
            )
            seq = out.sequences[0].tolist()
            completion = seq[len(prompt):]
            logits = torch.stack(out.logits, dim=1)[0].float()  # (T, V), raw (temperature 1)
            picked = torch.tensor(completion, device=logits.device)[:, None]
            logprobs = torch.log_softmax(logits, dim=-1).gather(1, picked)[:, 0].tolist()
            new_cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
            if new_cache is not None:
                self._put_cache(seq[: new_cache.get_seq_length()], new_cache)
        ended = bool(completion) and completion[-1] in self.eos_ids
        text_ids = completion[:-1] if ended else completion
        text = self.tokenizer.decode(text_ids, skip_special_tokens=True)
        status = "stop" if ended else ("model_length" if budget == room and len(completion) >= room else "max_tokens")
        return PolicyOutput(parse_reply(text, call_prefix), text, prompt, completion, logprobs, status, reused)
