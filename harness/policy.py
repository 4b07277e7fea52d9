"""One `Policy` for local Hugging Face checkpoints, shared by evaluation, rollouts and credit.

A Policy is a tokenizer, a sampler (harness/sampler.py: vLLM, or transformers as the fallback)
and, where something trains or scores likelihoods, the transformers model. `generate` renders
the prompt (toolcalls.render_ids: the project's one format), has the sampler continue it,
and parses the reply with the project's one parser. The inspect provider `local/PATH`, the
rollouts and the credit providers all call it, so all see the same prompt ids, format and parser.

A prompt that leaves no room in the context window returns status `model_length` without
sampling (the loop ends the episode with context_overflow). Each reply samples from its own
seeded stream (`row_seed`): a fresh, reproducible one per turn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.records import Message, Sampling
from harness.sampler import Sampler, SampleRequest, SamplerOptions, open_sampler
from harness.toolcalls import CHATML_TEMPLATE, end_ids, parse_reply, render_ids


@dataclass
class PolicyOutput:
    message: Message
    text: str
    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]  # log π(y_t | prefix) at temperature 1, one per completion token
    status: str = "stop"  # stop | max_tokens | model_length
    reused_prefix: int = 0  # prompt tokens served from a cache
    extra: dict[str, Any] = field(default_factory=dict)


def row_seed(seed: int | None, prompt: list[int]) -> int | None:
    """The sampling stream of one reply: a fresh, reproducible one per turn when seeded (the
    prompt grows every turn); None leaves the stream to the sampler's random draw."""
    return None if seed is None else seed + len(prompt)


class Policy:
    """A tokenizer, a sampler, and the transformers model (loaded on first use when the sampler
    does not need it: an evaluation on vLLM never loads it)."""

    def __init__(self, model: Any, tokenizer: Any, name: str = "", max_context: int | None = None, cache_slots: int = 4,
                 sampler: Sampler | None = None, model_loader: Callable[[], Any] | None = None):  # fmt: skip
        from harness.hf_sampler import HFSampler

        self._model, self._model_loader = model, model_loader
        self.tokenizer = tokenizer
        self.name = name
        if tokenizer.chat_template is None:
            tokenizer.chat_template = CHATML_TEMPLATE
        self.eos_ids = end_ids(tokenizer)  # read on every reply: looked up once
        self.max_context = max_context or _config_context(model, name)
        self.sampler: Sampler = sampler or HFSampler(model, self.eos_ids, self.pad_id, self.max_context, cache_slots)

    @property
    def model(self) -> Any:
        if self._model is None:
            if self._model_loader is None:
                raise RuntimeError(f"{self.name}: this Policy has no transformers model")
            self._model = self._model_loader()
        return self._model

    @model.setter
    def model(self, model: Any) -> None:
        """The trainer's model replaces the loaded one (e.g. the same model with a LoRA adapter
        injected into it, which the hf sampler, holding that same object, then samples from)."""
        self._model = model

    @classmethod
    def load(cls, path: str | Path, threads: int | None = None, dtype: str | None = None, device: str | None = None,
             backend: str = "auto", options: SamplerOptions | None = None, max_context: int | None = None,
             **kwargs: Any) -> Policy:  # fmt: skip
        """backend: auto (vLLM where it can serve the model, else transformers), vllm, hf.
        device: None = the first CUDA GPU when there is one, else the CPU (the hf model)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        path = Path(path).expanduser()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} is not a Hugging Face model folder (no config.json)")
        options = options or SamplerOptions(backend=backend, dtype=dtype, max_context=max_context)
        # The transformers model (training, likelihoods, the hf backend) is float32 unless a dtype
        # is asked for; the vLLM engine defaults to bfloat16 on a GPU (SamplerOptions).
        torch_dtype = getattr(torch, options.dtype or "float32")
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        tok = AutoTokenizer.from_pretrained(path)
        if tok.chat_template is None:
            tok.chat_template = CHATML_TEMPLATE
        loaded: list[Any] = []

        def load_model() -> Any:
            if not loaded:
                model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype).to(device)
                model.eval()
                loaded.append(model)
            return loaded[0]

        eos = end_ids(tok)
        pad = tok.pad_token_id if tok.pad_token_id is not None else eos[0]
        sampler = open_sampler(path, options, eos, pad, load_model)
        return cls(loaded[0] if loaded else None, tok, name=str(path), max_context=options.max_context,
                   sampler=sampler, model_loader=load_model, **kwargs)  # fmt: skip

    # ------------------------------------------------------------------ rendering

    def render(self, system_prompt: str, tools: list[dict[str, Any]], messages: list[Message]) -> list[int]:
        return render_ids(self.tokenizer, system_prompt, tools, messages)

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]

    # ------------------------------------------------------------------ sampler

    @property
    def backend(self) -> str:
        return self.sampler.backend

    def sync_weights(self, state: dict[str, Any] | None = None) -> None:
        """After an optimizer step: the sampler samples from the model's current weights (`state`:
        the whole weights when the model's own are sharded over processes)."""
        model = self.model
        self.sampler.load_weights(lambda: (state if state is not None else model.state_dict()).items())

    def clear_cache(self) -> None:
        self.sampler.clear_cache()

    # ------------------------------------------------------------------ generation

    def generate(self, system_prompt: str, tools: list[dict[str, Any]], messages: list[Message], temperature: float = 0.0,
                 top_p: float = 1.0, seed: int | None = None, max_new_tokens: int = 256,
                 call_prefix: str = "call") -> PolicyOutput:  # fmt: skip
        prompt = self.render(system_prompt, tools, messages)
        return self.generate_ids(prompt, temperature, top_p, seed, max_new_tokens, call_prefix)

    def generate_ids(self, prompt: list[int], temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None,
                     max_new_tokens: int = 256, call_prefix: str = "call") -> PolicyOutput:  # fmt: skip
        return self.generate_batch([prompt], temperature, top_p, [seed], max_new_tokens, [call_prefix])[0]

    def generate_batch(self, prompts: list[list[int]], temperature: float = 0.0, top_p: float = 1.0,
                       seeds: list[int | None] | None = None, max_new_tokens: int = 256,
                       call_prefixes: list[str] | None = None) -> list[PolicyOutput]:  # fmt: skip
        """Several prompts in one sampler call (a group's siblings, a batch of eval samples)."""
        prefixes = call_prefixes or ["call"] * len(prompts)
        seeds = seeds or [None] * len(prompts)
        outputs: list[PolicyOutput | None] = [None] * len(prompts)
        todo, requests = [], []
        for i, p in enumerate(prompts):
            room = self.max_context - len(p)
            if room < 1:
                outputs[i] = PolicyOutput(Message(role="assistant", content=None), "", list(p), [], [], status="model_length")
                continue
            todo.append(i)
            sampling = Sampling(temperature, top_p, min(max_new_tokens, room), row_seed(seeds[i], p))
            requests.append(SampleRequest(tuple(p), sampling, tuple(self.eos_ids)))
        if requests:
            for i, r, c in zip(todo, requests, self.sampler.sample(requests), strict=True):
                capped = c.finish == "max_tokens" and len(r.prompt_ids) + len(c.ids) >= self.max_context
                outputs[i] = self._output(list(r.prompt_ids), c.ids, c.logprobs, prefixes[i], c.reused_prefix,
                                          "model_length" if capped else c.finish)  # fmt: skip
        return outputs  # type: ignore[return-value]

    def _output(self, prompt: list[int], completion: list[int], logprobs: list[float], call_prefix: str, reused: int,
                status: str) -> PolicyOutput:  # fmt: skip
        ended = status == "stop"
        text_ids = completion[:-1] if ended and completion and completion[-1] in self.eos_ids else completion
        text = self.tokenizer.decode(text_ids, skip_special_tokens=True)
        return PolicyOutput(parse_reply(text, call_prefix), text, prompt, completion, logprobs, status, reused)

    def score_continuations(self, prefix: list[int], continuations: list[list[int]]) -> list[float]:
        """log π(continuation | prefix), summed over its tokens, for each continuation (the hf
        model's forward; the hf sampler's KV cache when it is the sampler)."""
        from harness.hf_sampler import HFSampler

        scorer = self.sampler if isinstance(self.sampler, HFSampler) else self._scorer()
        return scorer.score_continuations(prefix, continuations)

    def _scorer(self) -> Any:
        from harness.hf_sampler import HFSampler

        if getattr(self, "_hf_scorer", None) is None:
            self._hf_scorer = HFSampler(self.model, self.eos_ids, self.pad_id, self.max_context)
        return self._hf_scorer


def _config_context(model: Any, name: str) -> int:
    if model is not None:
        return getattr(model.config, "max_position_embeddings", 2048)
    import json

    try:
        return int(json.loads((Path(name) / "config.json").read_text()).get("max_position_embeddings") or 2048)
    except (OSError, ValueError):
        return 2048
